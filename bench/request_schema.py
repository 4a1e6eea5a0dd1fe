"""The request schema (issue 20): what a check of a render's parameters costs per request.

    python bench/request_schema.py --out bench/results/request-schema-cpu.json

Times ``RenderParams.validate`` (a slash command's options), ``RenderParams.parse`` (a recipe, the
Remix form) and ``RenderParams.from_dict`` (a stored row) on a typical render with two LoRAs, and
the first ``validate`` of a fresh process (the schema is built then). With ``--before REV`` the
hand-written ``validate`` and ``from_dict`` of that revision's ``engine/request/params.py`` are timed
in the same run, for comparison. Median of several rounds of many calls, in microseconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import timeit
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine, write_report

ROOT = Path(__file__).resolve().parents[1]

FIRST = "import time; t = time.perf_counter(); from engine.request.params import RenderParams as P; "
FIRST += "P(prompt='a cat').validate(); print(time.perf_counter() - t)"


def _micros(call, number: int = 2000, rounds: int = 7) -> float:
    return round(statistics.median(timeit.repeat(call, number=number, repeat=rounds)) / number * 1e6, 2)


def _before(rev: str) -> types.ModuleType:
    """``engine/request/params.py`` as it was at ``rev``, loaded as a module of its own."""
    source = subprocess.run(["git", "show", f"{rev}:engine/request/params.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType("params_before")
    sys.modules[module.__name__] = module  # dataclasses looks its module up
    exec(compile(source, f"{rev}:params.py", "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--before", default=None, help="a git revision whose params.py to time alongside")
    args = parser.parse_args()

    from engine.request.params import RenderParams

    params = RenderParams(prompt="0: a cat | 8: a tiger", seed=5, loras=(("pixel", 0.8), ("ink", -0.5)))
    row = params.to_dict()
    first = subprocess.run([sys.executable, "-c", FIRST], cwd=ROOT, capture_output=True, text=True, check=True)
    report = {
        "machine": machine(),
        "micros_per_call": {
            "validate": _micros(params.validate),
            "parse": _micros(lambda: RenderParams.parse(row)),
            "from_dict": _micros(lambda: RenderParams.from_dict(row)),
            "construct_only": _micros(lambda: dataclasses.replace(params)),
        },
        "first_validate_in_a_fresh_process_ms": round(float(first.stdout) * 1000, 1),
    }
    if args.before:
        old = _before(args.before)
        before = old.RenderParams(**dataclasses.asdict(params) | {"loras": params.loras})
        report["before"] = {
            "rev": args.before,
            "validate": _micros(before.validate),
            "from_dict": _micros(lambda: old.RenderParams.from_dict(row)),
        }
    write_report(report, args.out)


if __name__ == "__main__":
    main()

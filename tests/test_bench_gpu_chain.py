"""bench/gpu_chain.py runs on a lent GPU once per round of work: a CPU smoke run keeps it working."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_end_to_end_on_the_cpu_and_reports_every_row(tmp_path):
    out = tmp_path / "chain.json"
    command = [sys.executable, str(ROOT / "bench" / "gpu_chain.py"), "--shape", "tiny", "--size", "64",
               "--device", "cpu", "--frames", "2", "--jobs", "2", "--no-compile", "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert list(rows) == ["1_tutorial_chain", "2_engine_1_job_20_steps", "3_engine_1_job_defaults",
                          "4a_engine_2_jobs_20_steps", "4b_engine_2_jobs_defaults"]  # fmt: skip
    assert [row["frames"] for row in rows.values()] == [2, 2, 2, 4, 4]
    assert all(row["s_per_frame"] > 0 and row["speedup_vs_row_1"] > 0 for row in rows.values())
    parts = report["breakdown_ms"]
    assert {"model_step_rows_2", "vae_decode_2", "vae_encode_2", "png_save_cpu", "colour_match_cpu"} <= set(parts)

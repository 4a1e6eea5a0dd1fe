"""Bounded uploads (issue 20): how long fitting a big picture and checking a soundtrack take.

    python bench/uploads.py --out bench/results/uploads-cpu.json

Pictures: a 40-megapixel mostly transparent PNG and a 12-megapixel JPEG photo, fitted to 768×512
by ``prepare_picture`` (each in a fresh subprocess, with its peak RSS growth), against fitting the
whole picture in floats first (what was done before). Audio: ``check_audio`` (/mux's 10-minute
limit) on a silent FLAC declaring 4 h (answered from its header), a 9-minute FLAC (decoded whole),
and a 30-minute FLAC declaring 1 minute (the decode stops at the limit). Median of a few runs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
from machine import machine, write_report
from PIL import Image, ImageDraw
from support.media import write_flac

from engine.video.read import check_audio

# Peak RSS growth as VmHWM less VmRSS before (ru_maxrss would carry the parent's peak across exec).
MEASURE = """
import io, sys, time
from engine.request.picture import encode_png, fit, prepare_picture, to_rgb
from PIL import Image

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
before = status_kib("VmRSS")
start = time.perf_counter()
if sys.argv[2] == "shrunk":
    prepare_picture(data, (768, 512))
else:
    image = Image.open(io.BytesIO(data))
    image.load()
    encode_png(fit(to_rgb(image), 768, 512))
print(time.perf_counter() - start, (status_kib("VmHWM") - before) / 1024)
"""


def _encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def pictures() -> dict[str, bytes]:
    sheet = Image.new("RGBA", (8000, 5000), (0, 0, 0, 0))
    ImageDraw.Draw(sheet).ellipse((2000, 1250, 6000, 3750), fill=(20, 40, 60, 255))
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    photo = np.stack([x / 4000 * 200, y / 3000 * 200, (np.sin(x / 37) * np.cos(y / 23) + 1) * 100], axis=-1)
    photo = np.clip(photo + 30 + np.random.RandomState(0).randint(-12, 13, photo.shape), 0, 255).astype(np.uint8)
    return {
        "png_40mp_transparent": _encode(sheet, "PNG", compress_level=1),
        "jpeg_12mp_photo": _encode(Image.fromarray(photo), "JPEG", quality=90),
    }


def time_picture(path: Path, how: str, runs: int) -> dict:
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", MEASURE, str(path), how], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        seconds, grown = map(float, out.stdout.split())
        samples.append((seconds, grown))
    return {
        "seconds_median": round(statistics.median(s for s, _ in samples), 3),
        "peak_rss_growth_mib_max": round(max(g for _, g in samples), 1),
    }


def time_audio(path: Path, runs: int) -> dict:
    samples, seconds = [], 0.0
    for _ in range(runs):
        start = time.perf_counter()
        seconds = check_audio(path, 600.0)
        samples.append(time.perf_counter() - start)
    return {"answered_seconds": round(seconds, 2), "check_seconds_median": round(statistics.median(samples), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict = {"machine": machine(), "pictures": {}, "audio": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, data in pictures().items():
            path = folder / name
            path.write_bytes(data)
            report["pictures"][name] = {
                "bytes": len(data),
                "shrunk_first": time_picture(path, "shrunk", args.runs),
                "whole_in_floats_before": time_picture(path, "whole", 1),
            }
        audio = {
            "flac_declaring_4h": write_flac(folder / "a.flac", seconds=1, declared=4 * 3600),
            "flac_9min": write_flac(folder / "b.flac", seconds=540),
            "flac_30min_declaring_1min": write_flac(folder / "c.flac", seconds=1800, declared=60),
        }
        for name, path in audio.items():
            report["audio"][name] = {"bytes": path.stat().st_size, **time_audio(path, args.runs)}
    write_report(report, args.out)


if __name__ == "__main__":
    main()

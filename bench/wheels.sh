#!/usr/bin/env bash
# The wheels the lent GPU machine lacks for bench/device.sh (its image has torch, transformers,
# accelerate, peft, aiohttp, opencv, numpy, pillow; see the device tool's KINDS.md), fetched here
# for its Python 3.12 into .whl/, which the device call carries (34 MiB of the 64 allowed; imageio-ffmpeg
# 0.5.1, its static ffmpeg for the clips, because 0.8's wheel alone is 68 MB):
#   bash bench/wheels.sh && run: carry [".whl"], command "bash bench/device.sh"
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
platforms=()
for tag in manylinux2010_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl \
  diffusers==0.42.1 discord.py==2.7.1 aiosqlite==0.22.1 ffmpeg-python==0.2.0 future==1.0.0 imageio-ffmpeg==0.5.1 \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==0.30.0
du -sh .whl && ls .whl

#!/usr/bin/env bash
# The GPU benchmark, as one command on the lent machine (device tool):
#   carry .whl (diffusers 0.42.1 and what the machine lacks: see README "Benchmarks") and run
#   bash bench/device.sh
# It writes bench results under $OUT (or bench/results when $OUT is unset).
set -uo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
out="${OUT:-bench/results}"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
python3 bench/gpu_chain.py ${BENCH_ARGS:---frames 6 --jobs 8 --restart-check} --out "$out/gpu_chain.json" 2>&1 \
  | grep -v -e "should be kept in float32" -e "^\[transformers\]" | tee "$out/gpu_chain.log"

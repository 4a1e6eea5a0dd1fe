#!/usr/bin/env bash
# The GPU benchmarks, as one command on the lent machine (device tool):
#   carry .whl (diffusers 0.42.1 and what the machine lacks: see README "Benchmarks") and run
#   bash bench/device.sh
# BENCH_PARTS picks the parts and their order (default "chain e2e"), so each can be its own device call:
#   chain  bench/gpu_chain.py (BENCH_ARGS, default --frames 6 --jobs 8 --restart-check) -> gpu_chain.json
#   e2e    bench/e2e.py, issue 14's rows E1 and E2 through `animabot run` (E2E_ARGS)   -> e2e.json
# Both compile the same UNet+ControlNet step into one inductor cache, so e2e after chain compiles from it.
# It writes the results and logs under $OUT (or bench/results when $OUT is unset).
set -uo pipefail
parts="${BENCH_PARTS:-chain e2e}"
for part in $parts; do
  case "$part" in
    chain | e2e) ;;
    *) echo "BENCH_PARTS: unknown part '$part' (the parts are: chain e2e)" >&2; exit 2 ;;
  esac
done
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# What the image lacks is a wheel in .whl (bench/wheels.sh); say at once which import fails, if one does.
python3 -c "
import importlib
for name in ('torch', 'diffusers', 'transformers', 'huggingface_hub', 'peft', 'discord', 'aiosqlite', 'ffmpeg', 'imageio_ffmpeg', 'jsonschema', 'cv2'):
    try:
        print(name, getattr(importlib.import_module(name), '__version__', ''))
    except Exception as err:
        print(name, 'FAILS:', repr(err)[:300])
" || exit 1
out="${OUT:-bench/results}"
# One inductor cache for both parts (animabot itself uses data_dir/compile-cache unless this is set).
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/animabot-inductor}"  # gpu_chain's --cache-dir
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore

quiet() { grep -v -e "should be kept in float32" -e "^\[transformers\]"; }

status=0
for part in $parts; do
  case "$part" in
    chain)
      python3 bench/gpu_chain.py ${BENCH_ARGS:---frames 6 --jobs 8 --restart-check} --out "$out/gpu_chain.json" 2>&1 \
        | quiet | tee "$out/gpu_chain.log" || status=1
      ;;
    e2e)
      python3 bench/e2e.py ${E2E_ARGS:-} --out "$out/e2e.json" 2>&1 | quiet | tee "$out/e2e.log" || status=1
      ;;
  esac
done
exit $status

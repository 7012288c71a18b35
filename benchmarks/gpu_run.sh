#!/usr/bin/env bash
# The GPU check of issue #7 as one command for a device machine (stays under 8 minutes):
#
#   bash benchmarks/gpu_run.sh            # results in $OUT (or /tmp/gpu-out)
#
# Prove it first on any CPU: `python -m benchmarks.gpu --dry-run` (same script, tiny model).
# The device image has python3 with CUDA torch, transformers, tokenizers and safetensors;
# lsp_llm.config also needs platformdirs. If it is missing there, carry it as a wheel:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp -d .whl platformdirs
# and name `.whl` in the run's `carry`.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=".:${PYTHONPATH:-}" TOKENIZERS_PARALLELISM=false
export XDG_CACHE_HOME=/tmp/lsp-llm-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu-info.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$OUT/gpu-info.txt"
timeout 470 python3 -m benchmarks.gpu --out "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.log"

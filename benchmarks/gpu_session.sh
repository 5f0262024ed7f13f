#!/usr/bin/env bash
# One lent-GPU session: train the default model, then benchmark it on the GPU.
# Run from the repository root on the GPU machine with _gpu/ carried:
#   _gpu/pack.npz   (medseg train --data ../shared/data --pack-only -o _gpu; mv _gpu/pack.npz)
#   _gpu/wheels/    (segment-anything and monai wheels: the GPU image lacks them)
# Writes under $OUT: run/best.safetensors, run/last.safetensors, run/history.json,
# run/summary.json, train.log, bench_cuda.json, gpu.txt.
set -uo pipefail
OUT=${OUT:-/tmp/medseg_out}
BUDGET=${BUDGET:-400}
mkdir -p "$OUT/run" /tmp/pylibs /tmp/state
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/pylibs _gpu/wheels/*.whl || exit 3
export PYTHONPATH=$PWD:/tmp/pylibs
python3 -c "import torch, monai, segment_anything, medseg.training.loop, medseg.phantoms; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 4
python3 -m medseg train --pack _gpu/pack.npz --phantoms "${PHANTOMS:-2000}" --device cuda -o "$OUT/run" \
    --state-dir /tmp/state --time-budget "$BUDGET" --val-every "${VAL_EVERY:-60}" --batch-size "${BATCH:-128}" 2>&1 | tee "$OUT/train.log"
if [ -f "$OUT/run/best.safetensors" ]; then
  timeout 120 python3 -m medseg bench --device cuda --model "$OUT/run/best.safetensors" -o "$OUT/bench_cuda.json" 2>&1 | tail -20
fi
ls -la "$OUT" "$OUT/run"

#!/usr/bin/env bash
# On-policy decoder rounds on a lent GPU (benchmarks/gpu_onpolicy.py). Run from the repository
# root there with _gpu/pack.npz and .whl/ carried (.whl: py3.12 wheels of segment-anything,
# nibabel, pydicom and monai, which the GPU image lacks). Everything goes to $OUT as it is made
# (round{r}.safetensors, onpolicy.json, onpolicy.log), so a run cut short keeps its rounds.
# Make the carried folders here first:
#   medseg train --data ../shared/data --pack-only -o _gpu
#   for p in segment-anything==1.0 nibabel pydicom monai; do python3 -m pip download --no-deps --only-binary=:all: \
#       --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 -d .whl $p; done
# (.whl/ listed in .git/info/exclude; both together with the tree stay under the 64 MiB a call may carry).
set -uo pipefail
OUT=${OUT:-/tmp/medseg_out}
PY=${PY:-python3}
ROUNDS=${ROUNDS:-2}
BUDGET=${BUDGET:-120,90}
WORKERS=${WORKERS:-15}
LIMIT_S=${LIMIT_S:-520}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" /tmp/site
LOG="$OUT/onpolicy.log"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc; } > "$LOG" 2>&1
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 || { cat "$LOG"; exit 3; }
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch, segment_anything, medseg.segment, medseg.training.prompts; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$LOG" 2>&1 || { cat "$LOG"; exit 4; }
timeout "$LIMIT_S" $PY benchmarks/gpu_onpolicy.py _gpu/pack.npz checkpoints/medseg_default.safetensors "$OUT" \
    --rounds "$ROUNDS" --budget "$BUDGET" --workers "$WORKERS" >> "$LOG" 2>&1
echo "exit $?" >> "$LOG"
ls -la "$OUT"
tail -n 40 "$LOG"

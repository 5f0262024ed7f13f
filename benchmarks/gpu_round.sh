#!/usr/bin/env bash
# A lent-GPU session (one or two calls) that continues the shipped default and re-trains the `cmr-lge` adapter for it.
# Run from the repository root on the GPU machine with _gpu/ carried (see gpu_session.sh and
# gpu_adapt.sh for what _gpu/pack.npz, _gpu/lge/, _gpu/wheels/ and _gpu/wheels_adapt/ hold).
#
# 1. `medseg train` from INIT at batch 512 (the size --probe-batches chose on an H100:
#    2,554 samples/s vs 984 at 128), lr LR with warm-up and cosine decay over BUDGET seconds.
# 2. `medseg adapt` on the best checkpoint of step 1: the adapter's LoRA weights are tied to the
#    encoder they were trained on, so a new default needs a new adapter.
# Each step is stopped by `timeout` so the copy to $OUT always happens.
# The pack and the LGE volumes together exceed what one call may carry (64 MiB with the tree),
# so STAGES picks the steps: "train" (carry _gpu/pack.npz, _gpu/wheels), then "adapt" with
# MODEL= the checkpoint that came back (carry it, _gpu/lge, _gpu/wheels, _gpu/wheels_adapt).
# Writes under $OUT (8 files, the most that come back): A/{best.safetensors,history.json,
# summary.json} and round_train.log; or cmr-lge/ (4 files), adapt.log and round_adapt.log.
set -uo pipefail
OUT=${OUT:-/tmp/medseg_out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-330}
ADAPT_BUDGET=${ADAPT_BUDGET:-125}
LR=${LR:-3e-4}
BS=${BS:-512}
INIT=${INIT:-checkpoints/medseg_default.safetensors}
PHANTOMS=${PHANTOMS:-1500}
VAL_EVERY=${VAL_EVERY:-80}
WORK=${WORK:-/tmp/medseg_work}
STAGES=${STAGES:-train adapt}
MODEL=${MODEL:-$WORK/A/best.safetensors}
LOG="$OUT/round_$(echo "$STAGES" | tr ' ' '_').log"
mkdir -p "$OUT" "$WORK" /tmp/pylibs
[[ " $STAGES " == *" train "* ]] && mkdir -p "$OUT/A"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; } > "$LOG"
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/pylibs _gpu/wheels/*.whl $(ls _gpu/wheels_adapt/*.whl 2>/dev/null) >> "$LOG" 2>&1 || exit 3
fi
export PYTHONPATH=$PWD:/tmp/pylibs${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch, monai, segment_anything, medseg.training.loop; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$LOG" 2>&1 || { cat "$LOG"; exit 4; }

if [[ " $STAGES " == *" train "* ]]; then
echo "== train (batch $BS, lr $LR, $BUDGET s) at $(( $(date +%s) - T0 )) s" >> "$LOG"
timeout $((BUDGET + ${PAD:-80})) $PY -m medseg train --pack _gpu/pack.npz --phantoms "$PHANTOMS" --device "$DEVICE" -o "$WORK/A" \
    --state-dir "$WORK/A.state" --time-budget "$BUDGET" --val-every "$VAL_EVERY" --batch-size "$BS" --lr "$LR" \
    --init-from "$INIT" >> "$LOG" 2>&1
echo "train exit $? at $(( $(date +%s) - T0 )) s" >> "$LOG"
for f in best.safetensors history.json summary.json; do
  [ -f "$WORK/A/$f" ] && cp "$WORK/A/$f" "$OUT/A/"
done
fi

if [[ " $STAGES " == *" adapt "* ]] && [ -f "$MODEL" ]; then
  echo "== adapt ($ADAPT_BUDGET s, benchmarks/gpu_adapt.sh -> adapt.log) at $(( $(date +%s) - T0 )) s" >> "$LOG"
  OUT="$OUT" PY="$PY" DEVICE="$DEVICE" BUDGET="$ADAPT_BUDGET" MODEL="$MODEL" SKIP_WHEELS=1 bash benchmarks/gpu_adapt.sh > /dev/null 2>&1
  echo "adapt done at $(( $(date +%s) - T0 )) s (its exit code is in adapt.log)" >> "$LOG"
fi
echo "total $(( $(date +%s) - T0 )) s" >> "$LOG"
ls -la "$OUT" "$OUT"/*
tail -n 25 "$LOG" $(ls "$OUT"/adapt.log 2>/dev/null)

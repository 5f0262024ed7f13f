#!/usr/bin/env bash
# One lent-GPU session: train candidate default models side by side on the one GPU.
# Run from the repository root on the GPU machine with _gpu/ carried:
#   _gpu/pack.npz   (medseg train --data ../shared/data --pack-only -o _gpu; mv _gpu/pack.npz)
#   _gpu/wheels/    (segment-anything and monai wheels: the GPU image lacks them)
#
# Run A times batch sizes first (--probe-batches; at batch 128 this small model is bound by
# kernel launches, not by the GPU) and trains with the chosen size. Run B starts once A has
# chosen, with the same batch size and its own learning rate, and runs beside it (the GPU
# has room for both). Both continue from INIT (the shipped default) unless INIT is empty.
# Each run is stopped by `timeout` so the copy to $OUT always happens.
# Writes under $OUT: A/ and B/ (best.safetensors, history.json, summary.json), A.log, B.log.
set -uo pipefail
OUT=${OUT:-/tmp/medseg_out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-470}          # seconds of training for A (B gets BUDGET minus its late start)
LR_A=${LR_A:-3e-4}             # at batch 128; scaled by sqrt(batch / 128)
LR_B=${LR_B:-1.2e-4}
INIT=${INIT-checkpoints/medseg_default.safetensors}
PROBE=${PROBE:-128,256,512}
PHANTOMS=${PHANTOMS:-1500}
VAL_EVERY=${VAL_EVERY:-90}
WORK=${WORK:-/tmp/medseg_work}
mkdir -p "$OUT/A" "$OUT/B" "$WORK/A" "$WORK/B" /tmp/pylibs
export PYTHONUNBUFFERED=1
T0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; } > "$OUT/A.log"
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/pylibs _gpu/wheels/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/pylibs${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch, monai, segment_anything, medseg.training.loop, medseg.phantoms; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$OUT/A.log" 2>&1 || { cat "$OUT/A.log"; exit 4; }
init_arg=()
[ -n "$INIT" ] && init_arg=(--init-from "$INIT")

run() {  # name lr batch budget [extra args]
  local name=$1 lr=$2 bs=$3 budget=$4; shift 4
  timeout $((budget + ${PAD:-100})) $PY -m medseg train --pack _gpu/pack.npz --phantoms "$PHANTOMS" --device "$DEVICE" -o "$WORK/$name" \
      --state-dir "$WORK/$name.state" --time-budget "$budget" --val-every "$VAL_EVERY" --batch-size "$bs" --lr "$lr" \
      "${init_arg[@]}" "$@" >> "$OUT/$name.log" 2>&1
  echo "exit $? after $(( $(date +%s) - T0 )) s" >> "$OUT/$name.log"
}

run A "$LR_A" 128 "$BUDGET" --probe-batches "$PROBE" &
PID_A=$!
# B waits for A's choice of batch size (at most 150 s), then starts with it.
BS=256
for _ in $(seq 150); do
  # (tr: a console may wrap the line)
  line=$(tr '\n' ' ' < "$OUT/A.log" | grep -oE "training with +batch [0-9]+" | head -1 || true)
  if [ -n "$line" ]; then BS=${line##* }; break; fi
  kill -0 $PID_A 2>/dev/null || break
  sleep 1
done
LATE=$(( $(date +%s) - T0 ))
LR_B_SCALED=$($PY -c "import math; print($LR_B * math.sqrt($BS / 128))")
echo "B: batch $BS, lr $LR_B_SCALED, starts at $LATE s" > "$OUT/B.log"
run B "$LR_B_SCALED" "$BS" $(( BUDGET - LATE + 15 )) &
wait
for r in A B; do
  for f in best.safetensors history.json summary.json; do
    [ -f "$WORK/$r/$f" ] && cp "$WORK/$r/$f" "$OUT/$r/"
  done
done
echo "total $(( $(date +%s) - T0 )) s" >> "$OUT/A.log"
ls -la "$OUT" "$OUT/A" "$OUT/B"
tail -n 5 "$OUT/A.log" "$OUT/B.log"

#!/usr/bin/env bash
# The user-facing commands with --device cuda on a lent GPU, against the same commands on the
# CPU (run `CHECK_DEVICE=cpu bash benchmarks/gpu_cli_check.sh` here for the reference).
# Carried: _gpu/acdc4/ (the first 3 patients of benchmarks/make_pairs.py's acdc_val.csv, ED and ES,
# copied to images/ and labels/ as <case>_<phase>.nii.gz, with pairs.csv naming them relative to it),
# _gpu/wheels/ (segment-anything, monai), _gpu/wheels_adapt/ (nibabel, peft),
# _gpu/wheels_cli/ (pydicom, typer and its pydantic, rich: the GPU image lacks or differs).
# Writes under $OUT: eval_{box,key-slice,auto}.json, batch_labels.npz, batch_summary.csv,
# adapt.log, bench.json, check.log.
set -uo pipefail
OUT=${OUT:-/tmp/medseg_check}
PY=${PY:-python3}
DEV=${CHECK_DEVICE:-cuda}
WORK=${WORK:-/tmp/medseg_check_work}
LOG="$OUT/check.log"
mkdir -p "$OUT" "$WORK" /tmp/pylibs
export PYTHONUNBUFFERED=1
T0=$(date +%s)
step() { echo "== $* at $(( $(date +%s) - T0 )) s" >> "$LOG"; }
if [ "$DEV" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total --format=csv > "$LOG" 2>&1
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/pylibs \
      _gpu/wheels/*.whl _gpu/wheels_adapt/*.whl _gpu/wheels_cli/*.whl >> "$LOG" 2>&1 || exit 3
  export PYTHONPATH=$PWD:/tmp/pylibs${PYTHONPATH:+:$PYTHONPATH}
  $PY -c "import peft" >> "$LOG" 2>&1 || { rm -rf /tmp/pylibs/peft /tmp/pylibs/peft-*; echo "using the image's peft" >> "$LOG"; }
else
  : > "$LOG"
fi
$PY -c "import torch, medseg; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$LOG" 2>&1 || { cat "$LOG"; exit 4; }
MAP=rv=1,myo=2,lv=3
for mode in box key-slice auto; do
  step "evaluate --prompt $mode"
  timeout 120 $PY -m medseg evaluate --pairs _gpu/acdc4/pairs.csv --label-map $MAP --prompt $mode --device "$DEV" \
      -o "$OUT/eval_$mode.json" >> "$LOG" 2>&1; echo "exit $?" >> "$LOG"
done
step "batch --key-slice --workers 2 --measure"
rm -rf "$WORK/batch"
timeout 180 $PY -m medseg batch _gpu/acdc4/images -o "$WORK/batch" --prompts-from _gpu/acdc4/labels --key-slice --label-map $MAP \
    --workers 2 --measure --device "$DEV" >> "$LOG" 2>&1; echo "exit $?" >> "$LOG"
cp "$WORK/batch/summary.csv" "$OUT/batch_summary.csv" 2>> "$LOG"
$PY - "$WORK/batch" "$OUT/batch_labels.npz" >> "$LOG" 2>&1 <<'PYEOF'
import sys
from pathlib import Path
import nibabel as nib, numpy as np
files = sorted(p for p in Path(sys.argv[1]).glob("*.nii.gz"))
np.savez_compressed(sys.argv[2], **{p.name.split(".")[0]: np.asarray(nib.load(p).dataobj) for p in files})
print("batch outputs", [p.name for p in files])
PYEOF
step "adapt (40 steps)"
rm -rf "$WORK/ad" "$WORK/ad.state"
timeout 150 $PY -m medseg adapt --pairs _gpu/acdc4/pairs.csv --label-map $MAP -o "$WORK/ad" --steps 40 --val-every 20 \
    --batch-size 8 --device "$DEV" > "$OUT/adapt.log" 2>&1; echo "exit $?" >> "$LOG"
ls "$WORK/ad" >> "$LOG" 2>&1
step "bench"
timeout 150 $PY -m medseg bench --device "$DEV" -o "$OUT/bench.json" >> "$LOG" 2>&1; echo "exit $?" >> "$LOG"
step "done"
grep -v "━" "$LOG" | tail -n 60

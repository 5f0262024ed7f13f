#!/usr/bin/env bash
# Re-train the `cmr-lge` adapter on a lent GPU (after the default checkpoint changed).
# Carried: _gpu/lge/ (the MS-CMRSeg LGE volumes of lge_train.csv / lge_val.csv, copied with
# train.csv / val.csv beside them), _gpu/wheels/ (segment-anything, monai),
# _gpu/wheels_adapt/ (nibabel, and peft at the development machine's version so the adapter
# files match it). Same recipe as the CPU run recorded in adapters/cmr-lge/README.md, with a
# shorter time budget. Writes $OUT/cmr-lge/ (the adapter folder) and $OUT/adapt.log.
set -uo pipefail
OUT=${OUT:-/tmp/medseg_out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-150}
MODEL=${MODEL:-default}          # the base model (a checkpoint path for a candidate default)
export PYTHONUNBUFFERED=1
mkdir -p /tmp/pylibs "$OUT"
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/pylibs _gpu/wheels/*.whl _gpu/wheels_adapt/*.whl || exit 3
fi
export PYTHONPATH=$PWD:/tmp/pylibs${PYTHONPATH:+:$PYTHONPATH}
if ! $PY -c "import peft" > "$OUT/adapt.log" 2>&1; then   # the carried peft does not suit this image's transformers
  rm -rf /tmp/pylibs/peft /tmp/pylibs/peft-*; echo "using the image's peft" >> "$OUT/adapt.log"
fi
timeout $((BUDGET + ${PAD:-90})) $PY -m medseg adapt --model "$MODEL" --pairs _gpu/lge/train.csv --val _gpu/lge/val.csv --label-map rv=1,myo=2,lv=3 \
    -o "$OUT/cmr-lge" --steps 4000 --time-budget "$BUDGET" --val-every 150 --patience 6 --batch-size 8 --device "$DEVICE" \
    --modality LGE-MR --view short-axis \
    --description "Late-gadolinium-enhancement (LGE) short-axis MRI: LV, myocardium, RV (MS-CMRSeg 2019)." >> "$OUT/adapt.log" 2>&1
echo "exit $?" >> "$OUT/adapt.log"
$PY -c "import peft; print('peft', peft.__version__)" >> "$OUT/adapt.log" 2>&1
ls -la "$OUT/cmr-lge"
tail -n 30 "$OUT/adapt.log"

"""Systolic wall thickening from medseg's labels against the same measure on the experts' labels,
globally and per AHA segment (BENCHMARKS.md, "Systolic wall thickening").

    python benchmarks/thickening_agreement.py work_data/pairs/acdc_val.csv BATCH_OUT RESULT.json

PAIRS.csv has columns image,label,case,phase (ED / ES), as ``benchmarks/make_pairs.py`` writes
them; BATCH_OUT holds ``medseg batch`` labels named after the images (``<image stem>.nii.gz``).
Both label sets are measured by ``medseg.measure.measure_ed_es`` with the experts' label map
(``--label-map``, default ACDC's) for the references and each output's own for medseg's.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from medseg.io import read_label_volume
from medseg.io.writers import own_label_map
from medseg.measure.report import measure_ed_es


def _thickening(ed: Path, es: Path, label_map) -> dict:
    a, b = read_label_volume(ed), read_label_volume(es)
    rep = measure_ed_es(a.array[0], b.array[0], a.affine, label_map)
    return rep["wall_thickening_pct"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", type=Path)
    ap.add_argument("batch_out", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--label-map", default="rv=1,myo=2,lv=3", help="the experts' label values")
    args = ap.parse_args()
    studies: dict[str, dict[str, dict[str, Path]]] = {}
    with open(args.pairs, newline="") as f:
        for row in csv.DictReader(f):
            stem = Path(row["image"]).name.removesuffix(".nii.gz")
            studies.setdefault(row["case"], {})[row["phase"].upper()] = {"ref": Path(row["label"]), "pred": args.batch_out / f"{stem}.nii.gz"}
    per_case, seg_err, glob_err = {}, [], []
    for case, ph in sorted(studies.items()):
        pred_map = own_label_map(ph["ED"]["pred"])[0]
        ref, pred = _thickening(ph["ED"]["ref"], ph["ES"]["ref"], args.label_map), _thickening(ph["ED"]["pred"], ph["ES"]["pred"], pred_map)
        segs = {k: (pred["segments"][k], ref["segments"][k]) for k in map(str, range(1, 17))}
        per_case[case] = {"global": [pred["global"], ref["global"]], "segments": segs}
        glob_err.append(pred["global"] - ref["global"])
        seg_err += [p - r for p, r in segs.values() if np.isfinite(p) and np.isfinite(r)]
    g, s = np.asarray(glob_err), np.abs(np.asarray(seg_err))
    summary = {"studies": len(per_case), "global_mae_pts": float(np.mean(np.abs(g))), "global_bias_pts": float(np.mean(g)),
               "global_r": float(np.corrcoef([v["global"][0] for v in per_case.values()], [v["global"][1] for v in per_case.values()])[0, 1]),
               "segment_mae_pts": float(s.mean()), "segment_median_pts": float(np.median(s)), "segments": int(s.size)}
    from medseg._files import _jsonable  # NaN (r of one study, a segment without myocardium) as null: strict JSON

    args.out.write_text(json.dumps(_jsonable({"summary": summary, "cases": per_case}), indent=1, allow_nan=False))
    print(json.dumps(_jsonable(summary), indent=1))


if __name__ == "__main__":
    main()

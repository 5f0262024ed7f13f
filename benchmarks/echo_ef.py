"""Echo LVEF from medseg's masks against the expert's, on the CAMUS validation patients.

    python benchmarks/echo_ef.py PAIRS.csv OUT.json [--modes box,auto]

PAIRS.csv: ``benchmarks/make_pairs.py``'s ``camus_val.csv`` (four images per patient: 2CH / 4CH
at ED / ES). Every image is segmented with the default model (box prompts from the expert labels,
one per structure, and zero-click), then LV EF is measured on the model's and on the expert's
labels with the same code (:func:`medseg.measure.echo.measure_echo`, biplane method of disks, and
single-plane from the 4-chamber view). CAMUS images here have no pixel spacing, so EF only (a
ratio of volumes). Prints and writes the MAE, bias and the per-patient values.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

LABEL_MAP = "lv=1,myo=2,la=3"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--modes", default="box,auto")
    args = ap.parse_args(argv)

    from medseg.io import read_label_volume, read_volume
    from medseg.labels import LabelMap
    from medseg.measure.echo import measure_echo
    from medseg.models import load_model
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume

    lmap = LabelMap.parse(LABEL_MAP)
    model = load_model("default")
    views: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    with open(args.pairs) as fh:
        for row in csv.DictReader(fh):
            m = re.search(r"_(2CH|4CH)_(ED|ES)\.png$", row["image"])
            if m:
                views[row["case"]][f"{m[1]}_{m[2]}"] = (row["image"], row["label"])
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    for i, (case, v) in enumerate(sorted(views.items())):
        if len(v) != 4:
            continue
        masks: dict[str, dict[str, np.ndarray]] = {"expert": {}, **{m: {} for m in modes}}
        for key, (img_path, lab_path) in v.items():
            vol, ref = read_volume(img_path), read_label_volume(lab_path)
            gt = np.asarray(ref.array)
            masks["expert"][key] = gt[0, 0]
            for mode in modes:
                if mode == "box":
                    res = segment_volume(vol, model, prompts_from_labels(gt, lmap), label_map=lmap, confidence=False)
                else:
                    res = segment_volume(vol, model, None, auto=True, label_map=lmap, auto_structures=("lv", "myo", "la"), confidence=False)
                masks[mode][key] = res.labels[0, 0]
        row = {}
        for source, mk in masks.items():
            try:
                bi = measure_echo(mk["4CH_ED"], mk["4CH_ES"], mk["2CH_ED"], mk["2CH_ES"], label_map=lmap)["lv"]["ef_pct"]
                single = measure_echo(mk["4CH_ED"], mk["4CH_ES"], label_map=lmap)["lv"]["ef_pct"]
            except Exception as e:  # a mask without LV: recorded, counted as a failure
                bi = single = None
                row[f"{source}_error"] = str(e).splitlines()[0]
            row[source] = {"biplane_ef": bi, "a4c_ef": single}
        results[case] = row
        print(f"[{i + 1}/{len(views)}] {case}: " + ", ".join(f"{s} {r['biplane_ef']:.1f}" if isinstance(r, dict) and r["biplane_ef"] is not None
                                                               else f"{s} -" for s, r in row.items() if isinstance(r, dict)),
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = {}
    for mode in modes:
        for key in ("biplane_ef", "a4c_ef"):
            err = [r[mode][key] - r["expert"][key] for r in results.values()
                   if r[mode][key] is not None and r["expert"][key] is not None and math.isfinite(r[mode][key])]
            summary[f"{mode}.{key}"] = {"n": len(err), "failed": len(results) - len(err),
                                        "mae": round(statistics.fmean(abs(e) for e in err), 2),
                                        "bias": round(statistics.fmean(err), 2),
                                        "within_5_pts_pct": round(100 * sum(abs(e) <= 5 for e in err) / len(err), 1),
                                        "max_abs": round(max(abs(e) for e in err), 1)}
    expert = [r["expert"]["biplane_ef"] for r in results.values() if r["expert"]["biplane_ef"] is not None]
    summary["expert_biplane_ef_mean"] = round(statistics.fmean(expert), 1)
    out = {"pairs": str(args.pairs), "label_map": LABEL_MAP, "summary": summary, "cases": results,
           "seconds": round(time.perf_counter() - t0, 1)}
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

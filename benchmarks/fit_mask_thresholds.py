"""Fit the per-structure mask thresholds of the default model (medseg/_mask_thresholds.json).

    python benchmarks/fit_mask_thresholds.py PAIRS.csv [--structure lv] [--values 0,-0.5,-1,-2] [--write]

PAIRS.csv: ``benchmarks/make_pairs.py``'s ``acdc_endcheck.csv`` (the 20 ACDC training patients no
fine-tune recorded; never the validation patients). For each candidate logit threshold of the
structure, every pair is segmented in key-slice mode (one box on the middle slice, then
propagation: the mode the threshold matters most in, since each mask prompts the next slice)
and the structure's mean 3-D Dice is printed; ``--write`` stores the best in
medseg/_mask_thresholds.json for the current default (its sha256), keeping the other structures'.
Thresholds are logits: 0 is the model's own boundary, -1 draws a structure a little larger.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", type=Path)
    ap.add_argument("--structure", default="lv")
    ap.add_argument("--values", default="0,-0.5,-1,-2")
    ap.add_argument("--label-map", default="rv=1,myo=2,lv=3")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)

    from medseg import predictor
    from medseg.evaluation import evaluate_pairs, read_pairs
    from medseg.labels import LabelMap
    from medseg.models import load_model

    lmap, pairs, model = LabelMap.parse(args.label_map), read_pairs(args.pairs), load_model("default")
    path = Path(predictor.__file__).with_name("_mask_thresholds.json")
    old = json.loads(path.read_text()) if path.is_file() else {}
    kept = old.get("logit_thresholds", {}) if old.get("model_sha256") == model.sha256 else {}
    scores: dict[str, float] = {}
    for v in (float(x) for x in args.values.split(",")):
        predictor.THRESHOLD_OVERRIDE = {**kept, args.structure: v}
        t0 = time.perf_counter()
        res = evaluate_pairs(pairs, lmap, "key-slice", model, workers=1)
        scores[f"{v:g}"] = round(res["summary"]["dice"][args.structure], 4)
        print(f"{args.structure} threshold {v:g}: Dice {scores[f'{v:g}']:.4f} (mean {res['summary']['dice_mean']:.4f}; "
              f"{time.perf_counter() - t0:.0f} s)", flush=True)
    predictor.THRESHOLD_OVERRIDE = None
    best = max(scores, key=scores.get)
    print(f"best: {best}")
    if args.write:
        fit = {**(old.get("fit", {}) if kept else {}), args.structure: scores}
        obj = {"model_sha256": model.sha256, "logit_thresholds": {**kept, args.structure: float(best)},
               "fitted_on": f"{args.pairs.name}, key slice + propagation, mean {args.structure} Dice", "fit": fit,
               "date": time.strftime("%Y-%m-%d"),
               **{k: old[k] for k in ("modalities", "modalities_note") if kept and k in old}}
        path.write_text(json.dumps(obj, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

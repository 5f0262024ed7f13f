"""Fit the RV end-slice check (medseg/end_check.py) on 20 ACDC training patients.

    python benchmarks/fit_end_check.py ../shared/data [--out medseg/_end_check.json]

1. Runs key-slice segmentation (one expert box per structure on the middle slice, then
   propagation, as `medseg evaluate --prompt key-slice`) of the ED and ES volumes of the 20
   ACDC training patients of make_pairs split "end-check" (the 13th-16th of each disease group,
   left out of the on-policy decoder fine-tune's recordings, so the decoder has not learned
   their RV ends) with the check switched off, and records the features of the two
   end slices of each RV run (medseg.end_check.features) and whether the expert labelled RV
   there.
2. Fits one L2-regularised logistic model per end (base, apex), each slice weighted by its
   area (a wrong basal slice of 4,000 px matters more than 40 apical ones).
3. Out-of-fold check (5 folds by patient): fits on 4/5, re-runs the held-out patients with the
   check on, reports the RV Dice before/after. The validation patients are not used here; their
   score comes from `medseg evaluate` afterwards.
4. Ships the weights (``--out``) only when the out-of-fold RV Dice gains at least MIN_GAIN;
   otherwise removes ``--out``, so the check is off for this model (a check that never fires
   costs time and explains nothing). The report says which.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_pairs import acdc  # noqa: E402

from medseg import end_check  # noqa: E402

LABELS = "rv=1,myo=2,lv=3"
MAX_TRIM = 2
THRESHOLD = 0.5
MIN_GAIN = 0.002  # out-of-fold RV Dice gain below which no weights are shipped


def segment(row: dict, w: dict | None):
    from medseg.io import read_label_volume, read_volume
    from medseg.labels import LabelMap
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import _run_prompts
    from medseg.session import Session

    end_check.weights = lambda: w
    vol, ref = read_volume(row["image"]), np.asarray(read_label_volume(row["label"]).array)
    lm = LabelMap.parse(LABELS)
    s = Session(vol, MODEL, lm)
    _run_prompts(s, prompts_from_labels(ref, lm, key_slice=True), False, "z", None)
    return s, ref


def collect(rows: list[dict]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        s, ref = segment(row, None)
        for t in range(s.volume.n_frames):
            for end, z, z_inner in end_check.run_ends(s, "rv", ("lv", "myo"), t) or []:
                x = end_check.features(s, "rv", ("lv", "myo"), t, z, z_inner)
                if x is None or not end_check._by_model(s.results.get(("rv", t, z))):
                    continue
                out.append(
                    {
                        "case": row["case"],
                        "phase": row["phase"],
                        "end": end,
                        "x": x,
                        "not_rv": bool(not (ref[t, z] == 1).any()),
                        "area": int((s.labels[t, z] == 1).sum()),
                    }
                )
        print(f"collect {i + 1}/{len(rows)}", flush=True)
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, sw: np.ndarray, c: float = 1.0) -> tuple[float, list[float]]:
    """Weighted logistic regression, 0.5 |w|^2 + C sum sw * logloss (intercept not penalised)."""
    from scipy.optimize import minimize

    def loss(p):
        z = p[0] + x @ p[1:]
        ll = np.logaddexp(0, z) - y * z
        return 0.5 * p[1:] @ p[1:] + c * float(sw @ ll)

    def grad(p):
        z = p[0] + x @ p[1:]
        r = c * sw * (1 / (1 + np.exp(-z)) - y)
        return np.r_[r.sum(), p[1:] + x.T @ r]

    p = minimize(loss, np.zeros(x.shape[1] + 1), jac=grad, method="L-BFGS-B").x
    return float(p[0]), [float(v) for v in p[1:]]


def fit(recs: list[dict], fitted_on: str) -> dict:
    ends = {}
    for end in ("base", "apex"):
        r = [d for d in recs if d["end"] == end]
        x, y = np.array([d["x"] for d in r]), np.array([d["not_rv"] for d in r], float)
        sw = np.array([d["area"] for d in r], float)
        w0, w = fit_logistic(x, y, sw / sw.mean())
        ends[end] = {"w0": w0, "w": w, "n": len(r), "not_rv": int(y.sum())}
    return {
        "structure": "rv",
        "context": ["lv", "myo"],
        "features": list(end_check.FEATURES),
        "ends": ends,
        "threshold": THRESHOLD,
        "max_trim": MAX_TRIM,
        "model_sha256": MODEL.sha256,
        "fitted_on": fitted_on,
    }


def rv_dice(s, ref) -> float:
    a, b = s.labels == 1, ref == 1
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def main() -> None:
    global MODEL
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, default=Path(end_check.__file__).with_name("_end_check.json"))
    ap.add_argument("--report", type=Path, default=Path("docs/bench/end_check_fit.json"))
    a = ap.parse_args()
    from medseg.models import load_model

    MODEL = load_model("default")
    rows = acdc(a.data, "end-check")
    t0 = time.perf_counter()
    recs = collect(rows)
    pids = sorted({r["case"] for r in rows})
    folds = [set(pids[i::5]) for i in range(5)]
    before, after = [], []
    for k, held in enumerate(folds):
        w = fit([d for d in recs if d["case"] not in held], "fold")
        for row in (r for r in rows if r["case"] in held):
            s, ref = segment(row, None)
            before.append(rv_dice(s, ref))
            s, ref = segment(row, w)
            after.append(rv_dice(s, ref))
        print(f"fold {k + 1}/5: RV Dice {np.mean(before):.4f} -> {np.mean(after):.4f}", flush=True)
    w = fit(recs, f"ACDC training patients held out of the on-policy recordings ({len(pids)}, ED+ES, key-slice propagation; benchmarks/fit_end_check.py)")
    gain = float(np.mean(after) - np.mean(before))
    shipped = gain >= MIN_GAIN
    if shipped:
        a.out.write_text(json.dumps(w, indent=2) + "\n")
    else:
        a.out.unlink(missing_ok=True)
    report = {
        "shipped": shipped,
        "min_gain": MIN_GAIN,
        "volumes": len(rows),
        "end_slices": len(recs),
        "not_rv": sum(d["not_rv"] for d in recs),
        "by_end_phase": {
            f"{e}/{p}": [sum(1 for d in recs if d["end"] == e and d["phase"] == p and d["not_rv"]), sum(1 for d in recs if d["end"] == e and d["phase"] == p)]
            for e in ("base", "apex")
            for p in ("ED", "ES")
        },
        "out_of_fold_rv_dice": {"before": float(np.mean(before)), "after": float(np.mean(after))},
        "weights": w,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    a.report.parent.mkdir(parents=True, exist_ok=True)
    a.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["out_of_fold_rv_dice"]), f"-> {a.out}" if shipped else f"gain {gain:+.4f} < {MIN_GAIN}: no weights shipped ({a.out} removed)")


if __name__ == "__main__":
    main()

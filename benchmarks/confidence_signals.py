"""Candidate confidence signals, compared out-of-fold (docs/confidence.md, "More signals").

    python benchmarks/confidence_signals.py ../shared/data OUT_DIR [--reuse]

Segments the validation split as benchmarks/calibrate_confidence.py does (ACDC key-slice and
zero-click, CAMUS box) and records per written slice, next to the real Dice: the predicted IoU,
agreement with 2 and 4 jittered boxes, SAM's stability score, the pixel variance of the jittered
masks, agreement with the structure token alone in the same ROI, and agreement with a
horizontally / vertically flipped image (an extra encode each). Then, for each combination, a
logistic map fitted on one half of the patients and scored on the other, and the review rule of
calibrate_confidence.py (catch >= 90 % of the structure-volumes with Dice < 0.85, flag the fewest
good ones). Writes OUT_DIR/signals_raw.json and OUT_DIR/signals_report.json.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_pairs import acdc, camus  # noqa: E402

from medseg.evaluation import dice  # noqa: E402

COMBOS = [("iou", "agree2"), ("iou", "agree4"), ("iou", "agree2", "stab1"), ("iou", "agree2", "stab2"), ("iou", "agree4", "jit_var"),
          ("iou", "agree4", "agree_tok"), ("iou", "agree2", "hflip"), ("iou", "agree2", "hflip", "vflip")]



def slice_features(session, name: str, t: int, z: int) -> dict | None:
    from medseg.confidence import _jittered_boxes
    from medseg.predictor import SlicePredictor
    from medseg.types import Box

    mask = session.labels[t, z] == session.structure(name).value
    res = session.results.get((name, t, z))
    if mask.sum() < 3 or res is None:
        return None
    session._set_slice(t, z)
    pr = session.predictor
    roi = np.asarray(res.roi, dtype=np.float64)
    boxes = _jittered_boxes(mask, 4, seed=zlib.crc32(f"{name}/{t}/{z}".encode()))
    low, ref = pr.predict_boxes(boxes, structure=name, roi=roi, reference=mask)  # 4 jittered boxes, ROI grid
    token = pr._decode(roi, None, (), name, None, None, False)  # the structure token alone, same ROI
    low = np.concatenate([low, (token.logits > 0)[None]])
    agree = [dice(m, ref) for m in low]
    pm = low[:4].mean(0)
    logits = np.asarray(res.logits)
    out = {"iou": float(res.score), "agree2": float(np.mean(agree[:2])), "agree4": float(np.mean(agree[:4])), "agree_tok": agree[4],
           "jit_var": float((pm * (1 - pm)).sum() / max(ref.sum(), 1)), "area": int(mask.sum())}
    for off in (1, 2):
        out[f"stab{off}"] = float((logits > off).sum() / max((logits > -off).sum(), 1))
    b, (h, w) = Box.from_mask(mask), mask.shape
    flips = {"hflip": (lambda a: np.ascontiguousarray(a[:, ::-1]), Box(b.y0, w - 1 - b.x1, b.y1, w - 1 - b.x0)),
             "vflip": (lambda a: np.ascontiguousarray(a[::-1, :]), Box(h - 1 - b.y1, b.x0, h - 1 - b.y0, b.x1))}
    for key, (flip, fbox) in flips.items():
        fp = SlicePredictor(pr.loaded)
        fp.set_image(flip(session._norm[t, z]))
        out[key] = dice(flip(fp.predict(box=fbox, structure=name).mask), mask)
    return out


def collect(root: Path) -> dict:
    from medseg.io import read_label_volume, read_volume
    from medseg.labels import LabelMap
    from medseg.models import load_model
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import _run_prompts
    from medseg.session import Session

    model, slices, vols = load_model("default"), [], []
    jobs = [(r, "key-slice", "rv=1,myo=2,lv=3") for r in acdc(root)] + [(r, "auto", "rv=1,myo=2,lv=3") for r in acdc(root)]
    jobs += [(r, "box", "lv=1,myo=2,la=3") for r in camus(root)]
    for i, (row, mode, lm_text) in enumerate(jobs):
        lm = LabelMap.parse(lm_text)
        vol, ref = read_volume(row["image"]), np.asarray(read_label_volume(row["label"]).array)
        s = Session(vol, model, lm)
        if mode == "auto":
            s.auto(list(lm.names))
        else:
            _run_prompts(s, prompts_from_labels(ref, lm, key_slice=(mode == "key-slice")), False, "z", None)
        case = f"{row['case']}/{row.get('phase', '')}/{Path(str(row['image'])).name}"
        for name, v in lm.values.items():
            first = len(slices)
            for t, z in s.iter_structure_slices(name):
                f = slice_features(s, name, t, z)
                if f is not None:
                    slices.append({**f, "case": case, "mode": mode, "structure": name, "dice": dice(s.labels[t, z] == v, ref[t, z] == v)})
            if (s.labels == v).any() or (ref == v).any():
                vols.append({"case": case, "mode": mode, "structure": name, "dice": dice(s.labels == v, ref == v), "slice_ids": list(range(first, len(slices)))})
        print(f"{i + 1}/{len(jobs)} {mode} {case}", flush=True)
    return {"slices": slices, "vols": vols}


def analyse(raw: dict) -> dict:
    from scipy.optimize import minimize
    from scipy.stats import spearmanr

    slices, vols = raw["slices"], raw["vols"]
    y = np.array([s["dice"] for s in slices])
    fold = np.array([zlib.crc32(s["case"].split("/")[0].encode()) % 2 for s in slices])
    bad = np.array([v["dice"] < 0.85 for v in vols])
    ids = [v["slice_ids"] for v in vols]

    def fit(x, t):
        return minimize(lambda w: float(np.mean((1 / (1 + np.exp(-(w[0] + x @ w[1:]))) - t) ** 2)), np.zeros(x.shape[1] + 1), method="L-BFGS-B").x

    def oof(combo):
        x = np.array([[s[k] for k in combo] for s in slices])
        pred = np.zeros(len(y))
        for f in (0, 1):
            w = fit(x[fold != f], y[fold != f])
            pred[fold == f] = 1 / (1 + np.exp(-(w[0] + x[fold == f] @ w[1:])))
        return pred

    def rule(pred, weights=None):
        vconf = np.array([np.average(pred[i], weights=None if weights is None else weights[i]) if i else 0.0 for i in ids])
        vmin = np.array([pred[i].min() if i else 0.0 for i in ids])
        best = None
        for ts in np.arange(0.0, 0.96, 0.025):
            for tv in np.arange(0.5, 0.99, 0.005):
                flag = (vconf < tv) | (vmin < ts)
                catch, false = flag[bad].mean(), flag[~bad].mean()
                key = (catch >= 0.9, -false if catch >= 0.9 else catch - false)
                if best is None or key > best[0]:
                    best = (key, catch, false)
        return {"spearman": float(spearmanr(pred, y).statistic), "bad_caught": float(best[1]), "good_flagged": float(best[2])}

    report = {"+".join(c): rule(oof(c)) for c in COMBOS}
    shipped = oof(COMBOS[0])
    report["iou+agree2, area-weighted volume mean"] = rule(shipped, np.array([s["area"] for s in slices], float))
    report["iou+agree2, a volume threshold per structure (cross-fold)"] = per_structure(shipped, vols, bad, ids)
    for k, v in report.items():
        print(f"{k:60s} {v}")
    return report


def per_structure(pred: np.ndarray, vols: list[dict], bad: np.ndarray, ids: list) -> dict:
    """One volume threshold per structure, chosen on one half of the patients (catch >= 90 %
    there, fewest good flagged) and scored on the other half."""
    vconf = np.array([pred[i].mean() if i else 0.0 for i in ids])
    st = np.array([v["structure"] for v in vols])
    vfold = np.array([zlib.crc32(v["case"].split("/")[0].encode()) % 2 for v in vols])
    grid = np.arange(0.5, 0.99, 0.005)
    out = {}
    for f in (0, 1):
        train = vfold != f
        curves = {s: [((vconf < t) & train & bad & (st == s)).sum() - 1j * ((vconf < t) & train & ~bad & (st == s)).sum() for t in grid] for s in set(st)}
        best = None
        for lam in np.concatenate([np.linspace(0, 5, 201), [10, 20, 50]]):
            pick = {s: int(np.argmax([c.real * lam + c.imag for c in cv])) for s, cv in curves.items()}
            caught = sum(curves[s][j].real for s, j in pick.items())
            false = -sum(curves[s][j].imag for s, j in pick.items())
            if caught >= 0.9 * (train & bad).sum() and (best is None or false < best[0]):
                best = (false, {s: grid[j] for s, j in pick.items()})
        flag = np.array([vconf[i] < best[1][st[i]] for i in range(len(vols))])
        test = vfold == f
        out[f"fold{f}"] = {"bad_caught": float(flag[test & bad].mean()), "good_flagged": float(flag[test & ~bad].mean())}
    return out


def main(root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    raw_path = out / "signals_raw.json"
    if "--reuse" in sys.argv and raw_path.is_file():
        raw = json.loads(raw_path.read_text())
    else:
        raw = collect(root)
        raw_path.write_text(json.dumps(raw))
    (out / "signals_report.json").write_text(json.dumps(analyse(raw), indent=1) + "\n")


if __name__ == "__main__":
    from _usage import check_args

    check_args(__doc__, 2)
    main(Path(sys.argv[1]), Path(sys.argv[2]))

"""Fit and check the confidence calibration on the validation split (docs/confidence.md).

    python benchmarks/calibrate_confidence.py ../shared/data docs/confidence

Segments the ACDC validation volumes (key-slice and zero-click) and the CAMUS validation images
(box) with the shipped model, records per slice the predicted IoU, the perturbation agreement
and the real Dice, fits ``sigmoid(w0 + w1 iou + w2 agreement)`` to the real Dice with 2-fold
cross-fitting by case (the reported numbers are out-of-fold), chooses the review thresholds,
writes medseg/_confidence_calibration.json (fitted on all), a reliability table + plot, and
the measured cost of the extra decodes.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_pairs import acdc, camus  # noqa: E402


def collect(root: Path) -> tuple[list[dict], list[dict], dict]:
    from medseg.confidence import slice_signals
    from medseg.io import read_label_volume, read_volume
    from medseg.labels import LabelMap
    from medseg.models import load_model
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import _run_prompts
    from medseg.session import Session

    model = load_model("default")
    slices, vols, cost = [], [], {"segment_s": 0.0, "confidence_s": 0.0}
    jobs = [(r, "key-slice", LabelMap.parse("rv=1,myo=2,lv=3")) for r in acdc(root)]
    jobs += [(r, "auto", LabelMap.parse("rv=1,myo=2,lv=3")) for r in acdc(root)]
    jobs += [(r, "box", LabelMap.parse("lv=1,myo=2,la=3")) for r in camus(root)]
    for i, (row, mode, lm) in enumerate(jobs):
        vol, ref = read_volume(row["image"]), np.asarray(read_label_volume(row["label"]).array)
        s = Session(vol, model, lm)
        t0 = time.perf_counter()
        if mode == "auto":
            s.auto([n for n in lm.names])
        else:
            _run_prompts(s, prompts_from_labels(ref, lm, key_slice=(mode == "key-slice")), False, "z", None)
        cost["segment_s"] += time.perf_counter() - t0
        case = f"{row['case']}/{row.get('phase', '')}/{Path(str(row['image'])).name}"
        for name, v in lm.values.items():
            feats = []
            t1 = time.perf_counter()
            for t, z in s.iter_structure_slices(name):
                sig = slice_signals(s, name, t, z)
                if sig is None:
                    continue
                a, b = s.labels[t, z] == v, ref[t, z] == v
                d = float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
                feats.append({"case": case, "mode": mode, "structure": name, "t": t, "z": z, "iou": sig[0], "agree": sig[1], "area": sig[2], "dice": d})
            cost["confidence_s"] += time.perf_counter() - t1
            slices += feats
            a, b = s.labels == v, ref == v
            if b.any() or a.any():
                vols.append({"case": case, "mode": mode, "structure": name, "dice": float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)),
                             "slice_ids": [len(slices) - len(feats) + j for j in range(len(feats))]})
        print(f"{i + 1}/{len(jobs)} {mode} {case}", flush=True)
    return slices, vols, cost


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    def loss(w):
        p = 1 / (1 + np.exp(-(w[0] + x @ w[1:])))
        return float(np.mean((p - y) ** 2))

    return minimize(loss, np.array([-2.0, 2.0, 3.0]), method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9}).x


def main(root: Path, out: Path) -> None:
    from scipy.stats import spearmanr

    out.mkdir(parents=True, exist_ok=True)
    raw = out / "raw_records.json"
    if raw.is_file() and "--reuse" in sys.argv:
        slices, vols, cost = json.loads(raw.read_text()).values()
    else:
        slices, vols, cost = collect(root)
        raw.write_text(json.dumps({"slices": slices, "vols": vols, "cost": cost}))
    x = np.array([[s["iou"], s["agree"]] for s in slices])
    y = np.array([s["dice"] for s in slices])
    fold = np.array([zlib.crc32(s["case"].split("/")[0].encode()) % 2 for s in slices])
    pred = np.zeros(len(y))
    for f in (0, 1):
        w = fit(x[fold != f], y[fold != f])
        pred[fold == f] = 1 / (1 + np.exp(-(w[0] + x[fold == f] @ w[1:])))
    w_all = fit(x, y)
    rho = spearmanr(pred, y).statistic
    bins = np.linspace(0, 1, 11)
    table, ece = [], 0.0
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (pred >= lo) & (pred < hi) if hi < 1 else (pred >= lo)
        if m.any():
            table.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(m.sum()), "mean_confidence": float(pred[m].mean()), "mean_dice": float(y[m].mean())})
            ece += m.sum() / len(y) * abs(pred[m].mean() - y[m].mean())
    thr = choose_thresholds(vols, pred)
    cal = {"w0": float(w_all[0]), "w_iou": float(w_all[1]), "w_agreement": float(w_all[2]), **thr["chosen"],
           "fitted_on": f"{len(y)} slices: ACDC validation (key-slice + zero-click), CAMUS validation (box)", "k_jitter": 2}
    Path("medseg/_confidence_calibration.json").write_text(json.dumps(cal, indent=2) + "\n")
    report = {"spearman_slices_out_of_fold": float(rho), "ece_out_of_fold": float(ece), "n_slices": len(y), "reliability": table,
              "thresholds": thr, "calibration": cal, "cost": {**cost, "ratio": cost["confidence_s"] / max(cost["segment_s"], 1e-9)},
              "spearman_by_mode": {m: float(spearmanr(pred[[s["mode"] == m for s in slices]], y[[s["mode"] == m for s in slices]]).statistic) for m in ("key-slice", "auto", "box")}}
    (out / "calibration_report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(table, rho, ece, out / "reliability.png")
    print(json.dumps({k: v for k, v in report.items() if k not in ("reliability",)}, indent=1))


def choose_thresholds(vols: list[dict], pred: np.ndarray, tolerance: float = 0.01) -> dict:
    """Volume flagged when its mean slice confidence < t_vol or any slice < t_slice; among the
    pairs that catch >= 90% of volumes with Dice < 0.85, take the fewest good volumes flagged,
    and within ``tolerance`` of that the pair that flags the fewest slices (a review sheet with
    every fifth slice framed red for 0.3 points of good volumes is the worse trade)."""
    grid_s, grid_v = np.round(np.arange(0.3, 0.96, 0.025), 3), np.round(np.arange(0.5, 0.99, 0.01), 3)
    bad = np.array([v["dice"] < 0.85 for v in vols])
    vconf = np.array([np.mean(pred[v["slice_ids"]]) if v["slice_ids"] else 0.0 for v in vols])
    vmin = np.array([np.min(pred[v["slice_ids"]]) if v["slice_ids"] else 0.0 for v in vols])
    rows = []
    for ts in grid_s:
        for tv in grid_v:
            flag = (vconf < tv) | (vmin < ts)
            catch = flag[bad].mean() if bad.any() else 1.0
            false = flag[~bad].mean() if (~bad).any() else 0.0
            rows.append((ts, tv, catch, false, float((pred < ts).mean())))
    ok = [r for r in rows if r[2] >= 0.9]
    if ok:
        least = min(r[3] for r in ok)
        ts, tv, catch, false, sl = min((r for r in ok if r[3] <= least + tolerance), key=lambda r: (r[4], r[3], r[0]))
    else:  # nothing catches 90 %: the best catch-minus-false trade
        ts, tv, catch, false, sl = max(rows, key=lambda r: r[2] - r[3])
    return {"chosen": {"slice_threshold": float(ts), "volume_threshold": float(tv)}, "catch_rate_bad_volumes": float(catch),
            "flag_rate_good_volumes": float(false), "slices_flagged": sl, "tolerance": tolerance, "n_volumes": len(vols),
            "n_bad_volumes": int(bad.sum()), "note": "chosen on the same out-of-fold confidences it reports"}


def plot(table: list[dict], rho: float, ece: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    c = [r["mean_confidence"] for r in table]
    d = [r["mean_dice"] for r in table]
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(c, d, "o-", color="tab:blue", label="medseg (out-of-fold)")
    for r in table:
        ax.annotate(str(r["n"]), (r["mean_confidence"], r["mean_dice"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("predicted confidence (per slice)")
    ax.set_ylabel("actual Dice (per slice)")
    ax.set_title(f"Reliability: Spearman {rho:.2f}, ECE {ece:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    from _usage import check_args

    check_args(__doc__, 2)
    main(Path(sys.argv[1]), Path(sys.argv[2]))

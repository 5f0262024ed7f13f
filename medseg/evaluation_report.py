"""What ``medseg evaluate --csv --plots`` writes besides RESULT.json: one CSV row per case (for
the user's own statistics) and three figures (PNG, atomic):

* ``dice.png``: every case's Dice per structure (one dot per volume, box = quartiles), the
  0.85 line of the review statistics, dots the review flagged ringed in black;
* ``confidence.png``: volume confidence against Dice per structure, with the volume threshold
  the review flags use: on the user's own data, whether the flags point at the failures;
* ``bland_altman.png`` (cases with ED and ES): LVEF, LV mass, LV EDV, LV ESV (and RVEF, RV EDV) as
  difference (medseg - reference, or the scored labels' name - reference: :func:`difference_name`)
  against the mean, with the bias and the 95 % limits of agreement of ``summary.agreement``.

And the statistics of RESULT.json's ``summary`` that these show: how well the review flags
catch real failures (:func:`review_stats`, ``summary.review``) and the structures handed over
for manual review instead of segmented (:func:`handed_over_summary`, ``summary.handed_over``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ._files import write_text_atomic

#: (key in a case's "clinical", label, unit) of the Bland-Altman panels and the agreement table.
CLINICAL = (("lvef", "LVEF", "%"), ("lv_mass", "LV mass", "g"), ("edv", "LV EDV", "mL"), ("esv", "LV ESV", "mL"), ("rvef", "RVEF", "%"), ("rv_edv", "RV EDV", "mL"),
            ("rv_esv", "RV ESV", "mL"), ("wall_thickening", "Wall thickening", "%"))
_PRED_REF = {"lvef": ("lvef_pred", "lvef_ref"), "lv_mass": ("lv_mass_pred_g", "lv_mass_ref_g"), "edv": ("edv_pred_ml", "edv_ref_ml"), "esv": ("esv_pred_ml", "esv_ref_ml"),
             "rvef": ("rvef_pred", "rvef_ref"), "rv_edv": ("rv_edv_pred_ml", "rv_edv_ref_ml"),
             "rv_esv": ("rv_esv_pred_ml", "rv_esv_ref_ml"),
             "wall_thickening": ("wall_thickening_pred_pct", "wall_thickening_ref_pct")}


def clinical_pairs(cases: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(medseg, reference) values of one clinical measure over the cases that have it."""
    p, r = _PRED_REF[key]
    rows = [c["clinical"] for c in cases if p in c.get("clinical", {})]
    vals = [(row[p], row[r]) for row in rows if row[p] is not None and row[r] is not None
            and math.isfinite(row[p]) and math.isfinite(row[r])]
    return np.array([v[0] for v in vals], float), np.array([v[1] for v in vals], float)


def agreement(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Bland-Altman statistics per clinical measure: bias (mean of medseg, or the labels scored, - reference), SD of the
    differences and the 95 % limits of agreement (bias +/- 1.96 SD; None with fewer than 2 cases)."""
    out = {}
    for key, _, _ in CLINICAL:
        pred, ref = clinical_pairs(cases, key)
        if pred.size == 0:
            continue
        d = pred - ref
        sd = float(np.std(d, ddof=1)) if d.size > 1 else None
        bias = float(np.mean(d))
        out[key] = {"n": int(d.size), "bias": bias, "sd": sd,
                    "loa": [bias - 1.96 * sd, bias + 1.96 * sd] if sd is not None else None}
    return out


#: review codes that name no structure -> the structures they put in doubt (of those the case has)
CODE_STRUCTURES = {"myo_not_enclosing_lv": ("lv", "myo"), "rv_not_adjacent_septum": ("rv",), "lv_mass_implausible": ("myo",)}


def flagged_structures(flags: list[dict[str, Any]], structures: list[str] | tuple[str, ...]) -> list[str]:
    """The structures review ``flags`` flag, sorted: every structure a flag names
    (``structure``); for a review flag that names none, those its code is about
    (:data:`CODE_STRUCTURES`: ``lv_mass_implausible`` the myocardium, ``rv_not_adjacent_septum``
    the RV, ``myo_not_enclosing_lv`` the LV and myocardium), and for any other
    (``measurement_failed``: the segmentation as a whole is in doubt) every one of
    ``structures`` (the case's). A structure-less flag whose code is no review code
    (:data:`medseg.review.REVIEW_CODES`; ``incomplete_coverage`` is the acquisition's) flags
    nothing."""
    from .review import REVIEW_CODES

    named = {f["structure"] for f in flags if f.get("structure")}
    for f in flags:
        if not f.get("structure") and f.get("code") in REVIEW_CODES:
            about = CODE_STRUCTURES.get(f["code"])
            named |= set(structures) if about is None else set(about) & set(structures)
    return sorted(named)


def is_flagged(name: str, review: dict[str, Any]) -> bool:
    """Whether a case's ``review`` (:func:`medseg.evaluation._review_of`) flags structure
    ``name``: one of its flagged ``structures``, or put in doubt by a flag that names no
    structure (``case_flags``, :func:`flagged_structures`)."""
    return name in review.get("structures", []) or name in flagged_structures([{"code": c} for c in review.get("case_flags", [])], [name])


def handed_over_summary(cases: list[dict], entire: list[Any], label_map: Any) -> dict[str, Any] | None:
    """``summary.handed_over``: the structure-volumes a batch handed over for manual review
    instead of segmenting (``--min-confidence``), not scored: ``n_volumes``, ``n_cases_entire``
    (cases with no labels at all) and ``cases`` [{case, phase, structures, entire}]. The
    structures of a case handed over entirely are those its batch summary lists that the label
    map names (all of the label map's when it lists none). None when nothing was handed over."""
    rows = [{"case": c["case"], "phase": c.get("phase"), "structures": list(c["handed_over"]), "entire": False}
            for c in cases if c.get("handed_over")]
    for p in entire:
        names = [n for n in label_map.names if n in (p.handed_over or ())] or list(label_map.names)
        rows.append({"case": p.case, "phase": p.phase, "structures": names, "entire": True})
    if not rows:
        return None
    return {"n_volumes": sum(len(r["structures"]) for r in rows), "n_cases_entire": len(entire), "cases": rows}


def review_stats(cases: list[dict], bad_dice: float = 0.85) -> dict[str, Any]:
    """How well the review flags catch real failures: per structure volume (a structure of a
    case is flagged when a review flag names it, or a structure-less flag puts it in doubt:
    ``review.case_flags`` of :func:`medseg.evaluation._review_of`, :func:`is_flagged`) and per case (bad = any structure below
    ``bad_dice``; flagged = needs_review). The volumes are those scored (``dice``): structures
    handed over for manual review are not among them, nor cases whose labels were edited by hand
    (``edited_by_hand``)."""
    vb = vf = vbf = vgf = 0
    cb = cf = cbf = cgf = 0
    cases = [c for c in cases if not c.get("edited_by_hand")]  # their flags were about the model's labels, not these
    for c in cases:
        rv = c.get("review", {})
        case_flag = bool(rv.get("needs_review"))
        case_bad = any(d < bad_dice for d in c["dice"].values())
        cb += case_bad
        cf += case_flag
        cbf += case_bad and case_flag
        cgf += (not case_bad) and case_flag
        for name, d in c["dice"].items():
            flagged = is_flagged(name, rv)
            bad = d < bad_dice
            vb += bad
            vf += flagged
            vbf += bad and flagged
            vgf += (not bad) and flagged
    n_vol = sum(len(c["dice"]) for c in cases)
    pct = lambda a, b: round(100.0 * a / b, 1) if b else None  # noqa: E731
    return {"bad_dice_below": bad_dice,
            "volumes": {"n": n_vol, "n_bad": vb, "n_flagged": vf, "bad_flagged_pct": pct(vbf, vb), "good_flagged_pct": pct(vgf, n_vol - vb), "flagged_fine_pct": pct(vgf, vf)},
            "cases": {"n": len(cases), "n_bad": cb, "n_flagged": cf, "bad_flagged_pct": pct(cbf, cb), "good_flagged_pct": pct(cgf, len(cases) - cb), "flagged_fine_pct": pct(cgf, cf)}}


def case_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per case: case, phase, dice.<s>, hd95_mm.<s> (or hd95_px), the clinical
    values of the case's ED row, review (needs_review, confidence.<s>, codes), seconds."""
    rows = []
    names = list(result["summary"]["dice"])
    for c in result["cases"]:
        row: dict[str, Any] = {"case": c["case"], "phase": c.get("phase") or ""}
        if "frame" in c:  # the frame of a cine image the case's one-frame reference segments (PAIRS.csv's frame column)
            row["frame"] = c["frame"]
        for n in names:
            row[f"dice.{n}"] = _cell(c["dice"].get(n))
        for unit in ("hd95_mm", "hd95_px"):
            if unit in c:
                for n in names:
                    row[f"{unit}.{n}"] = _cell(c[unit].get(n))
        for k, v in c.get("clinical", {}).items():
            row[k] = _cell(v)
        rv = c.get("review", {})
        row["needs_review"] = bool(rv.get("needs_review")) if "review" in c else ""
        for n in names:
            row[f"confidence.{n}"] = _cell(rv.get("confidence", {}).get(n))
        row["review_codes"] = " ".join(rv.get("codes", []))
        if "handed_over" in c:  # left out below --min-confidence: no Dice, not in the review statistics
            row["handed_over"] = " ".join(c["handed_over"])
        if "not_in_reference" in c:  # drawn where the reference has none: not scored
            row["not_in_reference"] = " ".join(c["not_in_reference"])
        for key in ("measure_flags", "not_in_label_map"):  # {"predicted": [...], "reference": [...]} -> "predicted: a b; reference: c"
            if key in c:
                row[key] = "; ".join(f"{who}: {' '.join(map(str, v))}" for who, v in c[key].items())
        row["seconds"] = c.get("seconds", "")
        row["image"], row["label"] = c["image"], c["label"]
        if "prediction" in c:
            row["prediction"] = c["prediction"]
            row["not_predicted"] = " ".join(c.get("not_predicted", []))
            row["edited_by_hand"] = bool(c.get("edited_by_hand"))
        rows.append(row)
    return rows


def write_cases_csv(result: dict[str, Any], path: str | Path) -> Path:
    rows = case_rows(result)
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    from ._files import csv_text

    return write_text_atomic(path, csv_text(fields, rows))


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else round(v, 4)
    return "" if v is None else v


def write_plots(result: dict[str, Any], folder: str | Path, volume_threshold: float | None = None) -> dict[str, Path]:
    """The figures of the module docstring that the result has data for -> {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"dice": dice_png(result, folder / "dice.png")}
    if any(c.get("review", {}).get("confidence") for c in result["cases"]):
        written["confidence"] = confidence_png(result, folder / "confidence.png", volume_threshold)
    if any(clinical_pairs(result["cases"], k)[0].size >= 2 for k, _, _ in CLINICAL):
        written["bland_altman"] = bland_altman_png(result, folder / "bland_altman.png")
    return written


def difference_name(settings: dict) -> tuple[str, str]:
    """(what was scored, what against) for the Bland-Altman axes and the console: ("medseg",
    "reference") for a model run, else the names ``evaluate`` gave the labels made before
    (``settings.compared``: the --predicted folder's name, e.g. another reader's)."""
    compared = settings.get("compared") or {}
    return str(compared.get("scored_name") or "medseg"), str(compared.get("reference_name") or "reference")


def _scored_run(settings: dict) -> str:
    """What the Dice plot scored, for its title: "prompt box, adapter cmr-lge", or "labels made
    before" (``--predicted``; with the adapters their sidecars name)."""
    models = settings.get("models") or [settings]
    adapters = sorted({str(m["adapter_id"]) for m in models if isinstance(m, dict) and m.get("adapter_id")})
    how = f"prompt {settings['prompt']}" if settings.get("prompt") else "labels made before"
    return how + (f", adapter {', '.join(adapters)}" if adapters else "")


def _bad_dice(result: dict[str, Any]) -> float:
    return float((result["summary"].get("review") or {}).get("bad_dice_below", 0.85))


def dice_png(result: dict[str, Any], path: str | Path) -> Path:
    from .measure.plots import STRUCTURE_COLOURS, _figure, _save

    names = list(result["summary"]["dice"])
    cases = result["cases"]
    fig = _figure(1.2 + 1.1 * max(len(names), 2), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)
    ringed = False
    data = [[c["dice"][n] for c in cases if n in c["dice"]] for n in names]
    ax.boxplot(data, positions=range(len(names)), widths=0.5, showfliers=False, medianprops={"color": "k"})
    for i, n in enumerate(names):
        rows = [c for c in cases if n in c["dice"]]
        d = np.array([c["dice"][n] for c in rows])
        x = i + rng.uniform(-0.17, 0.17, d.size)
        ax.scatter(x, d, s=14, color=STRUCTURE_COLOURS.get(n, "0.3"), alpha=0.8, zorder=3)
        flagged = np.array([is_flagged(n, c.get("review", {})) for c in rows], bool)
        if flagged.any():
            ax.scatter(x[flagged], d[flagged], s=60, facecolors="none", edgecolors="k", linewidths=1.0, zorder=4,
                       label=None if ringed else "flagged for review")
            ringed = True
    bad = _bad_dice(result)
    ax.axhline(bad, color="0.4", ls="--", lw=0.8, label=f"Dice {bad:g}")
    ax.set_xticks(range(len(names)), [n.upper() for n in names])
    ax.set_ylabel("Dice per volume")
    lo = min([min(d) for d in data if d] + [bad]) if any(data) else 0.0
    ax.set_ylim(max(0.0, lo - 0.05), 1.0)
    n = result["summary"]["n_cases"]
    ax.set_title(f"{n} case{'' if n == 1 else 's'}, {_scored_run(result.get('settings') or {})}: "
                 f"mean Dice {result['summary'].get('dice_mean', float('nan')):.3f}", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def confidence_png(result: dict[str, Any], path: str | Path, volume_threshold: float | None = None) -> Path:
    from .measure.plots import STRUCTURE_COLOURS, _figure, _save

    names = list(result["summary"]["dice"])
    fig = _figure(4.6, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for n in names:
        pts = [(c["review"]["confidence"][n], c["dice"][n]) for c in result["cases"]
               if n in c["dice"] and n in c.get("review", {}).get("confidence", {})]
        if pts:
            x, y = np.array(pts).T
            ax.scatter(x, y, s=16, color=STRUCTURE_COLOURS.get(n, "0.3"), alpha=0.8, label=n.upper())
    bad = _bad_dice(result)
    ax.axhline(bad, color="0.4", ls="--", lw=0.8)
    if volume_threshold is not None:
        ax.axvline(volume_threshold, color="red", ls=":", lw=1.0, label=f"review below {volume_threshold:.2f}")
    ax.set_xlabel("volume confidence")
    ax.set_ylabel("Dice per volume")
    ax.set_title("confidence against Dice", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def bland_altman_png(result: dict[str, Any], path: str | Path) -> Path:
    from .measure.plots import _figure, _save

    keys = [(k, label, unit) for k, label, unit in CLINICAL if clinical_pairs(result["cases"], k)[0].size >= 2]
    stats = agreement(result["cases"])
    scored, reference = difference_name(result.get("settings") or {})
    ncol = min(3, len(keys))
    nrow = -(-len(keys) // ncol)
    fig = _figure(3.4 * ncol, 3.1 * nrow + 0.3)
    for i, (key, label, unit) in enumerate(keys):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        pred, ref = clinical_pairs(result["cases"], key)
        ax.scatter((pred + ref) / 2, pred - ref, s=16, color="#377eb8", alpha=0.85)
        st = stats[key]
        ax.axhline(st["bias"], color="k", lw=1.0, label=f"bias {st['bias']:+.1f}")
        for v in st["loa"]:
            ax.axhline(v, color="0.4", ls="--", lw=0.8)
        ax.axhline(0, color="0.8", lw=0.6, zorder=0)
        ax.set_title(f"{label} ({unit}): LoA {st['loa'][0]:+.1f} to {st['loa'][1]:+.1f}", fontsize=9)
        ax.set_xlabel(f"mean of {scored} and {reference} ({unit})", fontsize=8)
        ax.set_ylabel(f"{scored} - {reference} ({unit})", fontsize=8)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Bland-Altman, {max(stats[k]['n'] for k, _, _ in keys)} studies (ED + ES)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)

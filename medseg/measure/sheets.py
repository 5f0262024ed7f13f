"""Multi-panel figures (PNG): the review sheet of one segmentation (every labelled slice with
contours, confidence and flags) and the overview of a cohort's measurements. Same conventions as
:mod:`medseg.measure.plots` (matplotlib inside the functions, atomic writes)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..labels import LabelMap
from .plots import STRUCTURE_COLOURS, UNNAMED_COLOUR, _crop_box, _figure, _save

MAX_SHEET_SLICES = 16
#: a flagged slice's frame, title and flag box: black, >= 27.8 CIEDE2000 from every structure colour
#: under every colour vision (the red here before, #d00000, was 1.8-7.2 from LV's #cc3311); other panels' frames
#: light grey (benchmarks/palette_cvd.py)
FLAG_COLOUR = "#000000"
PANEL_EDGE_COLOUR = "#bbbbbb"


def review_panels(labels: np.ndarray, label_map: Any, review: Mapping[str, Any] | None = None,
                  confidence: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The panels of a review sheet: per shown (frame, slice) its lowest structure confidence
    and the flags that point at it (slice-level review flags; a flag with a slice and no frame,
    such as a phase's ``missing_slice``, points at that slice of every shown frame).

    Frames: all when there are at most two, else the frames with the largest and the smallest
    LV (ED and ES for a cine; all labels when there is no LV). Slices: those labelled on a
    shown frame and those a flag points at, at most :data:`MAX_SHEET_SLICES` (evenly spaced,
    flagged slices first).
    """
    lmap = LabelMap.parse(label_map)
    lab = np.asarray(labels)
    if lab.ndim == 3:
        lab = lab[None]
    frames = shown_frames(lab, lmap)
    flags: dict[tuple[int, int], list[str]] = {}
    for f in (review or {}).get("flags", []):
        for key in flag_panels(f, frames):
            if 0 <= key[1] < lab.shape[1]:
                flags.setdefault(key, []).append(f"{f.get('structure', '')} {f.get('code', '')}".strip())
    conf: dict[tuple[int, int], float] = {}
    for s in (confidence or {}).get("slices", []):
        key = (int(s["frame"]), int(s["slice"]))
        conf[key] = min(conf.get(key, 1.0), float(s["confidence"]))
    panels = []
    for t in frames:
        zs = [z for z in range(lab.shape[1]) if lab[t, z].any() or (t, z) in flags]
        if len(zs) > MAX_SHEET_SLICES:
            keep = {z for z in zs if (t, z) in flags}
            rest = [z for z in zs if z not in keep]
            keep |= {rest[i] for i in np.linspace(0, len(rest) - 1, max(MAX_SHEET_SLICES - len(keep), 0)).round().astype(int)} if rest else set()
            zs = sorted(keep)[:MAX_SHEET_SLICES]
        panels += [{"frame": t, "slice": z, "confidence": conf.get((t, z)), "flags": flags.get((t, z), [])} for z in zs]
    return panels


def left_out_text(labels: np.ndarray, panels: list[dict[str, Any]], frames: list[int]) -> list[str]:
    """A header line per shown frame whose labelled slices did not all get a panel (more than
    :data:`MAX_SHEET_SLICES`): "frame 0: 16 of 17 labelled slices shown (z8 left out)"; the
    sheet is read as every labelled slice, and a silent gap reads as an unlabelled slice."""
    out = []
    for t in frames:
        labelled = [z for z in range(labels.shape[1]) if labels[t, z].any()]
        shown = {p["slice"] for p in panels if p["frame"] == t}
        gone = [z for z in labelled if z not in shown]
        if gone:
            names = ", ".join(f"z{z}" for z in gone[:6]) + (", ..." if len(gone) > 6 else "")
            out.append(f"frame {t}: {len(labelled) - len(gone)} of {len(labelled)} labelled slices shown ({names} left out)")
    return out


def shown_frames(labels: np.ndarray, label_map: LabelMap) -> list[int]:
    """The frames a review sheet shows of (T, Z, Y, X) labels (:func:`review_panels`)."""
    labelled = [t for t in range(labels.shape[0]) if labels[t].any()]
    if len(labelled) <= 2:
        return labelled
    size = [int((labels[t] == label_map["lv"]).sum()) if "lv" in label_map else int((labels[t] > 0).sum()) for t in labelled]
    return sorted({labelled[int(np.argmax(size))], labelled[int(np.argmin(size))]})


def frame_names(labels: np.ndarray, label_map: LabelMap, phases: Mapping[str, Any] | None = None) -> dict[int, str]:
    """What a review sheet calls its shown frames (:func:`shown_frames`) besides their index:
    "ED" and "ES" where ``phases`` (the provenance's ``frame_pick`` of ``segment --frames ed,es``:
    {"ed": frame, "es": frame}) names them, else, for frames picked by LV size out of more than
    two labelled ones, "max LV" and "min LV" (the measurement's ED and ES but for an outlier
    frame it leaves out); none otherwise (two labelled frames: which is ED is not known)."""
    ed, es = (phases or {}).get("ed"), (phases or {}).get("es")
    if all(isinstance(f, int) and not isinstance(f, bool) for f in (ed, es)) and ed != es:
        return {f: n for f, n in ((ed, "ED"), (es, "ES")) if 0 <= f < labels.shape[0]}
    frames = shown_frames(labels, label_map)
    if len(frames) != 2 or "lv" not in label_map or sum(bool(labels[t].any()) for t in range(labels.shape[0])) <= 2:
        return {}
    size = [int((labels[t] == label_map["lv"]).sum()) for t in frames]
    return {} if size[0] == size[1] else {frames[int(np.argmax(size))]: "max LV", frames[int(np.argmin(size))]: "min LV"}


def flag_panels(flag: Mapping[str, Any], frames: list[int]) -> list[tuple[int, int]]:
    """The (frame, slice) panels a review flag points at: its own, or with a slice and no frame
    that slice of each of ``frames``; none for a flag without a slice."""
    if flag.get("slice") is None:
        return []
    z = int(flag["slice"])
    return [(int(flag["frame"]), z)] if flag.get("frame") is not None else [(t, z) for t in frames]


def review_sheet_png(image: np.ndarray, labels: np.ndarray, label_map: Any, path: str | Path,
                     review: Mapping[str, Any] | None = None, confidence: Mapping[str, Any] | None = None,
                     spacing_yx: tuple[float, float] = (1.0, 1.0), title: str = "", phases: Mapping[str, Any] | None = None) -> Path:
    """One PNG to check a segmentation at a glance: every labelled slice of the shown frames
    (:func:`review_panels`) with the structures' contours, each slice's lowest confidence, and
    flagged slices framed in thick black with what was flagged; volume-level flags under the title.

    Args:
        image, labels: (T, Z, Y, X) (or (Z, Y, X)) on the same grid.
        review: the provenance's ``review`` (flags); confidence: its ``confidence``.
        phases: its ``frame_pick`` (ED and ES of ``segment --frames ed,es``), to name those
            frames "t1 (ED)" (:func:`frame_names`).
    """
    return _save(review_sheet_figure(image, labels, label_map, review, confidence, spacing_yx, title, phases), path)


def review_sheet_figure(image: np.ndarray, labels: np.ndarray, label_map: Any, review: Mapping[str, Any] | None = None,
                        confidence: Mapping[str, Any] | None = None, spacing_yx: tuple[float, float] = (1.0, 1.0),
                        title: str = "", phases: Mapping[str, Any] | None = None) -> Any:
    """The matplotlib Figure of :func:`review_sheet_png`."""
    from skimage.measure import find_contours

    lmap = LabelMap.parse(label_map)
    img, lab = np.asarray(image), np.asarray(labels)
    if img.ndim == 3:
        img = img[None]
    if lab.ndim == 3:
        lab = lab[None]
    panels = review_panels(lab, lmap, review, confidence)
    if not panels:
        panels = [{"frame": 0, "slice": lab.shape[1] // 2, "confidence": None, "flags": []}]
    ncol = min(len(panels), 8)
    nrow = math.ceil(len(panels) / ncol)
    box = _crop_box([lab[p["frame"], p["slice"]] > 0 for p in panels])
    # under the title: flags of no slice, and those whose slice no panel shows
    shown = {(p["frame"], p["slice"]) for p in panels}
    frames = shown_frames(lab, lmap)
    all_flags = [f for f in (review or {}).get("flags", []) if f.get("message")]
    volume_flags = ([f["message"] for f in all_flags if f.get("slice") is None]
                    + [f["message"] for f in all_flags if f.get("slice") is not None and not shown.intersection(flag_panels(f, frames))])
    head = (f"{title}: " if title else "") + "t frame, z slice, number = lowest structure confidence on the slice"
    lines = [head] + [f"! {m}" for m in volume_flags[:4]] + ([f"! ... {len(volume_flags) - 4} more"] if len(volume_flags) > 4 else [])
    lines += left_out_text(lab, panels, frames)
    # the header (its lines, then the legend's) gets its own band above the panels, however
    # few panels there are: the sheet is at least wide enough for the header's first line
    line_in = 0.16
    header_in = 0.05 + line_in * len(lines) + 0.2 + 0.25  # margin, header lines, legend, panel titles
    width, height = max(2.0 * ncol, 0.055 * len(head) + 0.3, 4.0), 2.15 * nrow + header_in
    fig = _figure(width, height)
    fig.subplots_adjust(top=1.0 - header_in / height, bottom=0.02, left=0.01, right=0.99)
    order = sorted(lmap.values.items(), key=lambda kv: kv[0] == "lv")
    names = frame_names(lab, lmap, phases)  # on Sunnybrook ED is t1: "t0" alone read as ED gets it backwards
    for i, p in enumerate(panels):
        t, z = p["frame"], p["slice"]
        ax = fig.add_subplot(nrow, ncol, i + 1)
        sl = np.asarray(img[min(t, img.shape[0] - 1), z], dtype=float)
        lo, hi = np.percentile(sl, [1, 99.5])
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=spacing_yx[0] / spacing_yx[1])
        for name, v in order:
            m = lab[t, z] == v
            for c in find_contours(np.pad(m, 1).astype(float), 0.5) if m.any() else []:
                ax.plot(c[:, 1] - 1, c[:, 0] - 1, color=STRUCTURE_COLOURS.get(name, UNNAMED_COLOUR), lw=1.0)
        (r0, r1), (c0, c1) = box
        ax.set_xlim(c0, c1)
        ax.set_ylim(r1, r0)
        ax.set_xticks([])
        ax.set_yticks([])
        conf = "" if p["confidence"] is None else f" {p['confidence']:.2f}"
        ax.set_title(f"t{t}{f' ({names[t]})' if t in names else ''} z{z}{conf}", fontsize=8, color=FLAG_COLOUR, fontweight="bold" if p["flags"] else "normal")
        for spine in ax.spines.values():
            spine.set_edgecolor(FLAG_COLOUR if p["flags"] else PANEL_EDGE_COLOUR)
        if p["flags"]:
            for spine in ax.spines.values():
                spine.set_linewidth(3)
            ax.text(0.02, 0.02, "\n".join(p["flags"][:3]), transform=ax.transAxes, fontsize=6, color="white", va="bottom",
                    bbox={"facecolor": FLAG_COLOUR, "alpha": 0.8, "pad": 1.5, "edgecolor": "none"})
    from matplotlib.lines import Line2D

    fig.text(0.01, 1.0 - 0.05 / height, "\n".join(lines), fontsize=8, ha="left", va="top", linespacing=1.25)
    present = [n for n in lmap.names if (lab == lmap[n]).any()]
    fig.legend(handles=[Line2D([], [], color=STRUCTURE_COLOURS.get(n, UNNAMED_COLOUR), label=n.upper()) for n in present],
               loc="upper left", bbox_to_anchor=(0.0, 1.0 - (0.05 + line_in * len(lines)) / height), ncol=max(len(present), 1),
               fontsize=7, frameon=False)
    return fig


#: (cohort.csv column, axis label) of the cohort overview's panels, in order. The last is the
#: LV volume of the studies of one phase only (a study with ED and ES has it as its EDV).
COHORT_PANELS = (("lv.ef_pct", "LVEF (%)"), ("lv.edv_ml", "LV EDV (mL)"), ("lv.esv_ml", "LV ESV (mL)"), ("lv_mass_g", "LV mass (g)"),
                 ("indexed.lv_edv_ml_m2", "LV EDV index (mL/m²)"), ("indexed.lv_mass_g_m2", "LV mass index (g/m²)"), ("rv.ef_pct", "RVEF (%)"), ("rv.edv_ml", "RV EDV (mL)"),
                 ("indexed.rv_edv_ml_m2", "RV EDV index (mL/m²)"), ("volumes_ml.lv", "LV volume, one phase (mL)"))


def cohort_panels(rows: list[Mapping[str, Any]]) -> list[tuple[str, list[tuple[str, float]]]]:
    """(axis label, [(case, value)]) of each :data:`COHORT_PANELS` measure that at least two
    studies have; the one-phase LV volume counts only studies without an LV EDV."""
    panels = []
    for key, label in COHORT_PANELS:
        one_phase = key == "volumes_ml.lv"
        vals = [(str(r["case"]), float(r[key])) for r in rows if _finite(r.get(key)) and not (one_phase and _finite(r.get("lv.edv_ml")))]
        if len(vals) >= 2:
            panels.append((label, vals))
    return panels


#: above this many studies a cohort panel draws small translucent dots, the box on top, and the
#: studies that need review in another colour instead of a ring each
DENSE_COHORT = 300


def cohort_png(rows: list[Mapping[str, Any]], path: str | Path, flagged: set[str] | None = None) -> Path | None:
    """A cohort at a glance (``medseg batch --measure``): one panel per measure that at least two
    studies have (:func:`cohort_panels`), a dot per study, box = quartiles; studies with a
    review flag ringed in black (above :data:`DENSE_COHORT` studies: small translucent dots, those
    flagged in orange, counted in the title), the two most extreme named. None when no panel has data."""
    flagged = flagged or set()
    panels = cohort_panels(rows)
    if not panels:
        return None
    fig = _figure(1.0 + 1.9 * len(panels), 3.6)
    rng = np.random.default_rng(0)
    ringed = False
    for i, (label, vals) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        y = np.array([v for _, v in vals])
        ring = np.array([c in flagged for c, _ in vals], bool)
        dense = y.size > DENSE_COHORT  # thousands of opaque dots and rings were one black block
        x = rng.uniform(-0.3 if dense else -0.15, 0.3 if dense else 0.15, y.size)
        box = {"medianprops": {"color": "k", "lw": 1.6}, "boxprops": {"lw": 1.2}, "zorder": 5} if dense else {"medianprops": {"color": "k"}}
        ax.boxplot([y], positions=[0], widths=0.5 if not dense else 0.7, showfliers=False, **box)
        if dense:  # small translucent dots; the studies that need review in orange, not ringed one by one
            ax.scatter(x[~ring], y[~ring], s=3, color="#377eb8", alpha=0.25, lw=0, zorder=3)
            if ring.any():
                ax.scatter(x[ring], y[ring], s=4, color="#ff7f00", alpha=0.5, lw=0, zorder=4, label=None if ringed else "needs review")
                ringed = True
        else:
            ax.scatter(x, y, s=14, color="#377eb8", alpha=0.8, zorder=3)
            if ring.any():  # the legend's entry from the first panel with a ringed study
                ax.scatter(x[ring], y[ring], s=55, facecolors="none", edgecolors="k", linewidths=0.9, zorder=4,
                           label=None if ringed else "needs review")
                ringed = True
        for j in {int(np.argmin(y)), int(np.argmax(y))}:
            ax.annotate(vals[j][0], (x[j], y[j]), xytext=(4, 0), textcoords="offset points", fontsize=6, va="center")
        ax.set_xticks([])
        review = f"\n{int(ring.sum())} need review" if dense and ring.any() else ""
        ax.set_title(f"{label}\nmedian {np.median(y):.1f}, n = {y.size}{review}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    if flagged & {c for _, vals in panels for c, _ in vals}:
        fig.legend(loc="lower center", fontsize=7, frameon=False, markerscale=3 if any(len(v) > DENSE_COHORT for _, v in panels) else 1)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    return _save(fig, path)


def _finite(v: Any) -> bool:
    try:
        return v is not None and v != "" and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False

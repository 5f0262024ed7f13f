"""Report figures (PNG): volume curve, AHA bullseye, contour overlay.

matplotlib is imported inside each function and used through ``Figure`` + the Agg canvas,
so no global backend is changed (safe inside napari). Every file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_path
from ..labels import LabelMap

STRUCTURE_COLOURS = {"lv": "#e41a1c", "myo": "#4daf4a", "rv": "#377eb8", "la": "#ff7f00", "ra": "#984ea3",
                     "aorta": "#a65628", "pa": "#f781bf"}
# Bullseye ring layout: (segments, inner radius, outer radius, start angle of the first one)
_RINGS = (((1, 2, 3, 4, 5, 6), 3.0, 4.0, 60.0), ((7, 8, 9, 10, 11, 12), 2.0, 3.0, 60.0),
          ((13, 14, 15, 16), 1.0, 2.0, 45.0))


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)


def volume_curve_png(report: dict[str, Any], path: str | Path) -> Path:
    """LV/RV volume (mL) vs time (ms, or frame) with ED and ES marked; ED/ES-only reports get bars."""
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    curves = report.get("volume_curve_ml")
    if curves:
        times = report.get("frame_times_s")
        n = len(next(iter(curves.values())))
        x = np.asarray(times, dtype=float) * 1000.0 if times else np.arange(n)
        ax.set_xlabel("time (ms)" if times else "frame")
        marks = {"lv": (report.get("ed_frame"), report.get("es_frame")), "rv": (report.get("rv_ed_frame"), report.get("rv_es_frame"))}
        for name, c in curves.items():
            y = np.array([np.nan if v is None else v for v in c], dtype=float)
            col = STRUCTURE_COLOURS.get(name, "k")
            ax.plot(x, y, "-o", ms=3, color=col, label=f"{name.upper()} (EF {report.get(name, {}).get('ef_pct', math.nan):.0f}%)")
            for f, lab, mk in zip(marks.get(name, (None, None)), ("ED", "ES"), ("^", "v")):
                if f is not None:
                    ax.plot(x[f], y[f], mk, ms=10, color=col, mec="k")
                    ax.annotate(f"{name.upper()} {lab} {y[f]:.0f} mL", (x[f], y[f]), textcoords="offset points",
                                xytext=(0, 9 if lab == "ED" else -15), ha="center", fontsize=8,
                                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": col, "alpha": 0.85})
        allv = np.array([v for c in curves.values() for v in c if v is not None], dtype=float)
        if allv.size:
            lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
            pad = 0.18 * max(hi - lo, 1.0)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_title("Ventricular volume over the cardiac cycle")
    else:
        names = [n for n in ("lv", "rv") if n in report]
        edv = [report[n]["edv_ml"] for n in names]
        esv = [report[n]["esv_ml"] for n in names]
        pos = np.arange(len(names))
        ax.bar(pos - 0.2, edv, 0.4, label="ED", color="#555555")
        ax.bar(pos + 0.2, esv, 0.4, label="ES", color="#bbbbbb")
        ax.set_xticks(pos, [f"{n.upper()} (EF {report[n]['ef_pct']:.0f}%)" for n in names])
        ax.set_title("End-diastolic and end-systolic volumes")
    ax.set_ylabel("volume (mL)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def bullseye_png(wall_thickness: dict[str, Any], path: str | Path, stat: str = "mean", title: str | None = None) -> Path:
    """AHA 17-segment bullseye of wall thickness (mm): anterior up, septum left (standard view)."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.patches import Circle, Wedge

    segs = wall_thickness.get("segments", {})
    vals = {int(k): v.get(stat, math.nan) for k, v in segs.items()}
    finite = [v for v in vals.values() if v is not None and math.isfinite(v)]
    norm = Normalize(vmin=min(finite + [0.0]) if finite else 0.0, vmax=max(finite + [1.0]) if finite else 15.0)
    cmap = colormaps["viridis"]
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for seg_ids, r0, r1, start in _RINGS:
        width = 360.0 / len(seg_ids)
        for i, k in enumerate(seg_ids):
            a0 = start + i * width  # counter-clockwise: anterior top, septum left, inferior bottom
            _wedge(ax, Wedge, (0, 0), r1, a0, a0 + width, r1 - r0, vals.get(k), cmap, norm)
            mid = math.radians(a0 + width / 2)
            _label(ax, 0.5 * (r0 + r1) * math.cos(mid), 0.5 * (r0 + r1) * math.sin(mid), k, vals.get(k))
    v17 = vals.get(17)
    ax.add_patch(Circle((0, 0), 1.0, fc=_colour(v17, cmap, norm), ec="white", lw=1.5))
    _label(ax, 0, 0, 17, v17)
    for text, xy in (("Anterior", (0, 4.35)), ("Inferior", (0, -4.35)), ("Septal", (-4.35, 0)), ("Lateral", (4.35, 0))):
        ax.text(*xy, text, ha="center", va="center", fontsize=10, rotation=90 if xy[1] == 0 else 0, fontweight="bold")
    ax.set_xlim(-4.7, 4.7)
    ax.set_ylim(-4.7, 4.7)
    ax.set_aspect("equal")
    ax.axis("off")
    from matplotlib.cm import ScalarMappable

    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.045, pad=0.02)
    cb.set_label(f"wall thickness, segment {stat} (mm)")
    g = wall_thickness.get("global_mean", math.nan)
    ax.set_title(title or f"AHA 17-segment wall thickness (global mean {g:.1f} mm)", fontsize=11)
    return _save(fig, path)


def _colour(v: float | None, cmap: Any, norm: Any) -> Any:
    return "#dddddd" if v is None or not math.isfinite(v) else cmap(norm(v))


def _wedge(ax: Any, Wedge: Any, c: tuple, r: float, a0: float, a1: float, w: float, v: float | None, cmap: Any, norm: Any) -> None:
    ax.add_patch(Wedge(c, r, a0, a1, width=w, fc=_colour(v, cmap, norm), ec="white", lw=1.5))


def _label(ax: Any, x: float, y: float, k: int, v: float | None) -> None:
    if v is not None and math.isfinite(v):
        ax.text(x, y, f"{k}\n{v:.1f}", ha="center", va="center", fontsize=8.5, color="white", fontweight="bold",
                path_effects=_outline())
    else:
        ax.text(x, y, f"{k}\nn/a", ha="center", va="center", fontsize=8.5, color="#333333")


def _outline() -> list:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=1.8, foreground="black")]


def overlay_png(labels: dict[str, np.ndarray], label_map: Any, path: str | Path, image: np.ndarray | None = None,
                spacing_yx: tuple[float, float] = (1.0, 1.0), slice_index: int | None = None,
                images: dict[str, np.ndarray] | None = None) -> Path:
    """Contours of every structure over one slice, one panel per phase.

    Args:
        labels: phase name -> (Z, Y, X) label array (e.g. {"ED": ..., "ES": ...}).
        label_map: LabelMap or its text.
        image: optional (Z, Y, X) image shown under every panel; ``images`` per phase wins.
        spacing_yx: (dy, dx) mm, for the pixel aspect ratio.
        slice_index: slice to show; default the middle of the LV (or of all labels).
    """
    from skimage.measure import find_contours

    lmap = LabelMap.parse(label_map)
    first = next(iter(labels.values()))
    z = slice_index if slice_index is not None else _mid_slice(first, lmap)
    box = _crop_box([lab[z] > 0 for lab in labels.values()])
    fig = _figure(4.2 * len(labels), 4.6)
    for i, (phase, lab) in enumerate(labels.items()):
        ax = fig.add_subplot(1, len(labels), i + 1)
        img = (images or {}).get(phase, image if not images else None)
        if img is not None:
            sl = np.asarray(img[z], dtype=float)
            lo, hi = np.percentile(sl, [1, 99.5])
            ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, aspect=spacing_yx[0] / spacing_yx[1])
        else:
            ax.imshow(np.zeros(lab.shape[1:]), cmap="gray", aspect=spacing_yx[0] / spacing_yx[1])
        order = sorted(lmap.values.items(), key=lambda kv: kv[0] == "lv")  # LV drawn last, over the myocardium
        for name, v in order:
            m = lab[z] == v
            if not m.any():
                continue
            for k, c in enumerate(find_contours(np.pad(m, 1).astype(float), 0.5)):
                ax.plot(c[:, 1] - 1, c[:, 0] - 1, color=STRUCTURE_COLOURS.get(name, "yellow"), lw=1.6 if name == "lv" else 1.3,
                        ls="--" if name == "lv" else "-", label=name.upper() if k == 0 else None)
        (r0, r1), (c0, c1) = box
        ax.set_xlim(c0, c1)
        ax.set_ylim(r1, r0)
        ax.set_title(f"{phase}: slice {z}", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="lower right", fontsize=8, framealpha=0.7)
    return _save(fig, path)


def _crop_box(masks: list[np.ndarray], margin: float = 0.35) -> tuple[tuple[float, float], tuple[float, float]]:
    """(row range, col range) around all labelled pixels with a relative margin (whole image if none)."""
    union = np.logical_or.reduce(masks)
    if not union.any():
        return (-0.5, union.shape[0] - 0.5), (-0.5, union.shape[1] - 0.5)
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    half = 0.5 * max(h, w) * (1 + 2 * margin)
    rc, cc = 0.5 * (rows[0] + rows[-1]), 0.5 * (cols[0] + cols[-1])
    return (max(rc - half, -0.5), min(rc + half, union.shape[0] - 0.5)), (max(cc - half, -0.5), min(cc + half, union.shape[1] - 0.5))


def _mid_slice(lab: np.ndarray, lmap: LabelMap) -> int:
    mask = lab == lmap["lv"] if "lv" in lmap else lab > 0
    zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if zs.size == 0:
        zs = np.flatnonzero(lab.reshape(lab.shape[0], -1).any(axis=1))
    return int(zs[len(zs) // 2]) if zs.size else lab.shape[0] // 2

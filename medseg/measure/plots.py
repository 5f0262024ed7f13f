"""Report figures (PNG): volume curve, AHA bullseyes (wall thickness, systolic thickening), contour overlay
(the review sheet and the cohort overview: :mod:`medseg.measure.sheets`).

matplotlib is imported inside each function and used through ``Figure`` + the Agg canvas,
so no global backend is changed (safe inside napari). Every file is written atomically.

The drawing itself is in Axes-level functions (:func:`draw_volume_curve`,
:func:`draw_ed_es_volumes`, :func:`draw_phase_volumes`, :func:`draw_volumes`,
:func:`draw_bullseye`, :func:`draw_overlay`) that the PNG writers call, the napari measurement panel calls on
its own figure (``compact=True``: smaller text for a dock widget) and the one-page study PDF
(:mod:`medseg.measure.study_pdf`) on its page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_path
from ..labels import STRUCTURE_COLOURS, LabelMap
from .fonts import drawable_string, fallback_families
from .geometry import MeasurementError

#: contours and legend entries of a structure the palette does not name (a custom label-map name):
#: a light grey, >= 17 CIEDE2000 from every palette colour under every colour vision (matplotlib's
#: "yellow" was 6-11 from MYO's), >= 15 from a white figure background (benchmarks/palette_cvd.py)
UNNAMED_COLOUR = "#bbbbbb"

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
    _drawable_text(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)


def _drawable_text(fig: Any) -> None:
    r"""Draw each character of the figure's text that its fonts cannot in an installed font that
    can (:func:`fallback_families`: a CJK case id where a CJK font is installed), else write it as
    an escape (``\u60a3``): a case id in CJK on a machine without CJK fonts (a cluster node) was
    an empty box in the title, and matplotlib warned once per character."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        s = text.get_text()
        if s.isascii():
            continue
        prop = text.get_fontproperties()
        if extra := fallback_families(s, prop):
            text.set_fontfamily([*prop.get_family(), *extra])
        drawn = drawable_string(s, text.get_fontproperties())
        if drawn != s:
            text.set_text(drawn)


@dataclass(frozen=True)
class _Style:
    """Text sizes and wording of one figure style: the report PNGs, or the compact panel."""

    compact: bool
    title_size: float | None  # None: matplotlib's default
    legend_size: float
    tick_size: float | None
    marker_size: float
    edge_width: float  # bullseye segment borders
    seg_size: float  # bullseye segment text
    side_size: float
    side_offset: float
    side_labels: tuple[tuple[str, tuple[float, float], float], ...]
    limit: float
    colorbar_fraction: float


_REPORT = _Style(False, None, 8, None, 10, 1.5, 8.5, 10, 4.35,
                 (("Anterior", (0, 1), 0), ("Inferior", (0, -1), 0), ("Septal", (-1, 0), 90), ("Lateral", (1, 0), 90)), 4.7, 0.045)
_COMPACT = _Style(True, 9, 7, 8, 9, 1.2, 7, 7, 4.45,
                  (("ant", (0, 1), 0), ("inf", (0, -1), 0), ("sept", (-1, 0), 90), ("lat", (1, 0), 270)), 4.8, 0.046)


def _style(compact: bool) -> _Style:
    return _COMPACT if compact else _REPORT


def volume_curve_png(report: dict[str, Any], path: str | Path) -> Path:
    """LV/RV volume (mL) vs time (ms, or frame) with ED and ES marked; ED/ES-only reports get bars."""
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    if report.get("volume_curve_ml"):
        draw_volume_curve(ax, report)
    else:
        draw_ed_es_volumes(ax, report)
    return _save(fig, path)


def draw_volumes(ax: Any, report: Mapping[str, Any], compact: bool = False) -> None:
    """The volume plot a report calls for, on a matplotlib ``Axes``: the curve of a cine
    report (``volume_curve_ml``), ED/ES bars of an ED + ES report, else the volume per
    structure of one phase (``volumes_ml``)."""
    if report.get("volume_curve_ml"):
        draw_volume_curve(ax, report, compact)
    elif any(isinstance(report.get(n), Mapping) and "edv_ml" in report[n] for n in ("lv", "rv")):
        draw_ed_es_volumes(ax, report, compact)
    else:
        draw_phase_volumes(ax, report, compact)


def draw_volume_curve(ax: Any, report: Mapping[str, Any], compact: bool = False) -> None:
    """LV/RV volume (mL) over the cycle on ``ax``: x = time (ms, from ``frame_times_s``) or
    frame index, ED (^) and ES (v) marked, a frame flagged ``volume_outlier_frame`` (left out of
    the ED/ES choice) circled hollow; unlabelled frames (None) leave gaps.

    Args:
        report: a :func:`medseg.measure.measure_cine` report (``volume_curve_ml``: structure ->
            one volume per frame, mL or None; ``ed_frame``, ``es_frame``, ``rv_ed_frame``...), or
            a :func:`medseg.measure.echo.measure_echo_clip` one (without pixel spacing its
            ``volume_curve_rel`` is drawn, in % of EDV).
        compact: the panel style (small text, no value annotations) instead of the report's.
    """
    st = _style(compact)
    curves, unit = _volume_curves(report)
    times = report.get("frame_times_s")
    n = len(next(iter(curves.values())))
    x = np.asarray(times, dtype=float) * 1000.0 if times and len(times) == n else np.arange(n)
    ax.set_xlabel("time (ms)" if times and len(times) == n else "frame")
    if not (times and len(times) == n):  # a frame index: whole-number ticks (a 2-frame cine showed 0.2, 0.4...)
        ax.locator_params(axis="x", integer=True)  # the default MaxNLocator, whole numbers only
    marks = {"lv": (report.get("ed_frame"), report.get("es_frame")), "rv": (report.get("rv_ed_frame"), report.get("rv_es_frame"))}
    notes: dict[tuple[str, int], list[tuple[str, float, str]]] = {}  # (ED/ES, frame) -> labels there
    outliers = [(f.get("structure"), f.get("frame")) for f in report.get("flags") or [] if f.get("code") == "volume_outlier_frame"]
    shown_outlier = False
    for name, c in curves.items():
        y = np.array([np.nan if v is None else v for v in c], dtype=float)
        if not np.isfinite(y).any():  # not labelled on any frame (an LV-only cine): no empty "RV" in the legend
            continue
        col = STRUCTURE_COLOURS.get(name, "k")
        fn = report.get(name)
        ef = fn.get("ef_pct") if isinstance(fn, Mapping) else None
        ef = float(ef) if isinstance(ef, (int, float)) and not isinstance(ef, bool) else math.nan  # null in a report read back from JSON
        ax.plot(x, y, "-o", ms=3, color=col, label=f"{name.upper()} (EF {ef:.0f}%)" if np.isfinite(ef) else name.upper())
        for f, lab, mk in zip(marks.get(name, (None, None)), ("ED", "ES"), ("^", "v")):
            if f is None or not np.isfinite(y[f]):
                continue
            ax.plot(x[f], y[f], mk, ms=st.marker_size, color=col, mec="k")
            notes.setdefault((lab, f), []).append((f"{name.upper()} {lab} {y[f]:.0f} {unit}", float(y[f]), col))
        for f in [f for s, f in outliers if s == name and isinstance(f, int) and 0 <= f < n and np.isfinite(y[f])]:
            # hollow: a frame left out of the ED/ES choice (volume_outlier_frame)
            ax.plot(x[f], y[f], "o", ms=st.marker_size + 2, mfc="none", mec=col, mew=1.5, label=None if shown_outlier else "outlier frame (not ED/ES)")
            shown_outlier = True
    if not compact:  # labels at one frame stack from the highest (ED) or lowest (ES) point there, never overlapping
        for (lab, f), at in notes.items():
            anchor = max(v for _, v, _ in at) if lab == "ED" else min(v for _, v, _ in at)
            ha, dx = _end_align(x, f)
            for k, (text, _, col) in enumerate(sorted(at, key=lambda a: -a[1] if lab == "ED" else a[1])):
                ax.annotate(text, (x[f], anchor), textcoords="offset points", xytext=(dx, 9 + 15 * k if lab == "ED" else -15 - 15 * k),
                            ha=ha, fontsize=8, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": col, "alpha": 0.85})
    allv = np.array([v for c in curves.values() for v in c if v is not None], dtype=float)
    if allv.size and np.isfinite(allv).any():
        lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
        pad = 0.25 * max(hi - lo, 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_title("Volume over the cycle" if compact else "Ventricular volume over the cardiac cycle", **_title_font(st))
    _finish_volume_axes(ax, st, unit)


def _end_align(x: np.ndarray, f: int) -> tuple[str, float]:
    """(ha, x offset in points) of a label at point ``f``: inward at the first or last (centred, it covered the y-axis's numbers)."""
    first, last = x.size > 1 and x[f] <= np.nanmin(x), x.size > 1 and x[f] >= np.nanmax(x)
    return ("left", -6.0) if first else ("right", 6.0) if last else ("center", 0.0)


def _volume_curves(report: Mapping[str, Any]) -> tuple[Mapping[str, list], str]:
    """The curves to draw and their unit: ``volume_curve_ml`` in mL, or, when it has no value
    (an echo clip without pixel spacing), ``volume_curve_rel`` in % of the end-diastolic volume."""
    curves = report["volume_curve_ml"]
    rel = report.get("volume_curve_rel")
    if rel and all(v is None for c in curves.values() for v in c):
        return {k: [None if v is None else 100.0 * v for v in c] for k, c in rel.items()}, "% of EDV"
    return curves, "mL"


def draw_ed_es_volumes(ax: Any, report: Mapping[str, Any], compact: bool = False) -> None:
    """End-diastolic and end-systolic volume bars (mL) of the LV and RV (those in the report,
    each a dict with ``edv_ml``, ``esv_ml``, ``ef_pct``) on ``ax``."""
    st = _style(compact)
    names = [n for n in ("lv", "rv") if isinstance(report.get(n), Mapping) and _finite_number(report[n].get("edv_ml"))]  # no RV labelled: no "RV (EF nan%)"
    edv = [report[n]["edv_ml"] for n in names]
    esv = [report[n]["esv_ml"] for n in names]
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, edv, 0.4, label="ED", color="#555555")
    ax.bar(pos + 0.2, esv, 0.4, label="ES", color="#bbbbbb")
    ax.set_xticks(pos, [f"{n.upper()} (EF {report[n]['ef_pct']:.0f}%)" for n in names])
    ax.set_title("ED and ES volumes" if compact else "End-diastolic and end-systolic volumes", **_title_font(st))
    _finish_volume_axes(ax, st)


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def draw_phase_volumes(ax: Any, report: Mapping[str, Any], compact: bool = False) -> None:
    """One bar per structure (``volumes_ml``: structure -> mL, non-finite left out) of a
    single-phase report, in the structure colours, on ``ax``."""
    st = _style(compact)
    vols = {k: v for k, v in (report.get("volumes_ml") or {}).items() if v is not None and math.isfinite(v)}
    ax.bar(range(len(vols)), list(vols.values()), color=[STRUCTURE_COLOURS.get(k, "#888888") for k in vols])
    ax.set_xticks(range(len(vols)), [k.upper() for k in vols])
    ax.set_title("Volumes (one phase)", **_title_font(st))
    _finish_volume_axes(ax, st)


def _title_font(st: _Style) -> dict[str, float]:
    return {"fontsize": st.title_size} if st.title_size else {}


def _finish_volume_axes(ax: Any, st: _Style, unit: str = "mL") -> None:
    ax.set_ylabel(f"volume ({unit})")
    ax.grid(alpha=0.3)
    if st.tick_size:
        ax.tick_params(labelsize=st.tick_size)
    if not st.compact or ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=st.legend_size)


def bullseye_png(wall_thickness: dict[str, Any], path: str | Path, stat: str = "mean", title: str | None = None) -> Path:
    """AHA 17-segment bullseye of wall thickness (mm): anterior up, septum left (standard view).

    ``wall_thickness``: a report's ``wall_thickness_mm``, or the report itself; ``stat``
    "mean" or "max" (mm per segment)."""
    if stat not in ("mean", "max"):
        raise MeasurementError(f"stat must be mean or max, got {stat!r}")
    fig = _figure(5.6, 5.0)
    draw_bullseye(fig.add_subplot(1, 1, 1), _report_part(wall_thickness, "wall_thickness_mm"), stat, title=title)
    return _save(fig, path)


def thickening_png(wall_thickening: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """AHA bullseye of systolic wall thickening (%) from a report's ``wall_thickening_pct`` (or
    the ED + ES / cine report itself)."""
    values = as_bullseye_values(_report_part(wall_thickening, "wall_thickening_pct"))
    fig = _figure(5.6, 5.0)
    draw_bullseye(fig.add_subplot(1, 1, 1), values, title=title, quantity="thickening")
    return _save(fig, path)


def _report_part(obj: Any, key: str) -> Mapping[str, Any]:
    """``obj[key]`` when ``obj`` is a whole report, else ``obj``; a MeasurementError unless the
    result holds per-segment ``segments`` (a whole report passed in drew every segment n/a)."""
    part = obj.get(key) if isinstance(obj, Mapping) and "segments" not in obj else obj
    if not isinstance(part, Mapping) or not isinstance(part.get("segments"), Mapping):
        got = f"a dict with keys {', '.join(map(str, list(obj)[:6]))}" if isinstance(obj, Mapping) else type(obj).__name__
        raise MeasurementError(f"expected a report's {key} (with per-segment 'segments') or the report holding it, got {got}")
    return part


def as_bullseye_values(wall_thickening: Mapping[str, Any]) -> dict[str, Any]:
    """A report's ``wall_thickening_pct`` ({"segments": {k: %}, "global": %}) in the shape
    :func:`draw_bullseye` takes."""
    segs = wall_thickening.get("segments") or {}
    return {"segments": {k: {"mean": v} for k, v in segs.items()}, "global_mean": wall_thickening.get("global")}


#: what a bullseye shows -> (colour-bar label, unit, report title, panel title, colour map)
_BULLSEYE = {"thickness": ("wall thickness, segment {stat} (mm)", "mm", "AHA 17-segment wall thickness (global mean {g} mm)",
                           "AHA wall thickness, {stat} (global {g} mm)", "viridis"),
             "thickening": ("systolic wall thickening (%)", "%", "AHA systolic wall thickening (global {g} %)",
                            "Wall thickening (global {g} %)", "magma")}


#: what an AHA bullseye without a single segment value says instead of an empty colour scale
_EMPTY_NOTE = {"thickness": "No myocardium measured: no wall thickness", "thickening": "No myocardium at ED and ES: no thickening"}


def draw_bullseye(ax: Any, wall_thickness: Mapping[str, Any], stat: str = "mean", title: str | None = None,
                  compact: bool = False, quantity: str = "thickness", empty_note: str | None = None) -> Any:
    """AHA 17-segment bullseye of wall thickness (mm) or thickening (%) on ``ax``, with a colour
    bar beside it: anterior up, septum left, inferior down (the standard view); missing
    segments grey.

    Args:
        wall_thickness: a report's ``wall_thickness_mm`` (``segments``: "1".."17" -> {stat: mm},
            ``global_mean``), or :func:`as_bullseye_values` of its ``wall_thickening_pct``.
        stat: the per-segment value shown ("mean" or "max").
        compact: the panel style (values only, small text) instead of the report's
            (segment number + value).
        quantity: "thickness" (mm) or "thickening" (%).
        empty_note: the line drawn over a bullseye with no segment value (no myocardium), in
            place of its colour bar; None: a generic one for ``quantity``.
    Returns:
        The colour bar; None when no segment has a value (no colour bar, the note instead).
    """
    if quantity not in _BULLSEYE:
        raise ValueError(f"quantity must be one of {', '.join(_BULLSEYE)}, got {quantity!r}")
    bar_label, unit, report_title, panel_title, cmap_name = _BULLSEYE[quantity]
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Circle, Wedge

    st = _style(compact)
    segs = wall_thickness.get("segments") or {}
    vals = {int(k): (v or {}).get(stat, math.nan) for k, v in segs.items()}
    finite = [v for v in vals.values() if v is not None and math.isfinite(v)]
    norm = Normalize(vmin=min(finite + [0.0]) if finite else 0.0, vmax=max(finite + [1.0]) if finite else 15.0)
    cmap = colormaps[cmap_name]
    for seg_ids, r0, r1, start in _RINGS:
        width = 360.0 / len(seg_ids)
        for i, k in enumerate(seg_ids):
            a0 = start + i * width  # counter-clockwise: anterior top, septum left, inferior bottom
            ax.add_patch(Wedge((0, 0), r1, a0, a0 + width, width=r1 - r0, fc=_colour(vals.get(k), cmap, norm), ec="white",
                               lw=st.edge_width))
            mid = math.radians(a0 + width / 2)
            _label(ax, 0.5 * (r0 + r1) * math.cos(mid), 0.5 * (r0 + r1) * math.sin(mid), k, vals.get(k), st, cmap, norm,
                   whole=quantity == "thickening")
    ax.add_patch(Circle((0, 0), 1.0, fc=_colour(vals.get(17), cmap, norm), ec="white", lw=st.edge_width))
    _label(ax, 0, 0, 17, vals.get(17), st, cmap, norm, whole=quantity == "thickening")
    for text, (ux, uy), rot in st.side_labels:
        ax.text(ux * st.side_offset, uy * st.side_offset, text, ha="center", va="center", fontsize=st.side_size, rotation=rot,
                fontweight="normal" if compact else "bold")
    ax.set_xlim(-st.limit, st.limit)
    ax.set_ylim(-st.limit, st.limit)
    ax.set_aspect("equal")
    ax.axis("off")
    g = wall_thickness.get("global_mean", math.nan)
    g_text = f"{g:.1f}" if g is not None and math.isfinite(g) else "–"
    if not finite:  # a colour scale over "–" segments said nothing: say why there are no values
        ax.text(0, 0, empty_note or _EMPTY_NOTE[quantity], ha="center", va="center", fontsize=st.side_size + 1, wrap=True,
                bbox={"boxstyle": "round", "fc": "white", "ec": "#999999"})
        ax.set_title(title or (panel_title if compact else report_title).format(stat=stat, g=g_text), fontsize=8 if compact else 11)
        return None
    cb = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=st.colorbar_fraction, pad=0.02)
    if compact:
        cb.ax.tick_params(labelsize=7)
        cb.set_label(unit, fontsize=8)
        ax.set_title(title or panel_title.format(stat=stat, g=g_text), fontsize=8)
    else:
        cb.set_label(bar_label.format(stat=stat))
        ax.set_title(title or report_title.format(g=g_text), fontsize=11)
    return cb


def _colour(v: float | None, cmap: Any, norm: Any) -> Any:
    return "#dddddd" if v is None or not math.isfinite(v) else cmap(norm(v))


def _label(ax: Any, x: float, y: float, k: int, v: float | None, st: _Style, cmap: Any, norm: Any, whole: bool = False) -> None:
    """Segment text: "k\nvalue" in white with a black outline (report), or the value alone in
    black on light segments and white on dark ones (compact; :func:`_compact_value`, ``whole``:
    in whole numbers)."""
    ok = v is not None and math.isfinite(v)
    if st.compact:
        from matplotlib.colors import to_rgb

        r, g, b = to_rgb(_colour(v, cmap, norm))
        text_colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
        ax.text(x, y, _compact_value(v, whole) if ok else "–", ha="center", va="center", fontsize=st.seg_size, color=text_colour,
                fontweight="bold" if ok else "normal")
    elif ok:
        ax.text(x, y, f"{k}\n{v:.1f}", ha="center", va="center", fontsize=st.seg_size, color="white", fontweight="bold",
                path_effects=_outline())
    else:
        ax.text(x, y, f"{k}\nn/a", ha="center", va="center", fontsize=st.seg_size, color="#333333")


def _compact_value(v: float, whole: bool = False) -> str:
    """A segment's value in the compact (panel) style: one decimal below 10 (a wall of 5.6 mm),
    whole numbers from 10 on (a thickening of 28 %, a hypertrophic wall of 14 mm) and, ``whole``,
    always (thickening: -0.3 % as "0", 5.1 % as "5"): "27.6", "-0.3" and "5.1" ran past the
    edges of their segments at the panel's size. The table beside it has the decimals."""
    if whole or abs(round(v, 1)) >= 10:
        return str(round(v))  # an int: -0.3 as "0", not "-0"
    return f"{v:.1f}"


def _outline() -> list:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=1.8, foreground="black")]


def overlay_png(labels: dict[str, np.ndarray], label_map: Any, path: str | Path, image: np.ndarray | None = None,
                spacing_yx: tuple[float, float] = (1.0, 1.0), slice_index: int | None = None,
                images: dict[str, np.ndarray] | None = None, frames: dict[str, int] | None = None) -> Path:
    """Contours of every structure over one slice, one panel per phase.

    Args:
        labels: phase name -> (Z, Y, X) label array (e.g. {"ED": ..., "ES": ...}).
        label_map: LabelMap or its text.
        image: optional (Z, Y, X) image shown under every panel; ``images`` per phase wins.
        spacing_yx: (dy, dx) mm, for the pixel aspect ratio.
        slice_index: slice to show; default the middle of the LV (or of all labels).
        frames: phase name -> frame of a cine, named in the panel titles when they differ.
    """
    lmap = LabelMap.parse(label_map)
    labels = _phase_labels(labels)
    first = next(iter(labels.values()))
    z = slice_index if slice_index is not None else _mid_slice(first, lmap)
    box = shared_box([lab[z] for lab in labels.values()])
    fig = _figure(4.2 * len(labels), 4.6)
    for i, (phase, lab) in enumerate(labels.items()):
        img = (images or {}).get(phase, image if not images else None)
        where = [f"slice {z}"] if first.shape[0] > 1 else []  # one-slice views (echo, long axis): no slice to name
        if frames and len(set(frames.values())) > 1 and phase in frames:
            where.append(f"frame {frames[phase]}")
        draw_overlay(fig.add_subplot(1, len(labels), i + 1), lab[z], lmap, None if img is None else img[z], spacing_yx, box,
                     f"{phase}: {', '.join(where)}" if where else phase)
    return _save(fig, path)


def draw_overlay(ax: Any, labels_yx: np.ndarray, label_map: Any, image_yx: np.ndarray | None = None,
                 spacing_yx: tuple[float, float] = (1.0, 1.0), box: tuple | None = None, title: str = "",
                 title_size: float = 11, legend_size: float = 8) -> None:
    """Contours of every structure of one (Y, X) label slice on ``ax``, over ``image_yx`` (grey,
    1-99.5 percentile window; black without), LV dashed and drawn last; ``box`` ((row range),
    (col range)) crops (:func:`_crop_box`; default the labels with a margin)."""
    from skimage.measure import find_contours

    lmap = LabelMap.parse(label_map)
    aspect = spacing_yx[0] / spacing_yx[1]
    if image_yx is not None:
        sl = np.asarray(image_yx, dtype=float)
        lo, hi = np.percentile(sl, [1, 99.5])
        ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, aspect=aspect)
    else:
        ax.imshow(np.zeros(labels_yx.shape), cmap="gray", aspect=aspect)
    order = sorted(lmap.values.items(), key=lambda kv: kv[0] == "lv")  # LV drawn last, over the myocardium
    for name, v in order:
        m = labels_yx == v
        if not m.any():
            continue
        for k, c in enumerate(find_contours(np.pad(m, 1).astype(float), 0.5)):
            ax.plot(c[:, 1] - 1, c[:, 0] - 1, color=STRUCTURE_COLOURS.get(name, UNNAMED_COLOUR), lw=1.6 if name == "lv" else 1.3,
                    ls="--" if name == "lv" else "-", label=name.upper() if k == 0 else None)
    (r0, r1), (c0, c1) = box if box is not None else _crop_box([labels_yx > 0])
    ax.set_xlim(c0, c1)
    ax.set_ylim(r1, r0)
    ax.set_title(title, fontsize=title_size)
    ax.set_xticks([])
    ax.set_yticks([])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=legend_size, framealpha=0.7)


def _phase_labels(labels: Any) -> dict[str, np.ndarray]:
    """overlay_png's ``labels`` as phase -> (Z, Y, X) arrays (one-frame label Volumes or
    (1, Z, Y, X) arrays taken); a MeasurementError naming what is allowed otherwise."""
    if not isinstance(labels, Mapping) or not labels:
        raise MeasurementError(f"labels must be a dict of phase name -> (Z, Y, X) label array, e.g. {{'ED': ed, 'ES': es}}, "
                               f"got {type(labels).__name__}")
    out = {}
    for phase, lab in labels.items():
        a = np.asarray(getattr(lab, "array", lab))
        a = a[0] if a.ndim == 4 and a.shape[0] == 1 else a
        if a.ndim != 3:
            raise MeasurementError(f"labels[{phase!r}] must be one phase (Z, Y, X), got shape {a.shape}")
        out[phase] = a
    return out


def shared_box(slices: list[np.ndarray]) -> tuple | None:
    """One crop box (:func:`_crop_box`) around the labels of every panel, or None (each panel its
    own) when the slices differ in size: echo ED and ES views saved apart, cropped to each view."""
    return _crop_box([s > 0 for s in slices]) if len({s.shape for s in slices}) == 1 else None


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

"""The volume curves of a biplane report from two apical clips (``medseg measure A4C_CLIP --a2c
A2C_CLIP``, :func:`medseg.measure.echo_clips.measure_echo_biplane_clips`): ``volume_curve.png`` of
``--plots`` and the study page's curve (:mod:`medseg.measure.study_pdf`).

What is drawn is what the report holds per clip (``clips.<view>.volume_curve_rel``): that view's
single-plane disk volume of each frame over its own at ED, in %. The curves are not drawn in mL,
not even with the biplane EDV and ESV known: a biplane volume needs both views on one frame, and
the clips are separate acquisitions whose frames are not paired, so a view's curve scaled to the
biplane EDV would pass through a made-up ESV at its ES (each view's own ES fraction differs from
the biplane one). Each clip keeps its own time axis (ms from its first frame, when both clips
have frame times; else frame numbers), and the labels say so. The biplane EF, which is computed
from both views' ED and ES frames, is said in the PNG's title.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: the report's ``clips`` keys -> (legend name, colour, line style, marker): Okabe-Ito blue and
#: vermilion, told apart by line and marker as well (grey print, colour vision)
_VIEWS = {"a4c": ("A4C", "#0072b2", "-", "o"), "a2c": ("A2C", "#d55e00", "--", "s")}
#: the flags' ``view`` of each clip (:data:`medseg.measure.echo_clips.VIEW_NAMES`)
_FLAG_VIEW = {"a4c": "4-chamber", "a2c": "2-chamber"}
_OUTLIER = "outlier frame (not ED/ES)"


def has_clip_curves(report: Mapping[str, Any]) -> bool:
    """Whether ``report`` is one of two clips with a relative volume on some frame of a clip."""
    return bool(_curves(report))


def clip_curves_png(report: Mapping[str, Any], path: str | Path) -> Path:
    """Both clips' curves (:func:`draw_clip_curves`) as a PNG at ``path`` (atomically)."""
    from .plots import _figure, _save

    fig = _figure(6.4, 4.2)
    draw_clip_curves(fig.add_subplot(1, 1, 1), report)
    return _save(fig, path)


def draw_clip_curves(ax: Any, report: Mapping[str, Any], compact: bool = False) -> None:
    """Each clip's LV volume over its frames on ``ax``, in % of that view's own ED volume
    (single plane): ED (^) and ES (v) of each marked, a frame flagged ``volume_outlier_frame``
    in that view circled hollow, unlabelled frames (None) left as gaps; x = ms from each clip's
    first frame when both clips have frame times, else frame numbers.

    Args:
        report: a :func:`medseg.measure.echo_clips.measure_echo_biplane_clips` report (``clips``).
        compact: the study page's style (small text, no value labels).
    """
    from .plots import _finish_volume_axes, _style, _title_font

    st = _style(compact)
    curves = _curves(report)
    timed = all(_times(c) is not None for c, _ in curves.values())
    outliers = [(f.get("view"), f.get("frame")) for f in report.get("flags") or [] if isinstance(f, Mapping)
                and f.get("code") == "volume_outlier_frame"]
    for k, (key, (clip, y)) in enumerate(curves.items()):
        times = _times(clip)
        x = times * 1000.0 if timed and times is not None else np.arange(len(y), dtype=float)
        circled = [f for v, f in outliers if v == _FLAG_VIEW[key] and _frame(f, y) is not None]
        _draw_clip(ax, key, clip, x, y, k, circled, st)
    allv = np.concatenate([y[np.isfinite(y)] for _, y in curves.values()]) if curves else np.array([])
    if allv.size:
        lo, hi = float(allv.min()), float(allv.max())
        r = max(hi - lo, 1.0)  # room above for the page's legend, or for two views' ED/ES labels (the PNG's)
        ax.set_ylim(max(lo - (0.15 if compact else 0.5) * r, 0.0), hi + (0.55 if compact else 0.5) * r)  # no volume below 0
    if compact:  # the page's narrow axes: short words, the same meaning
        ax.set_xlabel("ms from each clip's start" if timed else "frame of each clip")
        ax.set_title("LV volume per clip", **_title_font(st))
    else:
        ax.set_xlabel(("ms from each clip's first frame" if timed else "frame of each clip") + " (the clips are not paired)")
        ef = (report.get("lv") or {}).get("ef_pct") if isinstance(report.get("lv"), Mapping) else None
        biplane = f"; biplane EF {ef:.1f}% from both views' ED and ES" if _finite(ef) else ""
        ax.set_title(f"LV volume over each apical clip\nsingle plane, % of that view's own ED volume{biplane}", fontsize=10)
    if not timed:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # frames: no "1.5"
    _finish_volume_axes(ax, st)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == _OUTLIER)  # the views first, the outlier mark last
    legend = {"handles": [handles[i] for i in order], "labels": [labels[i] for i in order], "fontsize": st.legend_size}
    if compact:  # the legend in one row above the curves, whose middle they cross
        ax.set_ylabel("% of its ED (single plane)", fontsize=8)
        ax.xaxis.label.set_size(8)
        ax.legend(**legend, loc="upper center", ncol=2, frameon=False, handlelength=1.8, columnspacing=1.0)
    else:
        ax.set_ylabel("LV volume (% of the view's ED)")
        ax.legend(**legend)


def _draw_clip(ax: Any, key: str, clip: Mapping[str, Any], x: np.ndarray, y: np.ndarray, k: int, circled: list[int], st: Any) -> None:
    """One clip's curve (the ``k``-th drawn), its ED and ES marks (and, in the report's style,
    their labels) and its ``circled`` outlier frames."""
    name, col, ls, mk = _VIEWS[key]
    ed, es = _frame(clip.get("ed_frame"), y), _frame(clip.get("es_frame"), y)
    said = "" if st.compact else f" (single plane; ES {y[es]:.0f}% of ED)" if es is not None else " (single plane; no ES)"
    ax.plot(x, y, linestyle=ls, marker=mk, ms=3, color=col, label=f"{name} clip{said}")
    for f, lab, sym in ((ed, "ED", "^"), (es, "ES", "v")):
        if f is None:
            continue
        ax.plot(x[f], y[f], sym, ms=st.marker_size, color=col, mec="k")
        if not st.compact:  # one view above the other at ED (both 100 %) and at ES: never overlapping
            text = f"{name} {lab}, frame {f}" if lab == "ED" else f"{name} ES {y[f]:.0f}%, frame {f}"
            ax.annotate(text, (x[f], y[f]), textcoords="offset points", xytext=(0, 9 + 15 * k if lab == "ED" else -15 - 15 * k),
                        ha="center", fontsize=8, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": col, "alpha": 0.85})
    for f in circled:
        shown = any(ln.get_label() == _OUTLIER for ln in ax.get_lines())
        ax.plot(x[f], y[f], "o", ms=st.marker_size + 2, mfc="none", mec=col, mew=1.5, label="_nolegend_" if shown else _OUTLIER)


def _curves(report: Mapping[str, Any]) -> dict[str, tuple[Mapping[str, Any], np.ndarray]]:
    """Clip key -> (its ``clips`` entry, relative volume per frame in %, NaN where unlabelled), in
    A4C, A2C order; clips without a value left out."""
    clips = report.get("clips")
    if not isinstance(clips, Mapping):
        return {}
    out = {}
    for key in _VIEWS:
        clip = clips.get(key)
        rel = clip.get("volume_curve_rel") if isinstance(clip, Mapping) else None
        if not isinstance(rel, list):
            continue
        y = np.array([100.0 * v if _finite(v) else np.nan for v in rel], dtype=float)
        if np.isfinite(y).any():
            out[key] = (clip, y)
    return out


def _times(clip: Mapping[str, Any]) -> np.ndarray | None:
    """The clip's frame times (s) from its first frame, one per frame; None when not known."""
    t = clip.get("frame_times_s")
    rel = clip.get("volume_curve_rel") or []
    if not isinstance(t, list) or len(t) != len(rel) or not all(_finite(v) for v in t):
        return None
    arr = np.asarray(t, dtype=float)
    return arr - arr[0]


def _frame(f: Any, y: np.ndarray) -> int | None:
    """``f`` when it is a frame of ``y`` with a value, else None."""
    ok = isinstance(f, int) and not isinstance(f, bool) and 0 <= f < len(y) and np.isfinite(y[f])
    return int(f) if ok else None


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

"""One page per study: the A4 PDF of ``medseg measure --pdf`` for a colleague who reads no JSON.

The page holds what the report holds and nothing drawn empty: a header (case, patient and study
when known, what was measured, model + adapter, medseg version, when measured and written), the
cautions the report calls for (labels edited by hand since medseg wrote them, a segmentation
flagged for review, implausible numbers), a table of the clinical numbers with units, their
BSA-indexed values and the normal ranges of :mod:`medseg.measure.reference` (values outside
marked as the report's range flags say), the volume curve (cine, echo clip; two echo clips: each
view's own, :mod:`medseg.measure.clip_plots`) or ED/ES bars, the
AHA bullseyes of wall thickness and systolic thickening, the contours over a mid-ventricular
slice at ED and ES, and the QC flags and confidences in words.

The drawing is :mod:`medseg.measure.plots`' (``draw_volumes``, ``draw_bullseye``,
``draw_overlay``) on the page's axes; the words are built by the plain functions of
:mod:`medseg.measure.study_text` (``number_rows``, ``header_lines``, ``caution_lines``,
``flag_lines``, ``confidence_lines``), and :func:`page_text` lists what the page says: tests read
them without a PDF parser. Text is measured as matplotlib lays it out and wrapped or shortened to
its box (long ids, many flags: the ones that do not fit are counted). matplotlib is imported inside
the functions; the file is written atomically.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .study_text import (
    Row,
    _get,
    _num,
    _ranges,
    case_name,
    caution_lines,
    confidence_lines,
    flag_lines,
    header_lines,
    number_rows,
)

#: A4 portrait, inches
A4_IN = (8.27, 11.69)
_MARGIN = 0.45  # inches, each side


def _width(text: str, size: float, bold: bool = False) -> float:
    """Width (inches) of ``text`` drawn at font ``size`` (pt), as matplotlib lays it out."""
    from matplotlib.font_manager import FontProperties

    w, _, _ = _renderer().get_text_width_height_descent(text, FontProperties(size=size, weight="bold" if bold else "normal"), ismath=False)
    return w / 720.0


def _drawable(text: str, size: float, bold: bool) -> str:
    from matplotlib.font_manager import FontProperties

    from .plots import drawable_string

    return drawable_string(text, FontProperties(size=size, weight="bold" if bold else "normal"))


@functools.lru_cache(maxsize=1)
def _renderer() -> Any:
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(8, 8, 720)  # fine enough that hinting at small sizes does not round the widths


def _wrap(text: str, width_in: float, size: float, bold: bool = False) -> list[str]:
    """``text`` in lines that fit ``width_in`` at font ``size`` (pt), measured; a word longer
    than a line (an id) is split; characters the fonts lack written as escapes first."""
    text = _drawable(text, size, bold)
    lines, cur = [], ""
    for word in text.split():
        cand = f"{cur} {word}" if cur else word
        if _width(cand, size, bold) <= width_in:
            cur = cand
            continue
        if cur:
            lines.append(cur)
        while len(word) > 1 and _width(word, size, bold) > width_in:
            k = max(next((k for k in range(len(word) - 1, 0, -1) if _width(word[:k], size, bold) <= width_in), 1), 1)
            lines.append(word[:k])
            word = word[k:]
        cur = word
    return lines + [cur] if cur else lines or [""]


def _fit(text: str, width_in: float, size: float, bold: bool = False) -> str:
    """``text`` shortened in the middle ("abc…xyz") to fit one line of ``width_in``."""
    text = _drawable(text, size, bold)
    if _width(text, size, bold) <= width_in:
        return text
    lo, hi = 0, len(text)  # characters kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _width(text[: mid // 2] + "…" + text[len(text) - (mid - mid // 2):], size, bold) <= width_in:
            lo = mid
        else:
            hi = mid - 1
    return text[: lo // 2] + "…" + text[len(text) - (lo - lo // 2):]


class _Page:
    """Placement on the page in inches from its top left corner."""

    def __init__(self, fig: Any) -> None:
        self.fig, (self.w, self.h) = fig, A4_IN

    def text(self, x: float, y: float, s: str, size: float, **kw: Any) -> Any:
        return self.fig.text(x / self.w, 1.0 - y / self.h, s, fontsize=size, va="top", **kw)

    def axes(self, x: float, y: float, w: float, h: float) -> Any:
        return self.fig.add_axes((x / self.w, 1.0 - (y + h) / self.h, w / self.w, h / self.h))

    def box(self, x: float, y: float, w: float, h: float, **kw: Any) -> None:
        from matplotlib.patches import Rectangle

        self.fig.add_artist(Rectangle((x / self.w, 1.0 - (y + h) / self.h), w / self.w, h / self.h, transform=self.fig.transFigure, **kw))


def study_page(report: Mapping[str, Any], *, labels: Mapping[str, np.ndarray] | None = None, label_map: Any = None,
               images: Mapping[str, np.ndarray] | None = None, frames: Mapping[str, int] | None = None,
               confidence: Mapping[str, Any] | None = None, case: str | None = None, modality: str | None = None,
               written: str | None = None, source: str | None = None, body: Mapping[str, Any] | None = None) -> Any:
    """The matplotlib Figure of the study's page (A4 portrait).

    Args:
        report: a :mod:`medseg.measure` report, as ``medseg measure`` writes it (its ``inputs`` too).
        labels: phase name ("ED", "ES") -> (Z, Y, X) labels, for the contour panels (one slice
            each: the LV's middle one); None: no contour panels. ``label_map``: theirs.
        images: phase name -> (Z, Y, X) image under the contours (None: contours on black).
        frames: phase name -> cine frame, named in the panel titles when they differ.
        confidence: :func:`confidence_lines`' ``confidence``.
        case, modality ("MR", "CT", "US"), written (UTC time of the page), source (the report's
        file name, in the footer).
        body: ``height_cm``, ``weight_kg``, ``sex`` measured with, for a report that does not
            record them (an echo report): the header's body line and the sex of the ranges.
    """
    from .plots import _figure

    report = {**{k: v for k, v in (body or {}).items() if k in ("height_cm", "weight_kg", "sex") and v is not None}, **report}
    if report.get("sex") is None and (body or {}).get("sex") is not None:
        report["sex"] = body["sex"]

    fig = _figure(*A4_IN)
    page = _Page(fig)
    left, width = _MARGIN, A4_IN[0] - 2 * _MARGIN
    y = _header(page, report, left, width, case, modality, written)
    y = _cautions(page, report, left, width, y)
    y = _numbers(page, report, left, width, y)
    y = _bullseyes(page, report, left, width, y)
    bottom = A4_IN[1] - _MARGIN - 0.25
    qc = confidence_lines(report, confidence) + flag_lines(report)
    qc_need = 0.3 + 0.14 * len(_wrapped(qc, width - 0.15, 8))
    if labels:
        y = _overlays(page, labels, label_map, images, frames, report, left, width, y, min(2.3, bottom - y - qc_need))
    _quality(page, qc, left, width, y, bottom, source)
    from .. import __version__

    page.text(left, A4_IN[1] - _MARGIN + 0.05, _fit(" · ".join(p for p in (source, f"medseg {__version__}", "methods: medseg docs/measurement.md",
                                                                             "page 1 of 1") if p), width, 7), 7, color="#666666")
    return fig


def _header(page: _Page, report: Mapping[str, Any], x: float, w: float, case: str | None, modality: str | None, written: str | None) -> float:
    y = _MARGIN
    page.text(x, y, _fit(f"Cardiac measurements: {case_name(report, case)}", w, 15, bold=True), 15, fontweight="bold")
    y += 0.34
    for line in header_lines(report, modality, written):
        for part in _wrap(line, w, 8.5):
            page.text(x, y, part, 8.5)
            y += 0.165
    return y + 0.05


def _cautions(page: _Page, report: Mapping[str, Any], x: float, w: float, y: float) -> float:
    lines = [p for i, c in enumerate(caution_lines(report)) for p in _wrap(c, w - 0.2, 8.5, bold=i == 0)]
    if len(lines) > _CAUTION_LINES:  # the box stays above the table: its last line says the rest is in the report
        lines = lines[:_CAUTION_LINES]
        bold = len(_wrap(caution_lines(report)[0], w - 0.2, 8.5, bold=True)) >= _CAUTION_LINES  # the first caution fills the box
        lines[-1] = _cut_line(lines[-1], " ... (more in the report's inputs and flags)", w - 0.2, bold)
    if not lines:
        return y
    h = 0.12 + 0.16 * len(lines)
    first = len(_wrap(caution_lines(report)[0], w - 0.2, 8.5, bold=True))  # the first caution in bold
    page.box(x, y, w, h, fc="#fff1f0", ec="#b00000", lw=1.2)
    for i, line in enumerate(lines):
        page.text(x + 0.1, y + 0.07 + 0.16 * i, line, 8.5, color="#8b0000", fontweight="bold" if i < first else "normal")
    return y + h + 0.12


#: most lines the red caution box takes
_CAUTION_LINES = 8


def _cut_line(line: str, tail: str, w: float, bold: bool = False) -> str:
    """``line`` shortened by whole words until ``line + tail`` fits one line of width ``w``."""
    words = line.split()
    while words and len(_wrap(" ".join(words) + tail, w, 8.5, bold)) > 1:
        words.pop()
    return " ".join(words) + tail


# table columns (inches from the table's left): measure, value (right-aligned), indexed (right), normal, mark
_COLS = (0.0, 2.5, 3.55, 3.67, 4.64)
_TABLE_W = 5.1


def _numbers(page: _Page, report: Mapping[str, Any], x: float, w: float, y: float) -> float:
    rows = number_rows(report)
    row_h, size = 0.175, 8.5
    top = y
    if rows:
        heads = (("Measure", "left"), ("Value", "right"), ("Indexed", "right"), ("Normal (adult)", "left"))
        have = (True, True, any(r.indexed for r in rows), any(r.normal for r in rows))  # no empty column
        for i, (text, ha) in enumerate(heads):
            if have[i]:
                page.text(x + _COLS[i], y, text, size, ha=ha, fontweight="bold", color="#333333")
        y += row_h + 0.02
        page.box(x, y - 0.04, _TABLE_W - 0.1, 0.008, fc="#333333", ec="none")
        for k, r in enumerate(rows):
            if k % 2 == 0:
                page.box(x - 0.03, y - 0.025, _TABLE_W - 0.05, row_h, fc="#f1f1f1", ec="none")
            out = bool(r.mark)
            colour = "#b00000" if out else "black"
            page.text(x + _COLS[0], y, _fit(r.measure, _COLS[1] - 0.62, size), size)
            page.text(x + _COLS[1], y, r.value, size, ha="right", color=colour, fontweight="bold" if out else "normal")
            page.text(x + _COLS[2], y, r.indexed, size, ha="right", color=colour if out and "index" in _ref_of(r) else "black")
            page.text(x + _COLS[3], y, r.normal, size)
            if out:
                page.text(x + _COLS[4], y, "▼ low" if r.mark == "low" else "▲ high", size, color="#b00000", fontweight="bold")
            y += row_h
        for line in _range_note(report, rows, _TABLE_W - 0.1):
            page.text(x, y + 0.03, line, 7, color="#555555")
            y += 0.13
        y += 0.05
    plot_h = max(y - top, 2.5)
    from .clip_plots import draw_clip_curves, has_clip_curves

    if has_clip_curves(report):  # two echo clips: each view's own single-plane curve, not biplane bars
        draw_clip_curves(page.axes(x + _TABLE_W + 0.55, top + 0.25, w - _TABLE_W - 0.6, plot_h - 0.7), report, compact=True)
        return top + plot_h + 0.1
    if _has_volumes(report):
        from .plots import draw_volumes

        ax = page.axes(x + _TABLE_W + 0.55, top + 0.25, w - _TABLE_W - 0.6, plot_h - 0.7)
        draw_volumes(ax, report, compact=True)  # a structure with no ED volume (no RV labelled) gets no bar
        return top + plot_h + 0.1
    return y + 0.1


def _ref_of(row: Row) -> str:
    return "index" if row.normal and row.indexed and ("/m²" in row.normal) else ""


def _range_note(report: Mapping[str, Any], rows: list[Row], width: float) -> list[str]:
    if not any(r.normal for r in rows):
        return []
    from ..errors import MedsegError
    from .reference import REFERENCE_RANGES, check_sex

    _, applies = _ranges(report)
    if not applies:
        return _wrap("Normal ranges not applied: medseg's ranges are adults' and the height given is a child's.", width, 7)
    sources = sorted({REFERENCE_RANGES[k][3] for k in REFERENCE_RANGES if (k.startswith("echo_") == _echo(report))})
    try:
        sex = check_sex(report.get("sex"))
    except MedsegError:
        sex = None
    who = f"for {sex}s" if sex else "for either sex (sex not given)"
    return _wrap(f"Normal ranges {who}: {'; '.join(sources)}. ▲ / ▼: above / below it (the report's range flags).", width, 7)


def _echo(report: Mapping[str, Any]) -> bool:
    from .echo import is_echo_report

    return is_echo_report(report)


def _has_volumes(report: Mapping[str, Any]) -> bool:
    """Whether the report has a volume plot to draw (no empty axes): a curve, or ED/ES or one-phase volumes."""
    if report.get("volume_curve_ml"):
        from .plots import _volume_curves

        curves, _ = _volume_curves(report)
        return any(_num(v) is not None for c in curves.values() for v in c)
    if any(isinstance(report.get(n), Mapping) and "edv_ml" in report[n] for n in ("lv", "rv")):
        return any(_num(_get(report, n, k)) is not None for n in ("lv", "rv") for k in ("edv_ml", "esv_ml"))
    return not _echo(report) and any(_num(v) is not None for v in (report.get("volumes_ml") or {}).values())


def _bullseyes(page: _Page, report: Mapping[str, Any], x: float, w: float, y: float) -> float:
    if _echo(report) or _num(_get(report, "wall_thickness_mm", "global_mean")) is None:
        return y
    from .plots import as_bullseye_values, draw_bullseye

    h = 2.45
    thick = _num(_get(report, "wall_thickening_pct", "global")) is not None
    n = 2 if thick else 1
    pw = w / 2
    start = x + (w - n * pw) / 2
    y += 0.22  # the titles, above the axes
    draw_bullseye(page.axes(start, y, pw - 0.1, h), report["wall_thickness_mm"], compact=True,
                  title=f"AHA wall thickness, segment mean (global {report['wall_thickness_mm']['global_mean']:.1f} mm)")
    if thick:
        draw_bullseye(page.axes(start + pw, y, pw - 0.1, h), as_bullseye_values(report["wall_thickening_pct"]), compact=True,
                      quantity="thickening", title=f"Systolic wall thickening (global {report['wall_thickening_pct']['global']:.1f} %)")
    return y + h + 0.1


def _overlays(page: _Page, labels: Mapping[str, np.ndarray], label_map: Any, images: Mapping[str, np.ndarray] | None,
              frames: Mapping[str, int] | None, report: Mapping[str, Any], x: float, w: float, y: float, h: float) -> float:
    if h < 1.3:  # no room left for a readable slice: the flags come first
        return y
    from ..labels import LabelMap
    from .plots import _mid_slice, _phase_labels, draw_overlay, shared_box

    lmap = LabelMap.parse(label_map)
    phases = dict(list(_phase_labels(dict(labels)).items())[:4])
    first = next(iter(phases.values()))
    z = _mid_slice(first, lmap)
    box = shared_box([lab[z] for lab in phases.values()])
    spacing = report.get("spacing_mm")
    spacing_yx = (float(spacing[1]), float(spacing[2])) if isinstance(spacing, list) and len(spacing) == 3 and all(_num(s) for s in spacing) else (1.0, 1.0)
    pw = min(w / len(phases), h + 0.3)
    start = x + (w - pw * len(phases)) / 2
    for i, (phase, lab) in enumerate(phases.items()):
        img = (images or {}).get(phase)
        where = [f"slice {z}"] if first.shape[0] > 1 else []
        if frames and len(set(frames.values())) > 1 and phase in frames:
            where.append(f"frame {frames[phase]}")
        # a slice of a stack is mid-ventricular; a one-slice view (apical echo, long axis) has none to say so of
        if first.shape[0] > 1 and _width(f"{phase}: {', '.join(where)} (mid-ventricular)", 9) <= pw - 0.15:
            where[0] += " (mid-ventricular)"
        draw_overlay(page.axes(start + i * pw + 0.05, y + 0.25, pw - 0.1, h - 0.3), lab[z], lmap, None if img is None else img[z], spacing_yx, box,
                     _fit(f"{phase}: {', '.join(where)}" if where else phase, pw - 0.15, 9), title_size=9, legend_size=7)
    return y + h + 0.05


def _quality(page: _Page, lines: list[str], x: float, w: float, y: float, bottom: float, source: str | None = None) -> None:
    page.text(x, y, "Quality checks and confidence", 10, fontweight="bold")
    y += 0.24
    room = max(int((bottom - y) / 0.135), 1)
    wrapped = _wrapped(lines, w - 0.15, room + 1)
    if len(wrapped) > room:  # whole lines only, then how many are left out
        cut = wrapped[room - 1][0]
        shown = [(i, part) for i, part in wrapped[: room - 1] if i < cut]
        wrapped = shown + [(-1, _fit(f"… and {len(lines) - cut} more: see the flags in {source or 'the report'}", w - 0.15, 7.5))]
    last = None
    for i, part in wrapped:
        page.text(x + (0.12 if i == last else 0.0), y, ("" if i == last or i < 0 else "• ") + part, 7.5,
                  color="#8b0000" if i >= 0 and lines[i].startswith("Warning") else "black")
        last = i
        y += 0.135


def _wrapped(lines: list[str], width: float, most: int) -> list[tuple[int, str]]:
    """(line number, wrapped part) of ``lines`` at the QC section's size, the first ``most`` parts."""
    out: list[tuple[int, str]] = []
    for i, s in enumerate(lines):
        if len(out) >= most:
            break
        out += [(i, part) for part in _wrap(s, width, 7.5)]
    return out[:most]


def page_text(fig: Any) -> list[str]:
    """Every text drawn on the page (titles, table cells, ticks, legends), for tests and search."""
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def write_study_pdf(report: Mapping[str, Any], path: str | Path, **page: Any) -> Path:
    """Write :func:`study_page` as a one-page A4 PDF at ``path`` (atomically: nothing on failure),
    fonts embedded as TrueType so the text can be searched and copied; ``page``: its keywords."""
    import matplotlib

    from .._files import atomic_path
    from .._runinfo import utc_timestamp
    from .plots import _drawable_text

    page.setdefault("written", utc_timestamp())
    fig = study_page(report, **page)
    _drawable_text(fig)
    from .. import __version__

    meta = {"Title": f"medseg study report: {case_name(report, page.get('case'))}", "Creator": f"medseg {__version__}",
            "Subject": "cardiac measurements (volumes, EF, LV mass, wall thickness, QC)"}
    with matplotlib.rc_context({"pdf.fonttype": 42}), atomic_path(path) as tmp:
        fig.savefig(tmp, format="pdf", metadata=meta)
    return Path(path)

"""Segment values of the compact AHA bullseye (the napari panel's, the study page's) stay inside
their own segments: at the dock's default width a thickening of "-0.3" or "-0.1" ran past its
outer segment and was cut by the white borders, and "0.7" / "5.1" crossed the apical ring's
(the review of session 52, e02_crop.png). The values there are the review's Sunnybrook study."""

from __future__ import annotations

import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medseg.measure.plots import _RINGS, as_bullseye_values, draw_bullseye

THICKNESS = {1: 9.2, 2: 9.8, 3: 8.3, 4: 7.2, 5: 8.3, 6: 8.5, 7: 8.8, 8: 8.9, 9: 7.5, 10: 7.2, 11: 8.2, 12: 8.3, 13: 8.5, 14: 7.7,
             15: 8.6, 16: 8.4, 17: 8.0}
THICKENING = {1: 4.6, 2: -0.3, 3: 21.0, 4: 53.0, 5: 64.0, 6: 27.0, 7: 7.6, 8: 19.0, 9: 32.0, 10: 36.0, 11: 10.0, 12: -0.1, 13: 2.5,
              14: 0.7, 15: 2.5, 16: 5.1, 17: 3.0}
SEGMENTS = {k: (r0, r1, start + i * 360 / len(ids), start + (i + 1) * 360 / len(ids)) for ids, r0, r1, start in _RINGS
            for i, k in enumerate(ids)} | {17: (0.0, 1.0, 0.0, 360.0)}
DIGITS = 0.7  # of a text's box: its digits (no descender below them, no accent above)
SLACK_PX = 0.5


def _outside_px(ax, t, renderer) -> float:
    """How far (px) the digits of segment value ``t`` reach past its segment."""
    x, y = t.get_position()
    angle = math.degrees(math.atan2(y, x)) % 360
    k = 17 if math.hypot(x, y) < 1 else next(k for k, (r0, r1, a0, a1) in SEGMENTS.items()
                                            if r0 <= math.hypot(x, y) <= r1 and (a0 <= angle <= a1 or a0 <= angle + 360 <= a1))
    r0, r1, a0, a1 = SEGMENTS[k]
    box = t.get_window_extent(renderer)
    cy, half = (box.y0 + box.y1) / 2, DIGITS * box.height / 2
    px = abs(ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0])  # px per data unit
    worst = 0.0
    for cx, cy_ in ((box.x0, cy - half), (box.x0, cy + half), (box.x1, cy - half), (box.x1, cy + half)):
        dx, dy = ax.transData.inverted().transform((cx, cy_))
        r, a = math.hypot(dx, dy), math.degrees(math.atan2(dy, dx)) % 360
        a = a if a0 <= a <= a1 or not a0 <= a + 360 <= a1 else a + 360
        past = max(r0 - r, r - r1, 0.0)
        if a1 - a0 < 360 and not a0 <= a <= a1:
            past = max(past, math.radians(min(abs(a - a0), abs(a - a1))) * r)
        worst = max(worst, past * px)
    return worst


@pytest.mark.parametrize("size_px", [(240, 230), (300, 260), (250, 300), (420, 340)])
@pytest.mark.parametrize("kind", ["thickness", "thickening"])
def test_each_value_stays_inside_its_own_segment(kind, size_px):
    """The panel draws each bullseye 240 px wide or more (PANEL_MIN_PX) and resizes it with the dock."""
    fig = Figure(figsize=(size_px[0] / 100, size_px[1] / 100), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    values = as_bullseye_values({"segments": {str(k): v for k, v in THICKENING.items()}, "global": 15.9}) if kind == "thickening" else \
        {"segments": {str(k): {"mean": v} for k, v in THICKNESS.items()}, "global_mean": 8.3}
    draw_bullseye(ax, values, compact=True, quantity=kind)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts if any(c.isdigit() for c in t.get_text())]
    assert len(texts) == 17
    past = {t.get_text(): round(_outside_px(ax, t, renderer), 1) for t in texts}
    assert max(past.values()) <= SLACK_PX, f"values past their segments (px): { {k: v for k, v in past.items() if v > SLACK_PX} }"
    assert all(t.get_fontsize() >= 7 for t in texts)  # not shrunk to specks (test_napari_polish36)


def test_compact_thickening_is_in_whole_percent():
    """Thickening at the panel's size: "-0.3" (four characters) drawn as "0"; the table keeps the decimals."""
    fig = Figure(figsize=(2.4, 2.3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_bullseye(ax, as_bullseye_values({"segments": {str(k): v for k, v in THICKENING.items()}, "global": 15.9}),
                  compact=True, quantity="thickening")
    shown = sorted(t.get_text() for t in ax.texts if any(c.isdigit() for c in t.get_text()))
    assert shown == sorted(["5", "0", "21", "53", "64", "27", "8", "19", "32", "36", "10", "0", "2", "1", "2", "5", "3"])

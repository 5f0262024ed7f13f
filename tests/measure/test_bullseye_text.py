"""Segment values of the AHA bullseye stay inside the bullseye: in the napari panel's compact
style a thickening of "27.6" in an outer segment ran past the edge, its first digit white on
the white figure (it read as "7.6")."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medseg.measure.plots import as_bullseye_values, draw_bullseye

OUTER = 4.0  # the outer radius of the bullseye in data units (medseg.measure.plots._RINGS)


def _values(kind: str) -> dict:
    rng = np.random.default_rng(0)
    if kind == "thickening":  # 17 segments of 10-99 %: four characters with one decimal
        return as_bullseye_values({"segments": {str(k): float(rng.uniform(10, 99)) for k in range(1, 18)}, "global": 46.6})
    # hypertrophic walls: 10-25 mm
    return {"segments": {str(k): {"mean": float(rng.uniform(10, 25))} for k in range(1, 18)}, "global_mean": 16.0}


@pytest.mark.parametrize("kind", ["thickening", "thickness"])
@pytest.mark.parametrize(("compact", "size_in"), [(True, (2.4, 2.3)), (True, (3.0, 2.8)), (False, (6.0, 5.0))])
def test_every_segment_value_lies_inside_the_bullseye(kind, compact, size_in):
    fig = Figure(figsize=size_in, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_bullseye(ax, _values(kind), compact=compact, quantity=kind)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_data = ax.transData.inverted()
    values = [t for t in ax.texts if any(c.isdigit() for c in t.get_text())]
    assert len(values) == 17
    for t in values:
        box = t.get_window_extent(renderer)
        corners = to_data.transform([(box.x0, box.y0), (box.x0, box.y1), (box.x1, box.y0), (box.x1, box.y1)])
        reach = float(np.hypot(corners[:, 0], corners[:, 1]).max())
        assert reach <= OUTER, f"{t.get_text()!r} reaches radius {reach:.2f}, past the bullseye's {OUTER}"

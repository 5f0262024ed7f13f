"""The volume-curve plot's ED/ES labels: several structures marked on one frame never cover
each other (the RV ED box hid the LV ED box when the two shared the ED frame)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medseg.measure.plots import draw_volume_curve  # noqa: E402


def _boxes(lv, rv):
    report = {"volume_curve_ml": {"lv": lv, "rv": rv}, "frame_times_s": [0.04 * i for i in range(len(lv))],
              "ed_frame": 5, "es_frame": 2, "rv_ed_frame": 5, "rv_es_frame": 2,
              "lv": {"ef_pct": 55.0}, "rv": {"ef_pct": 57.0}}
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_volume_curve(ax, report)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return {t.get_text(): t.get_bbox_patch().get_window_extent(renderer) for t in ax.texts}


@pytest.mark.parametrize("rv", [
    [86, 77, 41, 60, 80, 95],  # RV just below the LV at ED, as in a real cine: their labels collided
    [86, 77, 45, 60, 80, 101],  # RV just above the LV
    [86, 77, 44, 60, 80, 99],  # equal
])
def test_labels_on_one_frame_do_not_overlap(rv):
    boxes = _boxes([93, 84, 44, 70, 90, 99], rv)
    assert len(boxes) == 4
    for a in ("ED", "ES"):
        lv_box, rv_box = (b for t, b in boxes.items() if f" {a} " in t)
        assert not lv_box.overlaps(rv_box), (a, lv_box, rv_box)


def test_a_report_read_back_from_json_with_ef_null_draws():
    """A cine whose ES is n/a (EF null once the report is JSON): `np.isfinite(None)` raised a
    TypeError, so a study page drawn from a saved REPORT.json failed; the legend names the LV alone."""
    report = {"volume_curve_ml": {"lv": [90.0, 88.0, None, 85.0]}, "ed_frame": 0, "es_frame": None, "lv": {"ef_pct": None}}
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_volume_curve(ax, report)
    assert ax.get_legend_handles_labels()[1] == ["LV"]

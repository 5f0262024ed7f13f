"""Polish the GUI testers asked for (run under ``xvfb-run -a``): the measurement plots and
spin boxes readable at the dock's size, ellipses / polygons / specks on the boxes layer refused
without a session change, one review mark per flag, a "ready" status that follows the slice
shown, and a study lying apart from the others said and brought into view."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from medseg_napari import _measure as m
from medseg_napari._review import ReviewList
from napari_helpers import gui_ready

T_OUT = 60_000  # ms
DOCK_PX = 490  # the measurement canvas's width in a 1400x900 / 1920x1080 window (right dock)
needs_gui = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


@pytest.fixture(scope="module")
def reports(small_cine):
    """A cine report (curve + 2 bullseyes) and an ED + ES one (bars + 2 bullseyes)."""
    vol, truth, _ = small_cine
    cine = m.measure_labels(truth, vol, None)
    pair = m.measure_labels(truth[cine["ed_frame"]], vol, None, es_labels=truth[cine["es_frame"]])
    return cine, pair


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1


@pytest.mark.parametrize("which", [0, 1], ids=["cine", "ed_es"])
def test_measure_plots_are_readable_at_the_docks_width(reports, which):
    """Bullseye titles ran into each other, so did "LV (EF 60%)" and "RV (EF 27%)", the y label
    was cut off and the bullseye numbers were specks: three plots squeezed into one row."""
    rep = reports[which]
    columns, height = m.plot_layout(rep, DOCK_PX)
    fig = Figure(figsize=(DOCK_PX / 100, height / 100), dpi=100)
    FigureCanvasAgg(fig)
    m.draw_report(fig, rep)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    plots = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert columns == 2 and len(plots) == 3
    inside = fig.bbox
    for ax in plots:
        box = ax.get_tightbbox(r)  # title, tick and axis labels included
        assert box.x0 >= inside.x0 - 1 and box.x1 <= inside.x1 + 1 and box.y0 >= inside.y0 - 1 and box.y1 <= inside.y1 + 1, ax.get_title()
    titles = [ax.title.get_window_extent(r) for ax in plots]
    assert not any(_overlap(a, b) for i, a in enumerate(titles) for b in titles[i + 1:])
    ticks = [t.get_window_extent(r) for t in plots[0].get_xticklabels() if t.get_text()]
    assert not any(_overlap(a, b) for i, a in enumerate(ticks) for b in ticks[i + 1:])
    if which == 1:
        assert [t.get_text().split("\n")[0] for t in plots[0].get_xticklabels()] == ["LV", "RV"]
    for bull in plots[1:]:
        assert bull.get_window_extent(r).width >= 150  # the 17 values readable at 7 pt
        values = [t for t in bull.texts if t.get_text() not in ("ant", "inf", "sept", "lat")]
        assert len(values) == 17 and all(t.get_fontsize() >= 7 for t in values)
    assert m.plot_layout(rep, 1100)[0] == 3  # docked wide: side by side


@pytest.mark.gui
@needs_gui
def test_measure_dock_spin_boxes_and_plots_fit(make_napari_viewer, qtbot, reports):
    """"172 c", "61 kg" were cut off in the height / weight boxes; the plots got the height of
    the table pane, whatever they needed."""
    from medseg_napari._qt.measure_widget import MeasureWidget
    from qtpy.QtWidgets import QLineEdit

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement", area="right")
    w.height_cm.setValue(172)
    w.weight_kg.setValue(61)
    w.heart_rate.setValue(72)
    qtbot.waitUntil(lambda: w.isVisible() and w.width() > 200, timeout=T_OUT)
    qtbot.wait(50)
    for spin in (w.height_cm, w.weight_kg, w.heart_rate):
        edit = spin.findChild(QLineEdit)
        longest = spin.textFromValue(spin.maximum()) + spin.suffix()
        assert edit.width() >= spin.fontMetrics().horizontalAdvance(longest), (longest, edit.width())
    w.show_report(reports[0])
    qtbot.wait(50)
    columns, height = m.plot_layout(reports[0], w._plot_width())
    assert w.canvas.minimumHeight() == height and w.canvas.height() >= height  # the pane scrolls, the plots keep their size
    assert w.plots.widget() is w.canvas and len(w.figure.axes) == 5
    w.clear_report()
    assert not w.figure.axes and w.canvas.minimumHeight() < height


# -- prompts and status of the segmentation widget ------------------------------------------------
def _start(viewer, qtbot, models, vol, name="cine", **kwargs):
    from napari_helpers import start_widget

    viewer.add_image(vol.array, name=name, scale=(1.0, *vol.spacing), **kwargs)
    return start_widget(viewer, qtbot, models, name, T_OUT)


def _go(viewer, w, qtbot, z, wait=True):
    viewer.dims.current_step = (0, z, *viewer.dims.current_step[2:])
    if wait:
        qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, z), timeout=T_OUT)


@pytest.mark.gui
@needs_gui
def test_non_rectangles_and_specks_on_the_boxes_layer_are_refused(make_napari_viewer, qtbot, model_provider, small_cine):
    """An ellipse or polygon vanished with "prompt applied" and an undo step; a 1-pixel box
    "applied" an empty mask."""
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    w = _start(viewer, qtbot, model_provider, vol)
    b = w.binding
    _go(viewer, w, qtbot, 3)
    log = len(w.controller.session.log)
    y0, x0, y1, x1 = 30.0, 30.0, 60.0, 60.0
    b.shapes.mode = "add_ellipse"
    b.shapes.add_ellipses(np.array([[0, 3, y0, x0], [0, 3, y0, x1], [0, 3, y1, x1], [0, 3, y1, x0]]))
    qtbot.waitUntil(lambda: len(b.shapes.data) == 0, timeout=T_OUT)
    text = w.ui.status.text()
    assert "Only rectangles are box prompts" in text and "ellipse" in text and "applied" not in text.replace("no prompt applied", "")
    assert str(b.shapes.mode) == "add_rectangle"
    b.shapes.add_polygons([np.array([[0, 3, y0, x0], [0, 3, y0, x1], [0, 3, y1, x0]])])
    qtbot.waitUntil(lambda: len(b.shapes.data) == 0, timeout=T_OUT)
    assert "polygon" in w.ui.status.text()
    b.shapes.add_rectangles(np.array([[0, 3, 40, 40], [0, 3, 40, 40.4], [0, 3, 40.4, 40.4], [0, 3, 40.4, 40]]))
    qtbot.waitUntil(lambda: len(b.shapes.data) == 0, timeout=T_OUT)
    assert "too small" in w.ui.status.text() and "prompt applied" not in w.ui.status.text()
    assert len(w.controller.session.log) == log and not w.controller.session.can_undo and not w.ui.undo.isEnabled()
    assert not w.controller.labels.any()


@pytest.mark.gui
@needs_gui
def test_ready_status_follows_the_slice_shown(make_napari_viewer, qtbot, model_provider, small_cine):
    """A jump while slice 1 was embedding left "Frame 0, slice 1 ready" under slice 5."""
    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    w = _start(viewer, qtbot, model_provider, vol)
    _go(viewer, w, qtbot, 5)
    _go(viewer, w, qtbot, 1, wait=False)
    assert w.busy  # embedding slice 1
    _go(viewer, w, qtbot, 5, wait=False)  # already embedded: nothing to compute
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(20)
    assert w.binding.current_index(viewer) == (0, 5)
    assert w.ui.status.text() == "Frame 0, slice 5 ready: prompt away."
    _go(viewer, w, qtbot, 1)
    assert w.ui.status.text() == "Frame 0, slice 1 ready: prompt away."


# -- review marks -----------------------------------------------------------------------------------
class _FakeSession:
    """What ReviewList uses of a Session: labels, review() and mark_reviewed(), two flags at one place."""

    volume = SimpleNamespace(n_frames=1)

    def __init__(self) -> None:
        self.log: list[dict] = []
        self.labels = np.zeros((1, 2, 8, 8), np.uint8)

    def review(self, progress=None) -> dict:
        flags = [{"code": "fragmented", "level": "volume", "structure": "la", "message": "la has 4 parts"},
                 {"code": "needs_review", "level": "volume", "structure": "la", "confidence": 0.41, "message": "la 0.41"},
                 {"code": "needs_review", "level": "volume", "structure": "ra", "confidence": 0.46, "message": "ra 0.46"}]
        return {"flags": flags, "needs_review": True, "confidence": {"volume": {"la": 0.41, "ra": 0.46}},
                "reviewed": [a for a in self.log if a["op"] == "review"]}

    def mark_reviewed(self, structure, frame, slice_, note="") -> None:
        self.log.append({"op": "review", "structure": structure, "frame": frame, "slice": slice_, "note": note})


def test_marking_one_flag_leaves_the_other_flag_at_its_place():
    """Marking "fragmented la" also greyed the volume-level "needs_review la" (same structure,
    no frame, no slice): two clicks marked four rows."""
    s = _FakeSession()
    review = ReviewList(s)
    rows = review.check()
    i = next(k for k, r in enumerate(rows) if r.code == "fragmented")
    review.mark_reviewed(i)
    assert [(r.code, r.structure, r.reviewed) for r in review.rows] == [
        ("fragmented", "la", True), ("needs_review", "la", False), ("needs_review", "ra", False)]
    assert s.log[-1]["note"] == "fragmented" and "2 of 3 flags" in review.summary
    again = ReviewList(s)
    assert [r.reviewed for r in again.check()] == [True, False, False]  # from the provenance log, per flag
    review.mark_reviewed(1, note="small appendage")
    assert s.log[-1]["note"] == "needs_review: small appendage"
    assert [r.reviewed for r in ReviewList(s).check()] == [True, True, False]
    s.log = [{"op": "review", "structure": "la", "frame": None, "slice": None, "note": ""}]  # an older log: no code
    assert [r.reviewed for r in ReviewList(s).check()] == [True, True, False]


# -- studies apart --------------------------------------------------------------------------------------
@pytest.mark.gui
@needs_gui
def test_a_study_apart_from_the_others_is_said_and_shown_when_chosen(make_napari_viewer, qtbot, small_cine):
    """A Sunnybrook series opened beside an ACDC volume lay at other world coordinates: drawn
    nowhere near the camera, and nothing said so."""
    from medseg_napari import _view
    from medseg_napari._qt.segment_widget import SegmentWidget

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    scale = (1.0, *vol.spacing)
    a = viewer.add_image(vol.array, name="acdc", scale=scale)
    w = SegmentWidget(viewer)  # no session, no model: placing studies needs neither
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    viewer.add_image(vol.array, name="near", scale=scale, translate=(0, 5.0, 20.0, 20.0))
    assert "outside the view" not in w.ui.status.text()
    far = viewer.add_image(vol.array, name="sunnybrook", scale=scale, translate=(0, 400.0, 900.0, -700.0))
    text = w.ui.status.text()
    assert "'sunnybrook' lies outside the view of 'acdc', 'near'" in text and "Image" in text
    assert w.ui.image.currentText() == "acdc" and _view.in_view(viewer, a) and not _view.in_view(viewer, far)
    w.ui.image.setCurrentText("sunnybrook")
    assert _view.in_view(viewer, far) and "Showing 'sunnybrook'" in w.ui.status.text()
    assert tuple(far.translate) == (0, 400.0, 900.0, -700.0) and tuple(a.translate) == (0, 0, 0, 0)  # no data moved
    w.ui.image.setCurrentText("near")
    assert _view.in_view(viewer, viewer.layers["near"])


def test_view_helpers_import_no_napari_or_qt():
    code = ("import sys, medseg_napari._view\n"
            "bad = [m for m in ('napari', 'qtpy', 'PyQt5', 'PyQt6') if m in sys.modules]\nassert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]

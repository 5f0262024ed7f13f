"""Prompts and operations with napari's view turned away from the slice plane: the transpose and
roll buttons, the axis order and the 2D/3D button (a long-axis look at a short-axis stack).

A box drawn in a (slice, x) view became a one-pixel-high box refused as "too small"; a click in
3-D (no depth) prompted whatever slice the camera plane crossed; Propagate went from the slice
on the hidden slider; a click dragged to another slice left its old slice's prompt in the session.
The user's input is simulated as napari makes it: ``layer.add`` with the displayed axes' values
and the other axes at their sliders.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

T_OUT = 60_000  # ms
pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))

SLICE_X = (0, 2, 1, 3)  # frame and y on sliders, slice and x displayed: a long-axis look


def _session(make_napari_viewer, qtbot, model_provider, small_cine, z=3):
    from medseg_napari._layers import image_layer_kwargs

    viewer = make_napari_viewer()
    viewer.add_image(np.array(small_cine[0].array), **image_layer_kwargs(small_cine[0], "cine"))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    viewer.dims.current_step = (0, z, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, z), timeout=T_OUT)
    return viewer, w


def _slider(viewer, b, axis):
    """The data index of ``b``'s image on the viewer's slider ``axis`` (what a click there gets)."""
    return float(b.image.world_to_data(viewer.dims.point)[axis])


def _lv_slices(w, t=0):
    return [z for z in range(w.controller.labels.shape[1]) if (w.controller.labels[t, z] == 1).any()]


def _settle(qtbot, w):
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(50)  # deferred removals and redraws (QTimer 0)


def test_side_view_clicks_prompt_their_slice_and_boxes_are_refused(make_napari_viewer, qtbot, model_provider, small_cine):
    _vol, truth, _ = small_cine
    viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    b = w.binding
    cy, cx = np.argwhere(truth[0, 4] == 1).mean(axis=0)
    viewer.dims.set_current_step(2, int(round(cy)))  # the y slider through the LV
    viewer.dims.order = SLICE_X
    assert "slice × x view" in w.ui.status.text() and "roll button" in w.ui.status.text()
    y = _slider(viewer, b, 2)

    # a click is a voxel: it prompts the slice it falls on, and the status line names that slice
    b.points.add([0, 4.2, y, cx])
    _settle(qtbot, w)
    assert _lv_slices(w) == [4] and "slice 4" in w.ui.status.text()
    # dragged onto the next slice: the slice it left is prompted again without it (it kept the LV)
    b.points.data = np.array([[0, 5.1, y, cx]])
    _settle(qtbot, w)
    assert _lv_slices(w) == [5]
    assert [(r.slice, len(r.points)) for r in w.controller.prompt_records()] == [(5, 1)]

    # a box drawn here spans slices: refused (and removed) with the way back, not a 1-pixel box
    before = w.controller.labels.copy()
    b.shapes.add_rectangles(np.array([[0, 1.5, y, cx - 10], [0, 1.5, y, cx + 10], [0, 5.5, y, cx + 10], [0, 5.5, y, cx - 10]]))
    _settle(qtbot, w)
    line = w.ui.status.text()
    assert "Boxes are drawn on a slice" in line and "slice × x view" in line and "roll button" in line and "too small" not in line
    assert len(b.shapes.data) == 0 and np.array_equal(w.controller.labels, before)
    viewer.dims.roll()  # (x, frame, y, slice): y and slice displayed
    b.shapes.add_rectangles(np.array([[0, 1.5, cy - 9, cx], [0, 1.5, cy + 9, cx], [0, 5.5, cy + 9, cx], [0, 5.5, cy - 9, cx]]))
    _settle(qtbot, w)
    assert "y × slice view" in w.ui.status.text() and len(b.shapes.data) == 0


def test_a_transposed_slice_is_still_a_slice(make_napari_viewer, qtbot, model_provider, small_cine):
    """The transpose button shows (x, y): boxes and clicks there are the slice's own."""
    from medseg_napari._controller import box_rectangle

    from medseg.types import Box

    _vol, truth, _ = small_cine
    viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine, z=2)
    viewer.dims.transpose()
    assert viewer.dims.displayed == (3, 2) and "ready" in w.ui.status.text()
    w.binding.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 2] == 1), 0, 2, 4))
    _settle(qtbot, w)
    assert _lv_slices(w) == [2] and (w.controller.labels[0, 2] == 1).sum() > 0.8 * (truth[0, 2] == 1).sum()


def test_3d_view_refuses_clicks_boxes_and_propagate(make_napari_viewer, qtbot, model_provider, small_cine):
    from medseg_napari._controller import box_rectangle

    from medseg.types import Box

    _vol, truth, _ = small_cine
    viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    b = w.binding
    box = Box.from_mask(truth[0, 3] == 1)
    b.shapes.add_rectangles(box_rectangle(box, 0, 3, 4))  # the LV on slice 3, prompted in 2-D
    _settle(qtbot, w)
    n_log, before = len(w.controller.session.log), w.controller.labels.copy()
    viewer.dims.ndisplay = 3
    assert w.ui.status.text().startswith("3-D view") and "2D/3D button" in w.ui.status.text()

    cy, cx = np.argwhere(truth[0, 5] == 1).mean(axis=0)
    b.points.add([0, 5.3, cy, cx])  # where napari's camera plane put a 3-D click: no depth
    _settle(qtbot, w)
    assert "no depth" in w.ui.status.text() and len(b.points.data) == 0
    b.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 4] == 1), 0, 4, 4))
    _settle(qtbot, w)
    assert "Boxes are drawn on a slice" in w.ui.status.text() and len(b.shapes.data) == 1  # the 2-D box stays
    w.propagate()
    _settle(qtbot, w)
    assert "Propagate starts from the frame and slice shown" in w.ui.status.text() and "2D/3D button" in w.ui.status.text()
    assert len(w.controller.session.log) == n_log and np.array_equal(w.controller.labels, before)

    viewer.dims.ndisplay = 2  # back: the slice on the sliders is ready, Propagate goes from it
    assert "slice 3 ready" in w.ui.status.text()
    w.propagate()
    _settle(qtbot, w)
    assert w.controller.session.log[-1]["slice"] == 3 and len(_lv_slices(w)) > 1


def test_painting_in_a_side_view_is_recorded_on_every_slice(make_napari_viewer, qtbot, model_provider, small_cine):
    """napari paints in the displayed plane: a stroke in a (slice, x) view spans slices; the
    session records them all (one undo step), and Propagate, which has no slice to start from
    there, is refused instead of starting from the slice on the hidden slider."""
    viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    b = w.binding
    viewer.dims.order = SLICE_X
    y = _slider(viewer, b, 2)
    b.labels.brush_size = 45  # mm on the canvas: +-2 slices of 10 mm
    b.labels.selected_label = 1
    b.labels.paint((0, 3, y, 48), 1, refresh=True)
    _settle(qtbot, w)
    edits = [a for a in w.controller.session.log if a["op"] == "edit"]
    painted = sorted(s["slice"] for s in edits[-1]["slices"])
    assert len(painted) >= 3 and painted == _lv_slices(w)

    n_log = len(w.controller.session.log)
    w.propagate()
    _settle(qtbot, w)
    assert "Propagate starts from the frame and slice shown" in w.ui.status.text() and "slice × x view" in w.ui.status.text()
    assert len(w.controller.session.log) == n_log
    viewer.dims.order = (1, 2, 0, 3)  # frame and x displayed: "this frame" has no frame
    w.ui.auto_frames.setCurrentText("this frame")
    w.auto()
    assert "Auto on this frame starts from the frame shown" in w.ui.status.text() and not w.busy
    w.undo()
    assert _lv_slices(w) == []  # the whole stroke, one step


def test_review_says_when_the_view_does_not_show_the_flagged_slice(make_napari_viewer, qtbot, model_provider, small_cine):
    from medseg_napari._qt.review_widget import ReviewWidget

    from medseg.types import Box

    _vol, truth, _ = small_cine
    viewer, w = _session(make_napari_viewer, qtbot, model_provider, small_cine)
    w.controller.prompt("lv", 0, 3, Box.from_mask(truth[0, 3] == 1))
    w.controller.labels[0, 3, :5, :5] = 2  # a stray myocardium blob: something to flag
    r = ReviewWidget(viewer, segment_widget=w)
    viewer.window.add_dock_widget(r, name="medseg: review")
    r.check_btn.click()
    qtbot.waitUntil(lambda: r.review is not None and not w.busy, timeout=T_OUT)
    assert r.review.rows
    r.show_row(0)
    assert "does not show that slice" not in r.status.text()
    viewer.dims.order = SLICE_X
    r.show_row(0)
    assert "slice × x view does not show that slice alone" in r.status.text() and "roll button" in r.status.text()

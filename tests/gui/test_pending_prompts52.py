"""Prompts placed while the segmentation dock's operation runs, and the study chosen under Image.

A click and a box placed during a propagation were dropped (the prompt layers redrawn from the
session, which did not hold them yet), and the box's slice, propagated meanwhile, was erased;
choosing another study left the one before's clicks layer selected; removing a study during its
propagation replaced the red "unsaved labels lost" warning. Headless (``xvfb-run -a``).
"""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import dice, gui_ready, start_widget

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def _box(truth_slice, t, z):
    from medseg_napari._controller import box_rectangle

    from medseg.types import Box

    return box_rectangle(Box.from_mask(truth_slice == 1), t, z, 4)


def test_prompts_placed_during_a_propagation_are_applied_when_it_ends(make_napari_viewer, qtbot, model_provider, small_cine):
    vol, truth, _ = small_cine
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.array(vol.array), name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    b, c = w.binding, w.controller
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not c.needs_embedding(0, 3), timeout=T_OUT)
    b.shapes.add_rectangles(_box(truth[0, 3], 0, 3))
    qtbot.waitUntil(lambda: not w.busy and c.session.can_undo, timeout=T_OUT)
    w.ui.through.setCurrentText("slices")
    w.propagate()
    assert w.busy
    cy, cx = np.argwhere(truth[2, 1] == 1).mean(axis=0)
    b.points.add(np.array([[2, 1, cy, cx]]))  # a frame the propagation does not reach
    b.shapes.add_rectangles(_box(truth[0, 5], 0, 5))  # a slice it labels too
    assert w.ui.status.text() == "LV on frame 0, slice 5: waits for the running operation, applied when it ends."
    w._sync_prompts()  # a redraw of the layers meanwhile (each box added queues one) keeps them
    assert len(b.points.data) == 1 and len(b.shapes.data) == 2
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(200)  # the queued redraws ran
    assert len(b.points.data) == 1 and len(b.shapes.data) == 2
    records = {(r.structure, r.frame, r.slice): r for r in c.prompt_records()}
    assert records[("lv", 2, 1)].points and records[("lv", 0, 5)].box is not None
    prompted = [(a["prompt"]["frame"], a["prompt"]["slice"]) for a in c.session.log if a.get("op") == "prompt"]
    assert prompted[-2:] == [(0, 5), (2, 1)]  # in the history, after the propagation (and so in the provenance)
    lab = np.asarray(b.labels.data)
    assert (lab[2, 1] == 1).sum() > 50
    assert dice(lab[0, 5] == 1, truth[0, 5] == 1) > 0.7  # the box's mask, not erased
    text = w.ui.status.text()
    assert text.startswith("Propagated LV through slices") and "Then the prompts placed meanwhile were applied" in text
    assert "LV on frame 0, slice 5" in text and "LV on frame 2, slice 1" in text


def _two_studies(viewer, qtbot, models, vol):
    """Sessions on 'a' (96 x 96) and 'b' (its 48 x 48 corner), in one dock; 'b' shown."""
    from medseg_napari._qt.segment_widget import SegmentWidget

    scale = (1.0, *vol.spacing)
    viewer.add_image(np.array(vol.array), name="a", scale=scale)
    viewer.add_image(np.array(vol.array[..., 24:72, 24:72]), name="b", scale=scale)
    w = SegmentWidget(viewer, models=models)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    for name in ("a", "b"):
        w.ui.image.setCurrentText(name)
        w.start_session()
        qtbot.waitUntil(lambda n=name: w.binding is not None and w.binding.image.name == n and not w.busy, timeout=T_OUT)
    return w, w.bindings[id(viewer.layers["a"])], w.bindings[id(viewer.layers["b"])]


def test_choosing_a_study_selects_its_prompt_layer(make_napari_viewer, qtbot, model_provider, small_cine):
    viewer = make_napari_viewer()
    w, a, b = _two_studies(viewer, qtbot, model_provider, small_cine[0])
    assert viewer.layers.selection.active is b.points
    w.ui.image.setCurrentText("a")
    assert viewer.layers.selection.active is a.points and str(a.points.mode) == "add"
    viewer.layers.selection.active = a.shapes
    a.shapes.mode = "select"
    w.ui.image.setCurrentText("b")
    assert viewer.layers.selection.active is b.shapes and str(b.shapes.mode) == "select"


def test_a_click_outside_another_studys_slice_keeps_the_study_chosen(make_napari_viewer, qtbot, model_provider, small_cine):
    viewer = make_napari_viewer()
    w, a, b = _two_studies(viewer, qtbot, model_provider, small_cine[0])
    w.ui.image.setCurrentText("a")
    viewer.layers.selection.active = b.points  # left selected: the click meant for 'a' lands on 'b' (48 x 48)
    t, z = a.current_index(viewer)
    b.points.add(np.array([[t, z, 70, 70]]))
    assert w.ui.image.currentText() == "a" and w.binding is a
    assert w.ui.status.text() == "Not applied: click (70, 70) lies outside the 48x48 slice of 'b' (its layer 'b clicks' was selected, not one of 'a')."
    qtbot.wait(100)
    assert len(b.points.data) == 0 and not b.controller.session.log


def test_closing_a_study_during_its_propagation_keeps_the_lost_labels_warning(make_napari_viewer, qtbot, model_provider, small_cine):
    from medseg_napari._qt._keyboard import error_style

    vol, _, _ = small_cine
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.array(vol.array), name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    b = w.binding
    t, z = b.current_index(viewer)
    b.points.add(np.array([[t, z, 48, 48]], float))
    qtbot.waitUntil(lambda: not w.busy and w.controller.session.can_undo, timeout=T_OUT)
    w.ui.through.setCurrentText("slices + frames")
    w.propagate()
    viewer.layers.remove(b.image)
    warning = w.ui.status.text()
    assert warning.startswith("Session on cine closed with unsaved labels of LV")
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(100)
    assert w.ui.status.text() == f"{warning} Propagation of LV stopped and discarded."
    assert w.ui.status.styleSheet() == error_style(viewer, True)


def test_the_line_of_a_study_apart_reads_right_going_back(make_napari_viewer):
    from medseg_napari._qt.segment_widget import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 9, 64, 64), np.float32), name="series", scale=(1.0, 10.0, 1.4, 1.4), translate=(0.0, -139.0, -166.0, -139.0))
    viewer.add_image(np.ones((1, 1, 96, 96), np.float32), name="echo")
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    for name in ("echo", "series"):  # there, and back
        w.ui.image.setCurrentText(name)
        assert w.ui.status.text().startswith(f"Showing '{name}', which lies apart from the other studies: the view moved to it.")
        assert "go back" not in w.ui.status.text()


def test_a_job_result_discarded_after_a_close_keeps_the_lost_labels_warning(make_napari_viewer, qtbot, model_provider, small_cine):
    """A job that cannot be cancelled (or ended before it saw the cancel) came back after its
    study was closed: "the result of its ... was discarded" replaced the warning."""
    import threading

    vol, _, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(np.array(vol.array), name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    b = w.binding
    t, z = b.current_index(viewer)
    b.points.add(np.array([[t, z, 48, 48]], float))
    qtbot.waitUntil(lambda: not w.busy and w.controller.session.can_undo, timeout=T_OUT)
    gate = threading.Event()
    assert w.run_job(gate.wait, 30, desc="held", on_done=lambda _r: w._job_done("Checked.", b, "check"))
    viewer.layers.remove(b.image)
    warning = w.ui.status.text()
    assert warning.startswith("Session on cine closed with unsaved labels of LV")
    gate.set()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(100)
    assert w.ui.status.text() == f"{warning} The result of its check was discarded."

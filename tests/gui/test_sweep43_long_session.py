"""One napari viewer kept open a whole day, study after study (ACDC validation patients and
phantoms, segmented, undone, measured, saved, closed): what stayed behind after a study's
layers were removed. Headless (``xvfb-run -a``)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms


def _settle(qtbot) -> None:
    qtbot.wait(50)
    gc.collect()


def test_a_closed_study_is_freed(make_napari_viewer, qtbot, model_provider, small_cine):
    """napari keeps every worker in its task-status list for the viewer's life: the embedding,
    prompt and measurement workers held the session (image, labels, undo history, embeddings)
    of every study closed that day: +30 MB a small study, never freed."""
    from medseg_napari._qt.measure_widget import MeasureWidget

    image, _, _ = small_cine
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.asarray(image.array), name="study1", scale=(1.0, *image.spacing))
    w = start_widget(viewer, qtbot, model_provider, "study1")
    b = w.binding
    b.points.add(np.array([[0, 3, 48, 48]], float))
    qtbot.waitUntil(lambda: not w.busy and w.controller.session.can_undo, timeout=T_OUT)
    panel = MeasureWidget(viewer)
    viewer.window.add_dock_widget(panel, name="medseg: measurement")
    panel.labels_combo.setCurrentText(b.labels.name)
    panel.measure()
    qtbot.waitUntil(lambda: panel.measure_btn.isEnabled(), timeout=T_OUT)
    refs = [weakref.ref(x) for x in (b.controller, b.controller.session, b.controller.labels, b.labels)]  # (napari itself keeps the clicks layer: its mode buttons)
    del b
    viewer.layers.remove(layer)
    del layer
    _settle(qtbot)
    assert not w.bindings
    assert [r() is None for r in refs] == [True] * len(refs)


def test_a_study_left_during_a_job_can_be_painted_again(make_napari_viewer, qtbot, model_provider, small_cine):
    """The next study chosen under Image while study 1's job ran: the job's end made the shown
    study's labels paintable again and left study 1's locked (napari's brush did nothing there)."""
    import threading

    image, _, _ = small_cine
    viewer = make_napari_viewer()
    for name in ("study1", "study2"):
        viewer.add_image(np.asarray(image.array), name=name, scale=(1.0, *image.spacing))
    w = start_widget(viewer, qtbot, model_provider, "study2")
    w.ui.image.setCurrentText("study1")
    w.start_session()
    qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=T_OUT)
    first = w.binding
    gate = threading.Event()
    assert w.run_job(gate.wait, 30, desc="a job", on_done=lambda _: None)
    assert not first.labels.editable
    w.ui.image.setCurrentText("study2")
    gate.set()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    w.ui.image.setCurrentText("study1")
    assert all(b.labels.editable for b in w.bindings.values())


def test_a_click_placed_during_a_job_goes_to_its_own_study(make_napari_viewer, qtbot, model_provider, small_cine):
    """A click on study 1 while its job ran, then study 2 chosen under Image: when the job ended
    the click was looked up on study 2's layers (no prompt there: study 2's slice was erased)
    and study 1 never got it."""
    import threading

    image, _, _ = small_cine
    viewer = make_napari_viewer()
    for name in ("study1", "study2"):
        viewer.add_image(np.asarray(image.array), name=name, scale=(1.0, *image.spacing))
    w = start_widget(viewer, qtbot, model_provider, "study2")
    second = w.binding
    second.points.add(np.array([[0, 2, 48, 48]], float))
    qtbot.waitUntil(lambda: not w.busy and second.controller.session.can_undo, timeout=T_OUT)
    w.ui.image.setCurrentText("study1")
    w.start_session()
    qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=T_OUT)
    first, before = w.binding, second.controller.labels.copy()
    assert before[0, 2].any()
    gate = threading.Event()
    assert w.run_job(gate.wait, 30, desc="a job", on_done=lambda _: None)
    first.points.add(np.array([[0, 2, 48, 48]], float))
    w.ui.image.setCurrentText("study2")
    gate.set()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(50)
    assert np.array_equal(second.controller.labels, before)
    assert first.controller.labels[0, 2].any() and w.binding is first

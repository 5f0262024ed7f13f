"""A study closed (its image layer removed) while the segmentation dock's job on it runs: a
propagation went on to its end (the dock busy meanwhile: no session could start on the next
study) and its result was then discarded; a save said its result was discarded over the files it
had written. Headless (``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def _study(viewer, qtbot, models, cine):
    from medseg_napari._layers import image_layer_kwargs

    viewer.add_image(np.array(cine.array), **image_layer_kwargs(cine, "cine"))
    w = start_widget(viewer, qtbot, models, "cine")
    b = w.binding
    t, z = b.current_index(viewer)
    b.points.add(np.array([[t, z, 48, 48]], float))
    qtbot.waitUntil(lambda: not w.busy and w.controller.session.can_undo, timeout=T_OUT)
    return w, b


def test_closing_a_study_stops_its_propagation(make_napari_viewer, qtbot, model_provider, small_cine):
    viewer = make_napari_viewer(show=True)
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    before = b.controller.labels.copy()
    w.ui.through.setCurrentText("slices + frames")
    w.propagate()
    assert w.busy
    viewer.layers.remove(b.image)
    assert b.labels not in viewer.layers and not w.bindings
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(100)  # the job's signals delivered (pytest-qt fails the test on an exception in them)
    text = w.ui.status.text()  # its labels (the propagation's own, unsaved) are lost: the warning stays, the stop added
    assert text.startswith("Session on cine closed with unsaved labels of LV") and text.endswith("Propagation of LV stopped and discarded.")
    assert np.array_equal(b.labels.data, before)  # stopped: nothing of it left in the closed layer's buffer
    assert w.ui.start.isEnabled()


def test_a_save_finished_after_its_study_closed_says_saved(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    viewer = make_napari_viewer(show=True)
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    w.save_in_background(str(tmp_path / "cine_labels.nii.gz"))
    viewer.layers.remove(b.image)
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cine_labels.json", "cine_labels.nii.gz"]
    assert w.ui.status.text() == "Saved cine_labels.nii.gz, cine_labels.json (the session on cine was closed meanwhile)."

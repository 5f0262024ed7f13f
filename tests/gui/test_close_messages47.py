"""What closing a study (its image or labels layer removed) says. Every close was a warning, in
red and as a napari notification ("Session on cine closed: its image layer was removed."), also
for a study saved or never segmented; it is a warning now only when labels the session holds
were never saved or changed since their last save, naming the structures lost and the file that
keeps the last save. A measurement dropped because its layer was closed said "The labels chosen
changed while measuring". Headless (``xvfb-run -a``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from napari_helpers import gui_ready, start_widget

pytestmark = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))
T_OUT = 60_000  # ms


def _study(viewer, qtbot, models, cine, name="cine"):
    from medseg_napari._layers import image_layer_kwargs

    viewer.add_image(np.array(cine.array), **image_layer_kwargs(cine, name))
    w = start_widget(viewer, qtbot, models, name)
    return w, w.binding


def _click(w, b, qtbot, structure="lv", yx=(48, 48)):
    w.select_structure(structure)
    t, z = b.current_index(w.viewer)
    b.points.add(np.array([[t, z, *yx]], float))
    qtbot.waitUntil(lambda: not w.busy and (b.controller.labels == b.controller.spec(structure).value).any(), timeout=T_OUT)


def _paint_myo(w, b):
    """MYO painted (into the label layer's data: the session's buffer) on the slice shown."""
    t, z = b.current_index(w.viewer)
    b.controller.labels[t, z, 10:14, 10:14] = b.controller.spec("myo").value


def _closed(w, qtbot, layer) -> tuple[str, bool]:
    """Remove ``layer``; the status line and whether it is a warning (red)."""
    w.viewer.layers.remove(layer)
    qtbot.wait(50)  # a notification is raised once the removal's event is over
    return w.ui.status.text(), bool(w.ui.status.styleSheet())


def test_closing_a_study_with_nothing_unsaved_is_no_warning(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path, notes):
    viewer = make_napari_viewer()
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    assert _closed(w, qtbot, b.image) == ("Session on cine closed.", False)  # nothing segmented

    w, b = _study(viewer, qtbot, model_provider, small_cine[0], "saved")
    _click(w, b, qtbot)
    w.save(tmp_path / "saved_labels.nii.gz")
    assert _closed(w, qtbot, b.labels) == ("Session on saved closed: its labels layer was removed.", False)
    assert not w.bindings and b.image in viewer.layers
    assert notes == []


def test_closing_a_study_with_unsaved_labels_warns_and_names_them(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path, notes):
    viewer = make_napari_viewer()
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    _click(w, b, qtbot)
    _paint_myo(w, b)
    text, warn = _closed(w, qtbot, b.image)
    assert text == ("Session on cine closed with unsaved labels of LV, MYO: its labels layer went with it; "
                    "they were never saved (Save labels before closing a study to keep them).")
    assert warn and notes == [f"medseg: {text}"]
    assert b.labels not in viewer.layers

    notes.clear()  # saved, then changed: the changes are lost, the file keeps the save
    w, b = _study(viewer, qtbot, model_provider, small_cine[0], "second")
    _click(w, b, qtbot)
    w.save(tmp_path / "second_labels.nii.gz")
    _paint_myo(w, b)  # painted after the save
    text, warn = _closed(w, qtbot, b.labels)
    assert text == ("Session on second closed with unsaved labels of LV, MYO: its labels layer was removed; the changes "
                    "since second_labels.nii.gz are lost (second_labels.nii.gz keeps the labels as they were then).")
    assert warn
    assert notes == [f"medseg: {text}"]


def test_a_study_closed_while_saved_or_after_a_replay_is_no_warning(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path, notes):
    viewer = make_napari_viewer()
    w, b = _study(viewer, qtbot, model_provider, small_cine[0])
    _click(w, b, qtbot)
    gate, save = threading.Event(), b.controller.save
    b.controller.save = lambda path: gate.wait(30) and save(path)  # still writing when the study is closed
    w.save_in_background(str(tmp_path / "cine_labels.nii.gz"))
    viewer.layers.remove(b.image)
    assert w.ui.status.text() == "Session on cine closed: its labels layer went with it; its labels are being saved."
    assert not w.ui.status.styleSheet()
    gate.set()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.wait(100)
    assert w.ui.status.text() == "Saved cine_labels.nii.gz, cine_labels.json (the session on cine was closed meanwhile)."

    w2, b2 = _study(viewer, qtbot, model_provider, small_cine[0], "again")  # the save replayed on a new session
    w2.load_session(tmp_path / "cine_labels.json")
    qtbot.waitUntil(lambda: not w2.busy and b2.controller.labels.any(), timeout=T_OUT)
    assert _closed(w2, qtbot, b2.image) == ("Session on again closed.", False)
    assert notes == []


def test_a_measurement_dropped_for_its_closed_layer_says_so(make_napari_viewer, qtbot, small_cine):
    from medseg_napari._layers import layer_geometry
    from medseg_napari._qt.measure_widget import MeasureWidget

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    for name in ("cine labels", "other labels", "third labels"):
        viewer.add_labels(np.array(truth), name=name, **layer_geometry(vol))
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="medseg: measurement")
    w.labels_combo.setCurrentText("cine labels")
    w.measure()
    viewer.layers.remove("cine labels")
    assert w.status.text() == "The label layer 'cine labels' was closed while it was measured: that measurement was dropped."
    qtbot.waitUntil(lambda: w.measure_btn.isEnabled(), timeout=T_OUT)
    assert w.report is None

    w.measure()  # another choice made while measuring: as before
    w.labels_combo.setCurrentText("third labels" if w.labels_combo.currentText() != "third labels" else "other labels")
    assert w.status.text() == "The labels chosen changed while measuring: that measurement was dropped; Measure again."
    qtbot.waitUntil(lambda: w.measure_btn.isEnabled(), timeout=T_OUT)

"""The plugin under the mistakes and odd orders a user makes (run under ``xvfb-run -a``): what a
panel shows always belongs to what was asked, a failed load loses nothing, a renamed layer keeps
its session, a click off the image is refused, labels medseg wrote reopen as labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari_helpers import gui_ready

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)
import napari  # noqa: E402
from medseg_napari._controller import box_rectangle  # noqa: E402

from medseg.types import Box  # noqa: E402

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms


def _measure(qtbot, m):
    m.measure()
    qtbot.waitUntil(lambda: m.measure_btn.isEnabled(), timeout=T_OUT)


def _session(viewer, qtbot, models, vol):
    """The cine as an image layer, a session started on it, slice 3 of frame 0 embedded."""
    from medseg_napari._qt.segment_widget import SegmentWidget

    image = viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = SegmentWidget(viewer, models=models)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    w.ui.image.setCurrentText("cine")
    w.start_session()
    qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=T_OUT)
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, 3), timeout=T_OUT)
    return image, w


def test_measure_panel_echo_clip_stale_report_and_empty_es(make_napari_viewer, qtbot, small_cine):
    from medseg_napari._qt.measure_widget import MeasureWidget

    viewer = make_napari_viewer()
    _, echo_truth = viewer.open_sample("medseg", "echo")
    m = MeasureWidget(viewer)
    viewer.window.add_dock_widget(m, name="medseg: measurement")
    m.labels_combo.setCurrentText(echo_truth.name)
    _measure(qtbot, m)  # an apical view over the cycle (it raised KeyError in the panel)
    assert m.report is not None and m.status.text() == "Measured: apical view over the cycle (method of disks, single plane)."
    assert m.table.rowCount() > 0 and m.export_btn.isEnabled()

    vol, truth, _ = small_cine
    scale = tuple(vol.spacing)
    cine = viewer.add_labels(truth.copy(), name="cine truth", scale=(1.0, *scale))
    empty = viewer.add_labels(np.zeros_like(truth[:1]), name="ES empty", scale=(1.0, *scale))
    # a measurement that fails leaves nothing of the one before on show, or to export
    m.labels_combo.setCurrentText(echo_truth.name)
    _measure(qtbot, m)
    assert m.report is not None
    m.labels_combo.setCurrentText(empty.name)
    _measure(qtbot, m)
    assert m.report is None and m.table.rowCount() == 0 and not m.export_btn.isEnabled()
    assert "the label layer is empty" in m.status.text()
    # an empty ES layer is refused (it read as EF 100 %), and so is one on another pixel size
    m.labels_combo.setCurrentText(cine.name)
    m.es_combo.setCurrentText(empty.name)
    _measure(qtbot, m)
    assert m.report is None and "the ES label layer 'ES empty' is empty" in m.status.text()
    other = viewer.add_labels(truth[1:2].copy(), name="ES other grid", scale=(1.0, scale[0], 2 * scale[1], 2 * scale[2]))
    m.es_combo.setCurrentText(other.name)
    _measure(qtbot, m)
    assert m.report is None and "has another pixel size" in m.status.text()


def test_session_survives_renames_bad_clicks_and_a_failed_load(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    image, w = _session(viewer, qtbot, model_provider, vol)
    b = w.binding
    b.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 1), 0, 3, 4))
    assert (b.labels.data[0, 3] == 1).any()

    # the image layer renamed: the same session goes on (clicks were ignored after a rename)
    image.name = "patient A ED"
    assert w.ui.image.currentText() == "patient A ED" and w.binding is b
    n = len(w.controller.session.log)
    cy, cx = np.argwhere(truth[0, 3] == 1).mean(axis=0)
    b.points.add([0, 3, cy, cx])
    assert len(w.controller.session.log) == n + 1

    # a click off the image is refused and taken away (it was moved to the edge and segmented there)
    before = b.labels.data.copy()
    b.points.add([0, 3, -40, -40])
    assert "click (-40, -40) lies outside the 96x96 slice" in w.ui.status.text()
    assert len(b.points.data) == 1 and np.array_equal(b.labels.data, before) and len(w.controller.session.log) == n + 1

    # a session file that fails part way: the labels and the undo history stay
    (tmp_path / "other.json").write_text(json.dumps({"label_map": {"lv": 1}, "provenance": {"actions": [
        {"op": "prompt", "prompt": {"structure": "lv", "frame": 0, "slice": 99, "box": [10, 10, 40, 40]}}]}}))
    w.load_session(tmp_path / "other.json")
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert "action 1 of 1" in w.ui.status.text() and "the labels are as they were" in w.ui.status.text()
    assert np.array_equal(b.labels.data, before) and w.controller.session.can_undo
    assert np.shares_memory(b.labels.data, w.controller.session.labels)

    # the labels layer removed: the session closes and says so, its prompt layers go with it
    viewer.layers.remove(b.labels)
    assert w.binding is None and "its labels layer was removed" in w.ui.status.text()
    assert b.points not in viewer.layers and b.shapes not in viewer.layers


def test_labels_medseg_wrote_reopen_as_labels(make_napari_viewer, small_cine, tmp_path):
    from medseg.io import write_labels

    vol, truth, _ = small_cine
    write_labels(truth, vol, tmp_path / "seg.nii.gz", "lv=1,myo=2,rv=3")
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "seg.nii.gz"), plugin="medseg")
    assert isinstance(layer, napari.layers.Labels) and layer.name == "seg labels"
    assert np.array_equal(np.asarray(layer.data), truth) and layer.metadata["medseg_label_map"] == {"lv": 1, "myo": 2, "rv": 3}


def test_brush_fixes_are_in_the_provenance_and_replay(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    """Painting on the label layer by hand: saved with the labels as `edit` actions, so *Load
    session* gives back exactly the saved labels (it replayed the model's masks only)."""
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    _, w = _session(viewer, qtbot, model_provider, vol)
    b = w.binding
    b.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 1), 0, 3, 4))
    cy, cx = (int(v) for v in np.argwhere(b.labels.data[0, 3] == 1).mean(axis=0))
    ops = lambda: [a["op"] for a in b.labels.metadata["medseg_provenance"]["actions"]]  # noqa: E731
    b.labels.paint((0, 3, cy, cx), 0, refresh=True)  # the eraser through the LV
    qtbot.waitUntil(lambda: ops() == ["prompt", "edit"], timeout=T_OUT)  # recorded as the stroke ends
    b.labels.paint((0, 2, 10, 10), 2, refresh=True)  # a dab of myocardium on another slice
    qtbot.waitUntil(lambda: ops() == ["prompt", "edit", "edit"], timeout=T_OUT)
    painted = b.labels.data.copy()
    w.save(str(tmp_path / "seg.nii.gz"))
    w.load_session(tmp_path / "seg.json")
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert np.array_equal(b.labels.data, painted), w.ui.status.text()
    w.undo()  # the last brush dab, one step
    assert not (b.labels.data[0, 2] == 2).any() and np.array_equal(b.labels.data[0, 3], painted[0, 3])


def test_a_replaced_label_buffer_and_an_empty_save_are_refused(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    _, w = _session(viewer, qtbot, model_provider, vol)
    with pytest.raises(ValueError, match="nothing to save yet"):
        w.save(str(tmp_path / "empty.nii.gz"))
    assert not list(tmp_path.iterdir())
    b = w.binding
    b.labels.data = np.zeros_like(b.labels.data)  # replaced, not painted into: the session would not see it
    w.propagate()
    assert "was replaced (not painted into)" in w.ui.status.text() and not w.busy
    with pytest.raises(ValueError, match="was replaced"):
        w.save(str(tmp_path / "seg.nii.gz"))


def test_measure_panel_takes_a_label_map_for_foreign_labels(make_napari_viewer, qtbot, small_cine):
    """Reference labels in ACDC's values (lv=3, rv=1) read with medseg's map made the RV the LV:
    LV EDV 0 mL, said nowhere. Now refused with the hint, and the panel's label map measures them."""
    from medseg_napari._qt.measure_widget import MeasureWidget

    vol, truth, _ = small_cine
    acdc = np.select([truth == 1, truth == 3, truth == 2], [3, 1, 2], 0).astype(np.uint8)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(acdc, name="patient_gt", scale=(1.0, *vol.spacing))
    m = MeasureWidget(viewer)
    viewer.window.add_dock_widget(m, name="medseg: measurement")
    m.labels_combo.setCurrentText(layer.name)
    _measure(qtbot, m)
    assert m.report is None and "is not inside the myocardium" in m.status.text() and "ACDC: lv=3,myo=2,rv=1" in m.status.text()
    m.label_map.setText("lv=3,myo=2,rv=1")
    _measure(qtbot, m)
    assert m.report is not None and m.report["lv"]["edv_ml"] > m.report["lv"]["esv_ml"] > 0
    m.label_map.setText("lv=three")
    _measure(qtbot, m)
    assert m.report is None and m.status.text().startswith("label map:")

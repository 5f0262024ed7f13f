"""Headless widget tests (napari + Qt; run under ``xvfb-run -a``).

One study goes through the whole interactive path: the medseg reader (via napari.open),
a box and clicks on the prompt layers (mask updates with no button), propagation in a
worker, undo from the keyboard shortcut, measurement, the medseg writer and replay.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from napari_helpers import gui_ready

if gui_ready():
    pytest.skip(gui_ready(), allow_module_level=True)

from medseg_napari._controller import box_rectangle  # noqa: E402
from napari_helpers import dice  # noqa: E402

from medseg.io import read_label_volume  # noqa: E402

pytestmark = pytest.mark.gui
T_OUT = 60_000  # ms


@pytest.fixture
def cine_path(small_cine, tmp_path):
    import nibabel as nib

    from medseg.io.geometry import medseg_to_nifti

    vol, _, _ = small_cine
    path = tmp_path / "cine.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(medseg_to_nifti(vol.array, 4)), vol.affine), str(path))
    return path


def _start(viewer, qtbot, models, image_name):
    from napari_helpers import start_widget

    return start_widget(viewer, qtbot, models, image_name, T_OUT)


def _filled(labels, t, value=1):
    return [z for z in range(labels.shape[1]) if (labels[t, z] == value).any()]


def test_segment_propagate_undo_measure_save(make_napari_viewer, qtbot, model_provider, small_cine, cine_path, tmp_path):
    from medseg_napari._qt.measure_widget import MeasureWidget
    from napari.utils.key_bindings import coerce_keybinding

    _, truth, _ = small_cine
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(cine_path), plugin="medseg")
    assert image.data.shape == truth.shape and image.scale[1] == pytest.approx(10.0)
    w = _start(viewer, qtbot, model_provider, image.name)
    b = w.binding
    assert b.labels.data.base is w.controller.labels or np.shares_memory(b.labels.data, w.controller.labels)

    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, 3), timeout=T_OUT)

    # a box: the mask appears with no button press, and one box is kept per structure + slice
    from medseg.types import Box

    box = Box.from_mask(truth[0, 3] == 1)
    b.shapes.add_rectangles(box_rectangle(box, 0, 3, 4))
    assert dice(b.labels.data[0, 3] == 1, truth[0, 3] == 1) > 0.8
    b.shapes.add_rectangles(box_rectangle(box, 0, 3, 4))
    qtbot.waitUntil(lambda: len(b.shapes.data) == 1, timeout=T_OUT)

    # a positive click, then a Shift+click (negative) outside the LV
    cy, cx = np.argwhere(truth[0, 3] == 1).mean(axis=0)
    b.points.add([0, 3, cy, cx])
    w._on_point_press(b.points, SimpleNamespace(modifiers=("Shift",)))
    b.points.add([0, 3, box.y0 - 3, box.x0 - 3])
    assert list(b.points.features["positive"]) == [True, False]
    prompt = w.controller.session.log[-1]["prompt"]
    assert len(prompt["points"]) == 1 and len(prompt["negative_points"]) == 1 and "box" in prompt
    assert dice(b.labels.data[0, 3] == 1, truth[0, 3] == 1) > 0.8
    # deleting the negative point re-runs the prompt without it
    b.points.remove([1])
    prompt = w.controller.session.log[-1]["prompt"]
    assert "negative_points" not in prompt and len(prompt["points"]) == 1
    key_slice_only = b.labels.data.copy()

    # propagate through slices and frames in a worker, then undo with Ctrl+Z
    w.ui.through.setCurrentText("slices + frames")
    w.ui.propagate.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert len(_filled(b.labels.data, 0)) >= 3 and len(_filled(b.labels.data, 2)) >= 3
    propagated = b.labels.data.copy()
    viewer.keymap[coerce_keybinding("Control-z")](viewer)
    assert np.array_equal(b.labels.data, key_slice_only)
    assert len(b.points.data) == 1 and len(b.shapes.data) == 1  # prompts of the kept state
    w.ui.redo.click()
    assert np.array_equal(b.labels.data, propagated)

    # measure: a cine with several labelled frames -> EDV, ESV, EF
    m = MeasureWidget(viewer)
    viewer.window.add_dock_widget(m, name="medseg: measurement")
    m.labels_combo.setCurrentText(b.labels.name)
    m.height_cm.setValue(180)
    m.weight_kg.setValue(80)
    m.measure()
    qtbot.waitUntil(lambda: m.report is not None, timeout=T_OUT)
    rows = {m.table.item(r, 0).text(): m.table.item(r, 1).text() for r in range(m.table.rowCount())}
    assert m.report["mode"] == "cine" and float(rows["LV EDV"]) > float(rows["LV ESV"]) > 0
    assert 0 < float(rows["LV EF"]) < 100 and rows["BSA"] == "2.00"
    m.export(str(tmp_path / "report.csv"))
    assert "lv.ef_pct" in (tmp_path / "report.csv").read_text()

    # save through the medseg writer; the file reads back on the image's grid
    out = tmp_path / "seg.nii.gz"
    written = b.labels.save(str(out), plugin="medseg")
    assert str(out) in written
    back = read_label_volume(out)
    assert back.same_grid(image.metadata["medseg_volume"]) and np.array_equal(back.array, propagated)
    side = json.loads((tmp_path / "seg.json").read_text())
    ops = [a["op"] for a in side["provenance"]["actions"]]
    assert ops[:4] == ["prompt"] * 4 and "propagate" in ops and ops[-1] == "redo"

    # load the saved session: replayed in a worker onto an emptied buffer
    w.load_session(tmp_path / "seg.json")
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert np.array_equal(b.labels.data, propagated), w.ui.status.text()


def test_sample_data_and_manifest_widgets(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("medseg", "cine")
    assert [ly.name for ly in layers] == ["cine phantom", "cine phantom truth"]
    assert tuple(layers[0].scale) == pytest.approx((1.0, 10.0, 1.5, 1.5))
    _, seg = viewer.window.add_plugin_dock_widget("medseg", "Segmentation")
    _, meas = viewer.window.add_plugin_dock_widget("medseg", "Measurement")
    assert seg.ui.image.currentText() == "cine phantom"
    assert meas.labels_combo.currentText() == "cine phantom truth"
    meas.measure()  # the ground truth of the phantom: a cine with every frame labelled
    qtbot.waitUntil(lambda: meas.report is not None, timeout=T_OUT)
    assert meas.report["mode"] == "cine" and np.isfinite(meas.report["lv"]["ef_pct"])


def test_status_line_names_slices_a_rule_removed(make_napari_viewer, qtbot, model_provider, cine_path, monkeypatch, end_check_weights):
    """After the automatic pass the status line says which RV slices the end check removed
    (the check's model is stubbed to call every end slice not-RV)."""
    from medseg import end_check

    weights = end_check_weights(max_trim=2)
    monkeypatch.setattr(end_check, "weights", lambda: weights)
    monkeypatch.setattr(end_check, "probability", lambda *a: 0.9)
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(cine_path), plugin="medseg")
    w = _start(viewer, qtbot, model_provider, image.name)
    w.ui.auto_frames.setCurrentText("this frame")
    w.ui.auto.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    removed = w.controller.session.log[-1].get("removed", [])
    assert removed and "RV end check removed RV on slice" in w.ui.status.text(), w.ui.status.text()


def test_a_blank_image_is_refused_with_a_status_line(make_napari_viewer, qtbot, model_provider):
    """Starting a session on an image without signal says so in the status line and adds no
    layers (the widget stays usable)."""
    from medseg_napari._qt.segment_widget import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 48, 48), np.float32), name="blank")
    w = SegmentWidget(viewer, models=model_provider)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    w.ui.image.setCurrentText("blank")
    w.start_session()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    qtbot.waitUntil(lambda: "no signal" in w.ui.status.text(), timeout=T_OUT)
    assert w.controller is None and [ly.name for ly in viewer.layers] == ["blank"]


def test_an_adapter_folder_from_medseg_adapt_can_be_used(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    """The adapter box takes the folder `medseg adapt -o` wrote, wherever it is (not only the
    shipped adapters and $MEDSEG_HOME's): the session runs with it."""
    import shutil
    from pathlib import Path

    from medseg_napari._qt.segment_widget import SegmentWidget

    vol, _, _ = small_cine
    mine = tmp_path / "my-scanner-adapter"
    shutil.copytree(Path(__file__).resolve().parents[2] / "adapters" / "cmr-lge", mine)
    viewer = make_napari_viewer()
    viewer.add_image(vol.array[:1], name="cine")
    w = SegmentWidget(viewer, models=model_provider)
    viewer.window.add_dock_widget(w, name="medseg: segmentation")
    assert w.ui.adapter.isEditable()
    w.ui.image.setCurrentText("cine")
    w.set_adapter(str(mine))
    w.start_session()
    qtbot.waitUntil(lambda: w.controller is not None and not w.busy, timeout=T_OUT)
    assert w.controller.session.model.adapter_id == "my-scanner-adapter"

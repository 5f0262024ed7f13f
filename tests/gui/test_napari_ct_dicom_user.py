"""What a cardiac CT user (a 300-slice 512 x 512 contrast CT) found in the napari plugin: a
propagation or automatic pass could not be stopped, *Save labels…* froze the viewer (11 s on the
CT: the labels scored and written on the main thread), and the measurement panel showed the 17
AHA segment names over the in-plane numbers of an axial stack. The widget tests run headless
(``xvfb-run -a``)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from napari_helpers import gui_ready

T_OUT = 60_000  # ms


@pytest.fixture(scope="module")
def small_ct():
    """A small contrast CT phantom (1, 40, 96, 96), axial, in Hounsfield units."""
    from medseg.phantoms import ct_phantom

    p = ct_phantom(shape=(40, 96, 96), spacing=(3.0, 2.5, 2.5), seed=0)
    return p.image, p.labels


def _lv_slice(truth: np.ndarray) -> int:
    areas = (truth[0] == 1).sum(axis=(1, 2))
    return int(np.argmax(areas))


# -- Qt-free ------------------------------------------------------------------------------------
def test_a_cancelled_propagation_leaves_the_labels_and_history_as_they_were(loaded_model, small_cine):
    from medseg_napari._controller import OperationCancelled, SegmentController, run_with_progress

    from medseg.types import Box

    vol, truth, _ = small_cine
    c = SegmentController(vol, np.zeros(vol.shape, np.uint8), loaded_model)
    c.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    before, steps = c.labels.copy(), len(c.session._undo)
    cancel = threading.Event()
    seen = []
    jobs = run_with_progress(c.propagate, 0, 3, "slices", cancel=cancel)
    with pytest.raises(OperationCancelled):
        for done_total in jobs:
            seen.append(done_total)
            cancel.set()  # after the first slice: the next report stops it
    assert seen and len(seen) < vol.n_slices
    assert np.array_equal(c.labels, before) and len(c.session._undo) == steps
    change = c.propagate(0, 3, "slices")  # and it still propagates afterwards
    assert len(change.regions) > 1


def test_dicom_seg_of_a_nifti_is_refused_before_the_labels_are_scored(loaded_model, small_cine, tmp_path, monkeypatch):
    """*Save labels…* as .dcm on a NIfTI CT scored the whole segmentation (18 s) before the
    writer said DICOM SEG needs a DICOM image."""
    from medseg_napari._controller import SegmentController

    from medseg.errors import ImageWriteError
    from medseg.types import Box

    vol, truth, _ = small_cine
    c = SegmentController(vol, np.zeros(vol.shape, np.uint8), loaded_model)
    c.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    scored = []
    monkeypatch.setattr(c.session, "review", lambda *a, **k: scored.append(1) or {})
    with pytest.raises(ImageWriteError, match="DICOM SEG needs an image read from DICOM"):
        c.save(tmp_path / "labels.dcm")
    assert not scored and not list(tmp_path.iterdir())


def test_axial_ct_labels_are_said_to_be_in_plane_numbers(small_ct, small_cine):
    from medseg_napari._measure import axial_note

    ct, _ = small_ct
    note = axial_note(ct, basal_rule=True)
    assert "in-plane numbers, not AHA segments" in note and "untick" in note
    assert "untick" not in axial_note(ct, basal_rule=False) and axial_note(ct, basal_rule=False)
    cine, _, _ = small_cine  # a short-axis MR whose affine is axial, as ACDC's NIfTIs: no note
    assert axial_note(cine, basal_rule=True) == ""
    assert axial_note(ct.with_array(ct.array[:, :1]), basal_rule=True) == ""  # one slice


# -- widgets ------------------------------------------------------------------------------------
def _gui():
    if gui_ready():
        pytest.skip(gui_ready())


@pytest.mark.gui
def test_cancel_stops_a_propagation_in_the_widget(make_napari_viewer, qtbot, model_provider, small_cine):
    _gui()
    from medseg_napari._controller import box_rectangle
    from napari_helpers import start_widget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    assert not w.ui.cancel.isEnabled()
    viewer.dims.current_step = (0, 3, *viewer.dims.current_step[2:])
    qtbot.waitUntil(lambda: not w.busy and not w.controller.needs_embedding(0, 3), timeout=T_OUT)
    w.binding.shapes.add_rectangles(box_rectangle(Box.from_mask(truth[0, 3] == 1), 0, 3, 4))
    before, steps = w.binding.labels.data.copy(), len(w.controller.session._undo)
    w.ui.through.setCurrentText("slices + frames")
    w.propagate()
    assert w.busy and w.ui.cancel.isEnabled()
    w.ui.cancel.click()
    assert not w.ui.cancel.isEnabled() and w.ui.status.text().startswith("Cancelling")
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert w.ui.status.text() == "Propagation of LV cancelled: the labels and the undo history are as they were."
    assert np.array_equal(w.binding.labels.data, before) and len(w.controller.session._undo) == steps
    assert not w.ui.cancel.isEnabled()
    w.ui.through.setCurrentText("slices")
    w.propagate()  # once more, to its end: nothing left over from the cancel
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert w.ui.status.text().startswith("Propagated LV through slices")


@pytest.mark.gui
def test_save_labels_runs_in_a_worker(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path, monkeypatch):
    _gui()
    from medseg_napari._qt import _segment_files
    from napari_helpers import start_widget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer = make_napari_viewer()
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    w.controller.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    out = tmp_path / "cine_labels.nii.gz"
    monkeypatch.setattr(_segment_files.QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    w.ui.save.click()
    assert w.busy  # back in the event loop while the labels are scored and written
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert w.ui.status.text() == "Saved cine_labels.nii.gz, cine_labels.json"
    assert out.exists() and out.with_name("cine_labels.json").exists()
    bad = tmp_path / "cine_labels_seg.dcm"  # DICOM SEG of an image that is no DICOM: one line, nothing written
    monkeypatch.setattr(_segment_files.QFileDialog, "getSaveFileName", lambda *a, **k: (str(bad), ""))
    w.ui.save.click()
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert "\n" not in w.ui.status.text() and "DICOM" in w.ui.status.text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cine_labels.json", "cine_labels.nii.gz"]


@pytest.mark.gui
def test_the_panel_says_axial_ct_thickness_is_in_plane(make_napari_viewer, qtbot, small_ct):
    _gui()
    from medseg_napari._layers import META_VOLUME, image_layer_kwargs, layer_geometry
    from medseg_napari._qt.measure_widget import MeasureWidget

    ct, truth = small_ct
    viewer = make_napari_viewer()
    viewer.add_image(ct.array, **image_layer_kwargs(ct, "ct"))
    viewer.add_labels(truth.astype(np.uint8), name="ct labels", **layer_geometry(ct),
                      metadata={META_VOLUME: ct.with_array(truth.astype(np.uint8))})
    meas = MeasureWidget(viewer)
    viewer.window.add_dock_widget(meas)
    meas.labels_combo.setCurrentText("ct labels")
    meas.measure()
    qtbot.waitUntil(lambda: not meas._measuring, timeout=T_OUT)
    text = meas.status.text()
    assert text.startswith("Measured: one phase.") and "in-plane numbers, not AHA segments" in text and "untick" in text
    assert meas.tabs.tabText(1) == "Wall thickness (in-plane)"
    meas.basal_rule.setChecked(False)  # empties the table; measured again without the rule
    assert meas.tabs.tabText(1) == "Wall thickness"
    meas.measure()
    qtbot.waitUntil(lambda: not meas._measuring, timeout=T_OUT)
    assert "in-plane numbers" in meas.status.text() and "untick" not in meas.status.text()

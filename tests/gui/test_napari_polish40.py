"""What a walkthrough with a 300 x 512 x 512 cardiac CT and a Sunnybrook DICOM cine found (the
widget tests run under ``xvfb-run -a``): the contrast slider pinned to the CT's -250..750 HU
window, sliders named "-4 ... -1" until a session started, status lines listing 40+ slice
numbers, and a session replay and a review check that could not be cancelled."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari_helpers import gui_ready

T_OUT = 60_000  # ms
needs_gui = pytest.mark.skipif(gui_ready() is not None, reason=str(gui_ready()))


@pytest.fixture(scope="module")
def ct_path(tmp_path_factory):
    """A small contrast CT phantom (1, 30, 96, 96) in Hounsfield units, as NIfTI."""
    import nibabel as nib

    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import ct_phantom

    vol = ct_phantom(shape=(30, 96, 96), spacing=(3.0, 2.5, 2.5), seed=0).image
    path = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    img = nib.Nifti1Image(np.ascontiguousarray(medseg_to_nifti(vol.array, 3)).astype(np.int16), vol.affine)
    img.header["descrip"] = b"CT"
    nib.save(img, str(path))
    return path


# -- compact slice and frame lists (no napari) --------------------------------------------------
@pytest.mark.parametrize("numbers, most, text", [
    (list(range(12, 54)) + [60], None, "12-53, 60"),
    ([0, 1, 4, 5], None, "0, 1, 4, 5"),  # pairs stay pairs
    ([9, 0], None, "0, 9"),
    ([3, 1, 2, 2], None, "1-3"),
    ([], None, ""),
    (range(0, 40, 2), 3, "0, 2, 4, ..."),
])
def test_compact_ranges(numbers, most, text):
    from medseg._ranges import compact_ranges

    assert compact_ranges(numbers, most) == text


def test_removed_slices_read_as_ranges():
    """A 300-slice CT's Auto status line listed every slice the RV-beside-the-heart rule removed."""
    from medseg_napari._qt._segment_operations import _removed

    from medseg.session import Change

    ch = Change("auto")
    ch.removed = [{"structure": "rv", "frame": 0, "slice": z, "rule": "rv_beyond_heart"} for z in [*range(12, 54), 60]]
    assert _removed(ch) == " RV-beside-the-heart rule removed RV on slices 12-53, 60 (frame 0)."


def test_missing_frames_read_as_ranges():
    """The review list's missing_frame message listed 12 frame numbers and "..."."""
    from medseg.labels import LabelMap
    from medseg.review import frame_flags

    labels = np.zeros((40, 2, 8, 8), np.uint8)
    labels[:, :, 2:5, 2:5] = 1
    labels[5:15] = 0
    labels[33] = 0
    (flag,) = frame_flags(labels, LabelMap({"lv": 1}))
    assert "missing on 11 of 40 frames (5-14, 33)" in flag["message"]


# -- contrast slider and slider names ----------------------------------------------------------
def test_layer_kwargs_name_axes_and_keep_the_data_range(ct_path):
    from medseg_napari._layers import META_RANGE, axis_label_kwargs, image_layer_kwargs

    from medseg.io import read_volume

    vol = read_volume(ct_path)
    kw = image_layer_kwargs(vol, "ct")
    assert kw["contrast_limits"] == (-250.0, 750.0)
    assert kw["metadata"][META_RANGE] == (float(vol.array.min()), float(vol.array.max()))
    if axis_label_kwargs(4):  # napari >= 0.6
        assert kw["axis_labels"] == ("frame", "slice", "y", "x")
        assert axis_label_kwargs(3) == {"axis_labels": ("slice", "y", "x")}  # a (Z, Y, X) layer: 3 names
        assert axis_label_kwargs(2) == {"axis_labels": ("y", "x")}


@pytest.mark.gui
@needs_gui
def test_a_ct_opens_at_the_cardiac_window_with_a_slider_over_all_its_values(make_napari_viewer, ct_path):
    """The slider's range was pinned to -250..750 HU: no lung or bone window without "full range"."""
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(ct_path), plugin="medseg")
    lo, hi = float(layer.data.min()), float(layer.data.max())
    assert lo < -250 and hi > 750  # air and bone beyond the window
    assert tuple(layer.contrast_limits) == (-250.0, 750.0)
    assert tuple(layer.contrast_limits_range) == (lo, hi)
    layer.contrast_limits = (-1000.0, 200.0)  # a lung window stays as set
    assert tuple(layer.contrast_limits) == (-1000.0, 200.0)


@pytest.mark.gui
@needs_gui
def test_sliders_are_named_before_any_session(make_napari_viewer, ct_path):
    """The dims sliders read "-4 ... -1" until a session started; a 3-D study (ACDC's ED frame,
    this CT) keeps a length-1 frame axis, so its one slider reads "slice"."""
    from importlib.metadata import version

    from medseg_napari._sample_data import make_cine_sample
    from medseg_napari._scripting import add_layer_data

    if tuple(int(x) for x in version("napari").split(".")[:2]) < (0, 6):
        pytest.skip("napari < 0.6 has no layer axis labels (the widget names the sliders)")
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(ct_path), plugin="medseg")
    assert viewer.dims.axis_labels == ("frame", "slice", "y", "x")
    assert layer.data.shape[0] == 1 and viewer.dims.nsteps[0] == 1 and viewer.dims.nsteps[1] == 30
    viewer.layers.clear()
    image, truth = add_layer_data(viewer, make_cine_sample())  # a cine: frame and slice
    assert viewer.dims.axis_labels == ("frame", "slice", "y", "x") and truth.axis_labels == image.axis_labels
    assert tuple(image.contrast_limits_range) == (float(image.data.min()), float(image.data.max()))


# -- cancelling a replay and a review check ----------------------------------------------------
def _session_with_history(viewer, qtbot, model_provider, small_cine, tmp_path):
    """A segmentation widget on the small cine with LV prompted and propagated through slices
    and frames, its session saved as provenance JSON (a replay of 3 actions, the last long)."""
    from napari_helpers import start_widget

    from medseg.types import Box

    vol, truth, _ = small_cine
    viewer.add_image(vol.array, name="cine", scale=(1.0, *vol.spacing))
    w = start_widget(viewer, qtbot, model_provider, "cine", T_OUT)
    c = w.controller
    for z in (2, 4):
        c.prompt("lv", 0, z, box=Box.from_mask(truth[0, z] == 1))
    c.propagate(0, 4, "slices + frames")
    w.binding.labels.refresh()
    path = tmp_path / "session.json"
    path.write_text(json.dumps(c.provenance()))
    c.prompt("myo", 0, 3, box=Box.from_mask(truth[0, 3] == 2))  # the state a cancelled replay must keep
    w._after_change()
    return w, path


@pytest.mark.gui
@needs_gui
def test_cancel_stops_a_session_replay_and_keeps_the_session(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    """*Load session…* (replay) could not be cancelled."""
    viewer = make_napari_viewer()
    w, path = _session_with_history(viewer, qtbot, model_provider, small_cine, tmp_path)
    session, labels, steps = w.controller.session, w.binding.labels.data.copy(), len(w.controller.session._undo)
    w.load_session(path)
    assert w.busy and w.ui.cancel.isEnabled()
    w.ui.cancel.click()
    assert w.ui.status.text() == "Cancelling: replaying the session stops at the next action…"
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert w.ui.status.text() == "Replaying the session cancelled: the labels and the undo history are as they were."
    assert w.controller.session is session and len(session._undo) == steps
    assert np.array_equal(w.binding.labels.data, labels) and not w.ui.cancel.isEnabled()
    w.load_session(path)  # and it still replays to its end afterwards
    qtbot.waitUntil(lambda: not w.busy, timeout=T_OUT)
    assert w.ui.status.text().startswith("Session replayed") and not (w.binding.labels.data == 2).any()


@pytest.mark.gui
@needs_gui
def test_cancel_stops_a_review_check(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path):
    """The review's Check (95.8 s on the CT) could not be cancelled."""
    from medseg_napari._qt.review_widget import ReviewWidget

    viewer = make_napari_viewer()
    seg, _ = _session_with_history(viewer, qtbot, model_provider, small_cine, tmp_path)
    w = ReviewWidget(viewer, seg)
    viewer.window.add_dock_widget(w, name="medseg: review")
    assert not w.cancel_btn.isEnabled()
    w.check_btn.click()
    assert seg.busy and w.cancel_btn.isEnabled() and seg.ui.cancel.isEnabled()
    w.cancel_btn.click()
    qtbot.waitUntil(lambda: not seg.busy and w.check_btn.isEnabled(), timeout=T_OUT)
    assert w.status.text() == "Check cancelled: the list is as it was." == seg.ui.status.text()
    assert w.review is None and w.table.rowCount() == 0 and not w.cancel_btn.isEnabled()
    w.check_btn.click()  # a check afterwards runs to its end
    qtbot.waitUntil(lambda: w.review is not None and not seg.busy, timeout=T_OUT)
    assert "lv" in w.summary.text()


@pytest.mark.gui
@needs_gui
def test_a_failed_check_is_said_in_the_review_dock(make_napari_viewer, qtbot, model_provider, small_cine, tmp_path, monkeypatch):
    """A check that failed went (as the worker raises a returned exception) to the segmentation
    dock's status line; the review dock kept "Checking…" and its Check button greyed out."""
    from medseg_napari._qt.review_widget import ReviewWidget
    from medseg_napari._review import ReviewList

    from medseg.errors import MedsegError

    def fail(self, progress=None):
        raise MedsegError("scoring failed")

    viewer = make_napari_viewer()
    seg, _ = _session_with_history(viewer, qtbot, model_provider, small_cine, tmp_path)
    w = ReviewWidget(viewer, seg)
    viewer.window.add_dock_widget(w, name="medseg: review")
    monkeypatch.setattr(ReviewList, "check", fail)
    w.check_btn.click()
    qtbot.waitUntil(lambda: not seg.busy, timeout=T_OUT)
    assert w.status.text() == "scoring failed" and w.check_btn.isEnabled() and not w.cancel_btn.isEnabled()


def test_a_replay_stops_inside_a_long_action(loaded_model, small_cine):
    """A replay was cancellable only between actions: a zero-click pass or propagation inside it
    (24 s of a 25 s CT replay) ran to its end first."""
    from medseg_napari._controller import SegmentController

    from medseg.types import Box

    vol, truth, _ = small_cine
    c = SegmentController(vol, np.zeros(vol.shape, np.uint8), loaded_model)
    c.prompt("lv", 0, 3, box=Box.from_mask(truth[0, 3] == 1))
    c.propagate(0, 3, "slices")
    actions = c.provenance()["actions"]
    assert [a["op"] for a in actions] == ["prompt", "propagate"]
    c2 = SegmentController(vol, np.zeros(vol.shape, np.uint8), loaded_model)
    calls = []

    class Stop(Exception):
        pass

    def progress(done, total):
        calls.append(done)
        if calls.count(1) > 1:  # between the propagation's slices
            raise Stop

    with pytest.raises(Stop):
        c2.session.replay(actions, progress=progress)
    assert calls == [1, 1] and not c2.labels.any() and not c2.session.log and not c2.session.can_undo


def test_a_report_that_does_not_advance_is_not_a_progress_step():
    """napari's bar counts the yields: a repeated report (a replay checking for a cancel between
    a long action's slices) must not move it."""
    from medseg_napari._controller import run_with_progress

    def fn(progress):
        for done in (1, 1, 1, 2, 3, 3):
            progress(done, 3)
        return "ok"

    gen, seen = run_with_progress(fn), []
    try:
        while True:
            seen.append(next(gen))
    except StopIteration as e:
        assert e.value == "ok"
    assert seen == [(1, 3), (2, 3), (3, 3)]



def test_default_threads_count_the_cpus_the_job_may_use(monkeypatch):
    """napari's torch threads were half of os.cpu_count(): a session on a 64-core node given 2
    CPUs (taskset, a cpuset) or OMP_NUM_THREADS=2 ran 4 threads on them."""
    import os

    from medseg_napari._controller import default_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert default_threads() == 1

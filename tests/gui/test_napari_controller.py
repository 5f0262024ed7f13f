"""The Qt-free controller behind the segmentation widget (no napari, no Qt)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from medseg_napari._controller import SegmentController, box_rectangle, default_structures, new_structure, point_index, rectangle_box, run_with_progress
from napari_helpers import dice

from medseg.errors import LabelMapError, PromptError
from medseg.types import Box, Point


@pytest.mark.parametrize("coord, expected", [
    ((1.2, 3.6, 10.4, 20.5), (1, 4, 10.4, 20.5)),
    ((3.0, 10.0, 20.0), (0, 3, 10.0, 20.0)),
    ((10.0, 20.0), (0, 0, 10.0, 20.0)),
])
def test_point_index(coord, expected):
    assert point_index(coord) == expected


@pytest.mark.parametrize("ndim", [2, 3, 4])
def test_box_rectangle_round_trip(ndim):
    box = Box(10, 12, 30, 41)
    t, z = (2, 5) if ndim == 4 else (0, 5 if ndim == 3 else 0)
    rect = box_rectangle(box, t, z, ndim)
    assert rect.shape == (4, ndim)
    assert rectangle_box(rect, (64, 64)) == (t, z, box)
    # a rectangle drawn from pixel centre to pixel centre gives the same box
    centres = np.array([[*rect[0, :-2], 10, 12], [*rect[0, :-2], 30, 41]])
    assert rectangle_box(centres)[2] == box


def test_rectangle_box_clips_and_refuses_outside():
    assert rectangle_box(np.array([[0, 0, -5, -5], [0, 0, 10, 80]]), (64, 64))[2] == Box(0, 0, 10, 63)
    with pytest.raises(PromptError):
        rectangle_box(np.array([[0, 0, 70, 70], [0, 0, 80, 80]]), (64, 64))


@pytest.mark.parametrize("name, value, error", [
    ("", None, "bad structure name"), ("a b", None, "bad structure name"), ("lv", None, "already in the list"),
    ("scar", 2, "already used"), ("scar", 70000, "within 1..65535"),
])
def test_new_structure_refuses(name, value, error):
    with pytest.raises(LabelMapError, match=error):
        new_structure(default_structures(), name, value)


def test_new_structure_next_free_value():
    s = new_structure(default_structures(), "thrombus")
    assert (s.name, s.value, s.custom) == ("thrombus", 6, True)


def test_run_with_progress_relays_progress_and_result():
    def job(n, progress=None):
        for i in range(n):
            progress(i + 1, n)
        return "done"

    gen = run_with_progress(job, 3)
    seen = []
    with pytest.raises(StopIteration) as stop:
        while True:
            seen.append(next(gen))
    assert seen == [(1, 3), (2, 3), (3, 3)] and stop.value.value == "done"

    def bad(progress=None):
        raise PromptError("nope")

    with pytest.raises(PromptError, match="nope"):
        list(run_with_progress(bad))


@pytest.fixture
def controller(small_cine, loaded_model):
    vol, _, _ = small_cine
    buffer = np.zeros(vol.shape, np.uint8)  # the label layer's data, owned by the caller
    return SegmentController(vol, buffer, loaded_model, source="phantom")


def _truth_box(truth, t, z, value=1):
    return Box.from_mask(truth[t, z] == value)


def test_prompt_writes_the_callers_buffer(controller, small_cine):
    _, truth, _ = small_cine
    buf = controller.labels
    controller.embed(0, 3)
    assert not controller.needs_embedding(0, 3)
    change = controller.prompt("lv", 0, 3, box=_truth_box(truth, 0, 3))
    assert (0, 3) in change.regions
    assert buf is controller.labels and dice(buf[0, 3] == 1, truth[0, 3] == 1) > 0.8
    # a click keeps the box; the records show both
    controller.click(0, 3, *np.argwhere(truth[0, 3] == 1).mean(axis=0), positive=True)
    (rec,) = controller.prompt_records()
    assert rec.box == _truth_box(truth, 0, 3) and len(rec.points) == 1 and rec.points[0].positive
    # removing every prompt erases the structure on that slice (one undo step)
    controller.prompt("lv", 0, 3)
    assert not (buf[0, 3] == 1).any()
    controller.undo()
    assert (buf[0, 3] == 1).any()


def test_propagate_undo_redo(controller, small_cine):
    _, truth, _ = small_cine
    buf = controller.labels
    controller.prompt("lv", 0, 3, box=_truth_box(truth, 0, 3))
    before = buf.copy()
    change = controller.propagate(0, 3, "slices")
    filled = [z for z in range(buf.shape[1]) if (buf[0, z] == 1).any()]
    assert len(change.regions) >= 2 and len(filled) >= 3
    assert np.mean([dice(buf[0, z] == 1, truth[0, z] == 1) for z in filled]) > 0.7
    controller.undo()
    assert np.array_equal(buf, before)
    controller.redo()
    assert len([z for z in range(buf.shape[1]) if (buf[0, z] == 1).any()]) == len(filled)
    with pytest.raises(PromptError, match="empty"):
        controller.propagate(0, 3, "slices", structure="rv")


def test_lock_protects_a_structure(controller, small_cine):
    _, truth, _ = small_cine
    controller.prompt("lv", 0, 3, box=_truth_box(truth, 0, 3))
    controller.toggle_lock("lv")
    assert controller.is_locked("lv")
    with pytest.raises(PromptError, match="locked"):
        controller.prompt("lv", 0, 3, points=[Point(40, 40)])
    controller.undo()  # the lock is an undo step too
    assert not controller.is_locked("lv")


def test_custom_structure(controller):
    spec = controller.add_structure("thrombus", 9)
    assert controller.label_map["thrombus"] == 9 and spec.custom
    with pytest.raises(LabelMapError, match="does not fit"):
        controller.add_structure("big", 300)


def test_save_and_replay_session(controller, small_cine, tmp_path):
    from medseg.io import read_label_volume

    vol, truth, _ = small_cine
    controller.prompt("lv", 0, 3, box=_truth_box(truth, 0, 3))
    controller.click(0, 3, *np.argwhere(truth[0, 3] == 1).mean(axis=0), positive=True)
    controller.prompt("rv", 0, 3, box=_truth_box(truth, 0, 3, 3))
    controller.propagate(0, 3, "slices", structure="lv")
    files = controller.save(tmp_path / "seg.nii.gz")
    assert [f.name for f in files] == ["seg.nii.gz", "seg.json"]
    back = read_label_volume(files[0])
    assert back.same_grid(vol) and np.array_equal(back.array, controller.labels)
    side = json.loads(files[1].read_text())
    assert side["label_map"]["lv"] == 1 and side["provenance"]["tool"] == "medseg-napari"
    assert [a["op"] for a in side["provenance"]["actions"]] == ["prompt", "prompt", "prompt", "propagate"]
    expected = controller.labels.copy()
    steps = []
    warnings = controller.load_session(files[1], progress=lambda d, t: steps.append(d))
    assert warnings == [] and list(dict.fromkeys(steps)) == [1, 2, 3, 4]  # repeated between a long action's slices (a cancel check)
    assert np.array_equal(controller.labels, expected)


def test_auto_one_frame(controller, small_cine):
    _, truth, _ = small_cine
    change = controller.auto(frames=[0], structures=["lv"])
    assert change.regions
    lv = controller.labels[0] == 1
    assert dice(lv, truth[0] == 1) > 0.6


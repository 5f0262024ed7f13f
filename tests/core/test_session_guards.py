"""Session guards: overlap policy, redo after a new operation, replay of undo, edit runs, clear
by frame (each test kills a mutant the rest of the suite let through)."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.roi_ops import paste_roi_logits
from medseg.session import Session
from medseg.types import Box, Point, SlicePrompt

STRUCTURES = ["lv", "myo", "rv"]


def _box(lab, v):
    return Box.from_mask(lab == v)


@pytest.fixture()
def session(model, phantom):
    return Session(phantom.image, model, phantom.label_map.subset(STRUCTURES))


def _fresh(model, phantom):
    return Session(phantom.image, model, phantom.label_map.subset(STRUCTURES))


def _full_logits(session, roi, logits):
    return paste_roi_logits(logits, roi, session.volume.shape[2:])


def test_overlap_goes_to_the_structure_with_the_higher_logit(session, phantom):
    """A structure prompted second takes back the pixels it is surer of than the structure that
    holds them (the module's overlap policy): a myocardium drawn by a stray click into the LV
    cavity must not keep the cavity once the LV is prompted (were the existing label to win
    every overlap, the LV would keep a few pixels and the cavity would stay myocardium); and a
    confident myocardium keeps its ring against an oversized LV box."""
    z = 3
    lab = phantom.labels[0, z]
    gt_lv = lab == 1
    cy, cx = np.argwhere(gt_lv).mean(axis=0)
    session.apply_prompt(SlicePrompt("myo", 0, z, points=(Point(float(cy), float(cx), True),)))  # a myocardium click in the cavity
    myo_before = session.labels[0, z] == 2
    assert (myo_before & gt_lv).sum() > 0.8 * gt_lv.sum()  # the stray myocardium holds the cavity
    myo_res = session.results[("myo", 0, z)]
    myo_logit = _full_logits(session, myo_res.roi, myo_res.logits)

    prompt = SlicePrompt("lv", 0, z, box=_box(lab, 1))
    pred = session.predict(prompt)
    lv_logit = _full_logits(session, pred.roi, pred.logits)
    session.apply_prompt(prompt)
    assert np.array_equal(session.results[("lv", 0, z)].logits, pred.logits)  # the same prediction was written
    clash = pred.mask & myo_before
    assert clash.sum() > 0.8 * gt_lv.sum()
    lv_now, myo_now = session.labels[0, z] == 1, session.labels[0, z] == 2
    # pixel by pixel: the higher logit wins, a tie stays with the label already there
    assert np.array_equal(lv_now, pred.mask & ~(myo_before & (myo_logit >= lv_logit)))
    assert np.array_equal(myo_now, myo_before & ~lv_now)
    assert (lv_now & gt_lv).sum() > 0.9 * gt_lv.sum()  # the LV has its cavity back
    assert (myo_now & gt_lv).sum() < 0.1 * gt_lv.sum()

    # the other way round: a good myocardium ring is surer of its pixels than an oversized LV box
    s2 = Session(phantom.image, session.model, phantom.label_map.subset(STRUCTURES))
    s2.apply_prompt(SlicePrompt("myo", 0, z, box=_box(lab, 2)))
    ring = s2.labels[0, z] == 2
    ring_res = s2.results[("myo", 0, z)]
    ring_logit = _full_logits(s2, ring_res.roi, ring_res.logits)
    big = SlicePrompt("lv", 0, z, box=_box(lab, 2))
    pred2 = s2.predict(big)
    big_logit = _full_logits(s2, pred2.roi, pred2.logits)
    s2.apply_prompt(big)
    assert (pred2.mask & ring).sum() > 0.5 * ring.sum()  # the oversized LV claims most of the ring
    assert np.array_equal(s2.labels[0, z] == 1, pred2.mask & ~(ring & (ring_logit >= big_logit)))
    assert (s2.labels[0, z] == 2).sum() > 0.8 * ring.sum()  # the ring keeps most of its pixels


def test_a_new_operation_after_undo_drops_the_redo_history(session, phantom):
    """Undo, then a new prompt: the undone step can no longer be redone (a redo would re-apply
    an old step on top of the new work, overwriting it with stale slices)."""
    lab = phantom.labels[0]
    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(lab[2], 1)))
    session.apply_prompt(SlicePrompt("lv", 0, 3, box=_box(lab[3], 1)))
    session.undo()
    assert session.can_redo
    session.apply_prompt(SlicePrompt("myo", 0, 2, box=_box(lab[2], 2)))
    assert not session.can_redo
    now = session.labels.copy()
    change = session.redo()
    assert change.empty and np.array_equal(session.labels, now)
    assert not (session.labels[0, 3] == 1).any()  # the undone LV on slice 3 stays undone
    # a lock is a new operation too
    session.undo()
    assert session.can_redo
    session.lock("lv")
    assert not session.can_redo
    now = session.labels.copy()
    assert session.redo().empty and np.array_equal(session.labels, now)


def test_replay_applies_an_undo_that_is_not_redone(session, model, phantom):
    """A provenance log whose last step was undone replays to the labels the user saw (a replay
    that skipped ``undo`` would bring the undone myocardium back)."""
    lab = phantom.labels[0, 3]
    session.apply_prompt(SlicePrompt("lv", 0, 3, box=_box(lab, 1)))
    session.apply_prompt(SlicePrompt("myo", 0, 3, box=_box(lab, 2)))
    session.undo()
    assert not (session.labels == 2).any()
    actions = session.provenance()["actions"]
    assert [a["op"] for a in actions] == ["prompt", "prompt", "undo"]
    again = _fresh(model, phantom)
    again.replay(actions)
    assert np.array_equal(again.labels, session.labels)
    assert not (again.labels == 2).any() and again.can_redo


def test_an_edit_of_adjacent_pixels_to_different_labels_replays_exactly(model, phantom):
    """Two neighbouring pixels painted with different labels (myocardium next to RV) are two
    runs in the edit action, and replay writes each its own label (merged runs would have
    the replay paint both pixels with the first label)."""
    from medseg.edits import apply_runs, runs_of

    s = _fresh(model, phantom)
    before = s.labels.copy()
    s.labels[0, 3, 10, 20] = 2
    s.labels[0, 3, 10, 21] = 3
    s.labels[0, 3, 10, 22:25] = 1
    nx = s.labels.shape[-1]
    start = 10 * nx + 20
    assert runs_of(before[0, 3], s.labels[0, 3]) == [[start, 1, 2], [start + 1, 1, 3], [start + 2, 3, 1]]
    s.record_edits(before)
    edited = s.labels.copy()
    plane = before[0, 3].copy()
    apply_runs(plane, s.log[-1]["slices"][0]["runs"])
    assert np.array_equal(plane, edited[0, 3])
    again = _fresh(model, phantom)
    again.replay(s.provenance()["actions"])
    assert np.array_equal(again.labels, edited)


def test_clear_on_one_frame_leaves_the_other_frames(session, phantom, model):
    """``clear(name, frame)`` erases the structure on that frame only, not on
    every frame of the cine; undo and replay agree."""
    for t in (0, 1):
        session.apply_prompt(SlicePrompt("lv", t, 3, box=_box(phantom.labels[t, 3], 1)))
    frame1 = session.labels[1].copy()
    assert (session.labels[0] == 1).any() and (frame1 == 1).any()
    before = session.labels.copy()
    change = session.clear("lv", 0)
    assert list(change.regions) == [(0, 3)]
    assert not (session.labels[0] == 1).any()
    assert np.array_equal(session.labels[1], frame1)
    assert session.log[-1] == {"op": "clear", "structure": "lv", "frame": 0, "slice": None}
    again = _fresh(model, phantom)
    again.replay(session.provenance()["actions"])
    assert np.array_equal(again.labels, session.labels)
    session.undo()
    assert np.array_equal(session.labels, before)

"""Session propagation walks: through slices and frames, round a closed cardiac cycle, from the
user's prompted slices, over a dropped (blank) frame."""

from __future__ import annotations

import numpy as np
import pytest
from session_helpers import box_of as _box

import medseg.propagation as prop
from medseg.session import Session
from medseg.types import SlicePrompt


def test_propagation_through_frames(session, phantom):
    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    session.propagate("lv", 0, 2, through="t")
    filled = (session.labels[:, 2] == 1).any(axis=(1, 2))
    assert filled.all()
    for t in range(phantom.image.n_frames):
        gt = phantom.labels[t, 2] == 1
        m = session.labels[t, 2] == 1
        assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.8


@pytest.mark.parametrize("closes, walks", [(True, [[1, 2], [4, 3]]), (False, [[1, 2, 3, 4], []])])
def test_a_cine_walk_goes_round_the_cycle_when_the_frames_cover_one(model, monkeypatch, closes, walks):
    """A whole cardiac cycle's last frame follows its first, so from frame 0 the walk goes
    1, 2 and 4, 3, the last frame prompted by the key frame itself (it used to be reached after
    every other frame). Frames that stop part way round (an echo half cycle): 1..4."""
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=5, n_slices=3, shape=(96, 96), spacing=(10.0, 1.5, 1.5), seed=4)
    monkeypatch.setattr(prop, "cycle_closes", lambda volume: closes)
    s = Session(ph.image, model, ph.label_map.subset(["lv"]))
    s.apply_prompt(SlicePrompt("lv", 0, 1, box=_box(ph.labels[0, 1], 1)))
    key = s.labels[0, 1] == 1
    seen: list[tuple[int, np.ndarray]] = []
    step = prop.step_from

    def spy(session, structure, t, z, prev):
        seen.append((t, prev.copy()))
        return step(session, structure, t, z, prev)

    monkeypatch.setattr(prop, "step_from", spy)
    monkeypatch.setattr(s, "spare_threads", lambda: 1)  # one walk after the other: a fixed order
    s.propagate("lv", 0, 1, through="t")
    assert [t for t, _ in seen] == walks[0] + walks[1]
    starts = [w[0] for w in walks if w]
    assert all(np.array_equal(prev, key) for t, prev in seen if t in starts)
    assert (s.labels[:, 1] == 1).any(axis=(1, 2)).all()


def test_propagation_keeps_the_users_prompted_slices_and_walks_on_from_them(session, phantom, monkeypatch):
    """A correction re-propagates from there: a slice or frame the user prompted is never
    overwritten by a walk from another prompt (it used to be), and prompts the next one."""
    from medseg.types import Box

    lab = phantom.labels[0]
    session.apply_prompt(SlicePrompt("lv", 0, 1, box=_box(lab[1], 1)))
    b = _box(lab[4], 1)  # the user's own, smaller box on slice 4: a mask propagation would not draw
    session.apply_prompt(SlicePrompt("lv", 0, 4, box=Box(b.y0 + 3, b.x0 + 3, b.y1 - 3, b.x1 - 3)))
    session.apply_prompt(SlicePrompt("lv", 2, 2, box=_box(phantom.labels[2, 2], 1)))  # a correction on frame 2
    user4, user_f2 = session.labels[0, 4].copy(), session.labels[2, 2].copy()
    seen: dict[tuple[int, int], np.ndarray] = {}
    step = prop.step_from

    def spy(s, structure, t, z, prev):
        seen[(t, z)] = prev.copy()
        return step(s, structure, t, z, prev)

    monkeypatch.setattr(prop, "step_from", spy)
    session.propagate("lv", 0, 1, through="z")
    assert (0, 4) not in seen and np.array_equal(session.labels[0, 4], user4)
    assert {(0, 2), (0, 3), (0, 5)} <= set(seen) and np.array_equal(seen[(0, 5)], user4 == 1)
    session.propagate("lv", 0, 2, through="t")
    assert (2, 2) not in seen and np.array_equal(session.labels[2, 2], user_f2)
    assert (session.labels[1, 2] == 1).any()
    assert session.results[("lv", 0, 4)].prompt.get("propagated_from") is None


def test_cycle_closes_on_whole_cycles_only():
    from medseg.phantoms import cine_sax_phantom, echo_apical_phantom

    cine = cine_sax_phantom(n_frames=20, n_slices=4, shape=(128, 128), seed=1).image
    clip = echo_apical_phantom("a4c", n_frames=20, seed=1).image
    assert prop.cycle_closes(cine) and prop.cycle_closes(clip)
    assert not prop.cycle_closes(cine.with_array(cine.array[:10], frame_times_s=None))  # stops half way
    assert not prop.cycle_closes(clip.with_array(clip.array[:10], frame_times_s=None))  # ED to ES only
    assert not prop.cycle_closes(cine.with_array(cine.array[:2], frame_times_s=None))


def test_a_dropped_frame_is_stepped_over_and_left_out_of_the_cycle_test(model):
    """A blank (dropped) frame in a cine stopped the walk through the frames: the frames after
    it, ES among them, came back unlabelled with no review flag. The walk now steps over it, the
    jump to and from it no longer passes for the largest step of a closed cycle, and a
    structure missing on frames that have signal is flagged for review."""
    from medseg.phantoms import cine_sax_phantom
    from medseg.review import review_segmentation

    ph = cine_sax_phantom(n_frames=8, n_slices=3, shape=(96, 96), spacing=(10.0, 1.5, 1.5), seed=4)
    arr = ph.image.array.copy()
    arr[3] = 0.0
    vol = ph.image.with_array(arr)
    assert prop.cycle_closes(ph.image) and prop.cycle_closes(vol)  # whole cycle, with or without the blank frame
    half = vol.with_array(arr[:6], frame_times_s=None)  # ED -> ES part way, a blank frame inside
    assert not prop.cycle_closes(half)
    s = Session(vol, model, ph.label_map.subset(["lv"]))
    s.apply_prompt(SlicePrompt("lv", 0, 1, box=_box(ph.labels[0, 1], 1)))
    s.propagate("lv", 0, 1, through="t")
    on = (s.labels[:, 1] == 1).any(axis=(1, 2))
    assert on.tolist() == [t != 3 for t in range(8)]
    lv = ph.label_map["lv"]
    for t in (4, 5):  # beyond the dropped frame, still the LV
        gt, m = ph.labels[t, 1] == lv, s.labels[t, 1] == 1
        assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.8
    blank = s.blank_map()
    assert blank[3].all() and not blank[[0, 1, 2, 4]].any()
    review = review_segmentation(s.labels, vol.affine, s.label_map, measure=False, blank=blank)
    assert not [f for f in review["flags"] if f["code"] == "missing_frame"]  # nothing to find on a frame without signal
    labels = s.labels.copy()
    labels[5] = 0  # the LV lost on a frame that has signal
    review = review_segmentation(labels, vol.affine, s.label_map, measure=False, blank=blank)
    missing = [f for f in review["flags"] if f["code"] == "missing_frame"]
    assert review["needs_review"] and [f["frames"] for f in missing] == [[5]] and missing[0]["frame"] == 5
    two = np.zeros_like(labels)
    two[[0, 4]] = labels[[0, 4]]  # ED and ES prompted alone: nothing expected on the other frames
    assert not [f for f in review_segmentation(two, vol.affine, s.label_map, measure=False)["flags"] if f["code"] == "missing_frame"]

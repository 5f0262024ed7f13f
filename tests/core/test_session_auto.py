"""Session zero-click (auto): the structures found, a frame it missed filled from its neighbour,
the RV probed beside the myocardium, blank slices and blank images."""

from __future__ import annotations

import numpy as np
import pytest
from session_helpers import box_of as _box

import medseg.propagation as prop
from medseg.errors import EmptyImageError
from medseg.session import Session
from medseg.types import Box, SlicePrompt


def test_auto_finds_the_structures(session, phantom):
    session.auto(["lv", "myo", "rv"], frames=[0])
    for v in (1, 2, 3):
        gt, m = phantom.labels[0] == v, session.labels[0] == v
        assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.7, v
    session.undo()
    assert not session.labels.any()


@pytest.mark.slow  # ~10 s on the shared 2-core CPU
def test_auto_carries_a_structure_missed_on_one_frame_over_from_its_neighbour(session, phantom, monkeypatch):
    """On a cine, a structure the zero-click pass found on some frames and missed on another is
    filled there from the nearest frame that has it (here the RV token "misses" frame 1)."""
    real = prop.auto_segment

    def missing_rv_on_frame_1(*a, **k):
        return ((n, t, z, p) for n, t, z, p in real(*a, **k) if not (n == "rv" and t == 1))

    monkeypatch.setattr(prop, "auto_segment", missing_rv_on_frame_1)
    session.auto(["lv", "myo", "rv"])
    filled = session.log[-1]["filled"]
    assert {(f["structure"], f["frame"], f["from_frame"]) for f in filled} == {("rv", 1, 0)}
    gt, m = phantom.labels[1] == 3, session.labels[1] == 3
    assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.7
    session.undo()
    assert not session.labels.any()
    monkeypatch.setattr(prop, "auto_segment", real)
    session.auto(["lv", "myo", "rv"])
    assert "filled" not in session.log[-1]  # nothing missed, nothing filled


@pytest.mark.parametrize("closes, sources", [(True, {3: 2, 4: 0}), (False, {3: 2, 4: 3})])
def test_auto_fills_a_missed_frame_from_the_nearest_round_the_cycle(model, monkeypatch, closes, sources):
    """Frame 4 of a 5-frame cycle lies next to frame 0: missed there, it is carried over from
    frame 0 when frame 3 is missing too; in frames that do not close the cycle, from frame 3."""
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=5, n_slices=3, shape=(96, 96), spacing=(10.0, 1.5, 1.5), seed=4)
    monkeypatch.setattr(prop, "cycle_closes", lambda volume: closes)
    s = Session(ph.image, model, ph.label_map.subset(["lv", "myo", "rv"]))
    real = prop.auto_segment

    def missing_rv_on_3_and_4(*a, **k):
        return ((n, t, z, p) for n, t, z, p in real(*a, **k) if not (n == "rv" and t in (3, 4)))

    monkeypatch.setattr(prop, "auto_segment", missing_rv_on_3_and_4)
    s.auto(["lv", "myo", "rv"])
    assert {f["frame"]: f["from_frame"] for f in s.log[-1]["filled"] if f["structure"] == "rv"} == sources


@pytest.mark.parametrize(("missed_on", "probed"), [((0,), ["rv"]), ((0, 1), ["rv", "rv"]), ((1,), [])])
@pytest.mark.slow  # ~22 s over its 3 cases on the shared 2-core CPU
def test_auto_looks_beside_the_myocardium_for_an_rv_its_token_missed(session, phantom, monkeypatch, missed_on, probed):
    """The RV token alone can miss a small end-systolic RV on every slice of a frame (ACDC
    patient037 ES, M&Ms-2 subject 001): zero-click then clicks around the myocardium it found
    (propagation.probe_beside) and walks the RV from the best probe. The token is made to miss
    on ``missed_on``; a frame missed while another has the RV is filled from that frame
    instead (no probe); with the token working, nothing is probed."""
    from medseg.types import Prediction

    frames = sorted({0, *missed_on})
    real, real_set, real_probe = session.predictor.predict_auto, session._set_slice, prop.probe_beside
    now, probes = {}, []
    monkeypatch.setattr(session, "_set_slice", lambda t, z: (now.update(t=t), real_set(t, z))[1])

    def token_misses_rv(structure):
        p = real(structure)
        return Prediction(np.zeros_like(p.mask), 0.0) if structure == "rv" and now["t"] in missed_on else p

    monkeypatch.setattr(prop, "probe_beside", lambda *a, **k: probes.append(a[1]) or real_probe(*a, **k))
    monkeypatch.setattr(session.predictor, "predict_auto", token_misses_rv)
    session.auto(["lv", "myo", "rv"], frames=frames)
    assert probes == probed
    assert [(p["structure"], p["frame"]) for p in session.log[-1].get("probed", [])] == [("rv", t) for t in (missed_on if probed else ())]
    for t in frames:
        gt, m = phantom.labels[t] == 3, session.labels[t] == 3
        assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.7, t
        assert (m.any(axis=(1, 2)) <= gt.any(axis=(1, 2))).all()  # no RV where the phantom has none
    flagged = [f["frame"] for f in session.review()["flags"] if f["code"] == "found_by_probe"]  # a human should look
    assert flagged == [t for t in missed_on if probed]
    session.undo()
    assert not [f for f in session.review()["flags"] if f["code"] == "found_by_probe"]  # undone: no flag
    monkeypatch.setattr(session.predictor, "predict_auto", real)
    session.auto(["lv", "myo", "rv"], frames=[0])
    assert probes == probed  # the token found the RV: nothing probed


def test_blank_slices_get_nothing_and_a_blank_image_is_refused(model, phantom):
    """A slice with no signal (every pixel the same: padding, a failed export) is skipped by
    zero-click and propagation, which step over it to the slices beyond (a blank slice inside
    the stack used to end the walk: the LV above it and the myocardium and RV below it were
    lost), and refuses a prompt; a wholly blank image is refused at once (the model draws a
    heart-like mask with a middling score even on an all-zero slice)."""
    arr = np.array(phantom.image.array, copy=True)
    arr[0, 4] = arr[0, 4].min()
    s = Session(phantom.image.with_array(arr), model, phantom.label_map.subset(["lv", "myo", "rv"]))
    assert (phantom.labels[0, 5] == 1).any()  # the LV goes on beyond the blank slice
    s.auto(["lv", "myo", "rv"], frames=[0])
    assert (s.labels[0, 3] > 0).any() and not s.labels[0, 4].any() and (s.labels[0, 5] == 1).any()
    s.undo()
    s.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    s.propagate("lv", 0, 2, through="z")
    lv_slices = [z for z in range(6) if (s.labels[0, z] == 1).any()]
    assert 3 in lv_slices and 4 not in lv_slices and 5 in lv_slices  # the walk steps over the blank slice
    gt, m = phantom.labels[0, 5] == 1, s.labels[0, 5] == 1
    assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.7
    with pytest.raises(EmptyImageError, match="slice 4 holds no signal"):
        s.apply_prompt(SlicePrompt("lv", 0, 4, box=Box(40, 40, 60, 60)))
    with pytest.raises(EmptyImageError, match="no signal"):
        Session(phantom.image.with_array(np.zeros_like(arr)), model, "lv=1")

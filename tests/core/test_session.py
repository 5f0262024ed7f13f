"""Session: multi-label writing, locks, undo/redo incl. propagation, replay, provenance."""

from __future__ import annotations

import numpy as np
import pytest

import medseg.enclosure as enclosure
import medseg.propagation as prop
from medseg.errors import EmptyImageError, LabelMapError, PromptError
from medseg.session import Session
from medseg.types import Box, SlicePrompt


def _box(lab, v):
    return Box.from_mask(lab == v)


@pytest.fixture()
def session(model, phantom):
    return Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))


def test_prompt_writes_label_and_returns_changed_region(session, phantom):
    ch = session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    assert list(ch.regions) == [(0, 2)]
    y0, x0, y1, x1 = ch.regions[(0, 2)]
    written = session.labels[0, 2] == 1
    assert written.any() and not written[:y0].any() and not written[y1:].any()
    assert not session.labels[0, 3].any()


def test_caller_owned_buffer_is_used(model, phantom):
    buf = np.zeros(phantom.image.shape, np.uint8)
    s = Session(phantom.image, model, "lv=5", labels=buf)
    s.apply_prompt(SlicePrompt("lv", 1, 2, box=_box(phantom.labels[1, 2], 1)))
    assert (buf[1, 2] == 5).any()


def test_structures_do_not_overlap_and_lock_protects(session, phantom):
    lab = phantom.labels[0, 2]
    session.apply_prompt(SlicePrompt("myo", 0, 2, box=_box(lab, 2)))
    session.lock("myo")
    myo_before = session.labels[0, 2] == 2
    # a deliberately huge LV box would swallow the myocardium if it were not locked
    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(lab, 2)))
    assert np.array_equal(session.labels[0, 2] == 2, myo_before)
    with pytest.raises(PromptError, match="locked"):
        session.apply_prompt(SlicePrompt("myo", 0, 2, box=_box(lab, 1)))


def test_undo_redo_cover_propagation(session, phantom):
    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    after_prompt = session.labels.copy()
    ch = session.propagate("lv", 0, 2, through="z")
    assert len(ch.regions) >= 2
    after_prop = session.labels.copy()
    assert (after_prop[0] == 1).any(axis=(1, 2)).sum() > 1
    session.undo()
    assert np.array_equal(session.labels, after_prompt)
    session.redo()
    assert np.array_equal(session.labels, after_prop)
    session.undo()
    session.undo()
    assert not session.labels.any()
    assert not session.can_undo


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


def test_replay_reproduces_bit_for_bit(session, model, phantom):
    lab = phantom.labels[0, 3]
    session.apply_prompt(SlicePrompt("rv", 0, 3, box=_box(lab, 3)))
    session.add_click("rv", 0, 3, *np.argwhere(lab == 3)[0], positive=True)
    session.propagate("rv", 0, 3)
    session.undo()
    session.redo()
    prov = session.provenance()
    again = Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))
    again.replay(prov["actions"])
    assert np.array_equal(again.labels, session.labels)
    assert prov["model_sha256"] == model.sha256 and prov["actions"][0]["op"] == "prompt"


def test_hand_edits_are_logged_replayed_and_undone(session, model, phantom):
    """Pixels changed in the label buffer by hand (napari's brush writes it directly) become
    ``edit`` actions: the provenance replays them bit for bit, undo takes them back."""
    from medseg.edits import apply_runs, runs_of

    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, (9, 11)).astype(np.uint8)
    b = a.copy()
    b[2, 3:8], b[5, 0], b[8, 10] = 2, 7, 1
    runs = runs_of(a, b)
    back = a.copy()
    apply_runs(back, runs)
    assert np.array_equal(back, b) and all(length >= 1 for _, length, _ in runs)
    assert runs_of(a, a) == []

    lab = phantom.labels[0, 3]
    session.apply_prompt(SlicePrompt("lv", 0, 3, box=_box(lab, 1)))
    before = session.labels.copy()
    session.labels[0, 3, 10:14, 20:30] = 2  # a brush stroke of myocardium
    session.labels[0, 4, 5, 5] = 3
    change = session.record_edits(before)
    assert sorted(change.regions) == [(0, 3), (0, 4)] and session.log[-1]["op"] == "edit"
    assert [(e["frame"], e["slice"]) for e in session.log[-1]["slices"]] == [(0, 3), (0, 4)]
    edited = session.labels.copy()
    again = Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))
    again.replay(session.provenance()["actions"])
    assert np.array_equal(again.labels, edited)
    session.undo()  # one step: both slices
    assert np.array_equal(session.labels, before)
    session.redo()
    assert np.array_equal(session.labels, edited)
    assert session.record_edits(session.labels.copy()).empty
    again.undo()  # a replayed edit is one undo step too
    assert np.array_equal(again.labels, before)
    with pytest.raises(PromptError, match="does not fit"):
        again.replay([{"op": "edit", "slices": [{"frame": 0, "slice": 3, "runs": [[0, 10**9, 1]]}]}])


def test_library_callers_mistakes_are_refused_and_numpy_indices_work(session, model, phantom, monkeypatch):
    """What a notebook does: numpy indices (they made provenance unserialisable and replay
    refuse it), indices off the stack (a negative slice propagated), a locked structure
    cleared, a value the buffer cannot hold, a prompt of background clicks only, a malformed
    log; and an operation that fails half way leaves the labels and the undo stack as they were."""
    import json

    from medseg.errors import MedsegError
    from medseg.types import Point

    lab = phantom.labels[0]
    z = np.argmax((lab == 1).sum(axis=(1, 2)))  # np.int64
    session.apply_prompt(SlicePrompt("lv", np.int64(0), z, box=_box(lab[z], 1)))
    prov = session.provenance()
    json.dumps(prov, allow_nan=False)
    again = Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))
    again.replay(prov["actions"])
    assert np.array_equal(again.labels, session.labels)
    for call, match in ((lambda: session.propagate("lv", 0, -1), "'slice' must be a whole number >= 0"),
                        (lambda: session.propagate("lv", 0, 99), "slice 99 lies outside the image's"),
                        (lambda: session.clear("lv", 0, 99), "outside the image's"),
                        (lambda: SlicePrompt("lv", 0, 2.5, box=Box(1, 1, 5, 5)), "'slice' must be a whole number"),
                        (lambda: SlicePrompt("rv", 0, 2, points=(Point(60, 60, False),)), "only background clicks"),
                        (lambda: session.replay([{"op": "propagate"}]), "action 1 of 1 in the log is malformed")):
        with pytest.raises(PromptError, match=match):
            call()
    with pytest.raises(LabelMapError, match="does not fit this session's uint8 labels"):
        session.add_structure("thrombus", 300)
    with pytest.raises(LabelMapError, match="bad structure name"):
        session.add_structure("a b", 9)
    with pytest.raises(MedsegError, match="needs a loaded model"):
        Session(phantom.image, None)
    with pytest.raises(LabelMapError, match="writable numpy array"):
        ro = np.zeros(phantom.image.shape, np.uint8)
        ro.flags.writeable = False
        Session(phantom.image, model, "lv=1", labels=ro)
    session.lock("lv")
    with pytest.raises(PromptError, match="locked"):
        session.clear("lv")
    session.lock("lv", False)
    before, steps = session.labels.copy(), len(session._undo)
    import medseg.enclosure as enc

    monkeypatch.setattr(enc, "apply_rules", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        session.propagate("lv", 0, int(z))  # the walk wrote slices before the rules raised
    assert np.array_equal(session.labels, before) and len(session._undo) == steps


def test_prompt_outside_image_is_refused(session):
    with pytest.raises(PromptError, match="outside"):
        session.apply_prompt(SlicePrompt("lv", 0, 99, box=Box(1, 1, 5, 5)))
    with pytest.raises(LabelMapError):
        session.apply_prompt(SlicePrompt("nope", 0, 1, box=Box(1, 1, 5, 5)))


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


def _myo_then_clear_ends(session, phantom) -> tuple[int, int]:
    """Propagate the myocardium from slice 2, then clear its first and last slices (as if its
    walk had stopped early there); returns those slices."""
    session.apply_prompt(SlicePrompt("myo", 0, 2, box=_box(phantom.labels[0, 2], 2)))
    session.propagate("myo", 0, 2)
    myo_slices = [z for z in range(6) if (session.labels[0, z] == 2).any()]
    first, last = myo_slices[0], myo_slices[-1]
    assert first < 2 < last
    session.clear("myo", 0, first)
    session.clear("myo", 0, last)
    return first, last


def test_myocardium_walk_that_stopped_early_is_extended_around_the_lv(session, phantom):
    """An LV slice beyond the myocardium's range that the myocardium, propagated on, does
    surround: the myocardium's walk had stopped too early, so it is written there."""
    first, last = _myo_then_clear_ends(session, phantom)
    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    session.propagate("lv", 0, 2)
    for z in (first, last):
        assert (session.labels[0, z] == 1).any() and (session.labels[0, z] == 2).any()
        assert session.results[("myo", 0, z)].prompt["encloses"] == "lv"
        gt = phantom.labels[0, z] == 2
        m = session.labels[0, z] == 2
        assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.7


def test_lv_walk_beyond_the_myocardium_is_trimmed(session, model, phantom, monkeypatch):
    """Where the myocardium does not surround it, a propagated LV slice beyond the
    myocardium's slice range goes (in the same undo step), with the ones beyond it;
    user-prompted LV slices and frames without a propagated myocardium stay."""
    monkeypatch.setattr(enclosure, "enclosing_step", lambda *a, **k: None)  # "the myocardium does not surround it"
    first, last = _myo_then_clear_ends(session, phantom)
    session.apply_prompt(SlicePrompt("lv", 1, 2, box=_box(phantom.labels[1, 2], 1)))
    session.propagate("lv", 1, 2)  # frame 1 has no myocardium: nothing trimmed there
    assert (session.labels[1, first] == 1).any() and (session.labels[1, last] == 1).any()
    before = session.labels.copy()
    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    session.propagate("lv", 0, 2)
    assert [z for z in range(6) if (session.labels[0, z] == 1).any()] == list(range(first + 1, last))
    assert np.array_equal(session.labels[1], before[1])
    session.undo()
    assert not any((session.labels[0, z] == 1).any() for z in range(6) if z != 2)
    session.redo()
    again = Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))
    again.replay(session.provenance()["actions"])
    assert np.array_equal(again.labels, session.labels)
    # a slice the user prompts beyond the myocardium is theirs: never listed for removal
    session.apply_prompt(SlicePrompt("lv", 0, last, box=_box(phantom.labels[0, last], 1)))
    assert (session.labels[0, last] == 1).any() and enclosure.unenclosed_runs(session) == []


def _base_end(session, t: int = 0) -> int:
    """The LV's basal end slice (the end of its slice range where its area is larger)."""
    lv = _slices(session, "lv", t)
    area = [(session.labels[t, z] == 1).sum() for z in (lv[0], lv[-1])]
    assert area[0] != area[1]
    return lv[0] if area[0] > area[1] else lv[-1]


def test_lv_walk_that_stopped_early_at_the_base_is_extended_into_the_myocardium_ring(session, phantom):
    """A model-written basal myocardium slice beyond the LV's range holds an LV the box prompt
    finds and the ring surrounds: the LV is written there (in the same undo step as the
    operation that found it), with its provenance."""
    for name in ("myo", "lv"):
        session.apply_prompt(SlicePrompt(name, 0, 2, box=_box(phantom.labels[0, 2], phantom.label_map[name])))
        session.propagate(name, 0, 2)
    zb = _base_end(session)
    session.clear("lv", 0, zb)  # as if the LV walk had stopped one slice early at the base
    assert (session.labels[0, zb] == 2).any() and not (session.labels[0, zb] == 1).any()
    session.propagate("myo", 0, 2)  # re-propagating the ring checks its cavities
    assert (session.labels[0, zb] == 1).any() and session.results[("lv", 0, zb)].prompt["enclosed_by"] == "myo"
    gt, m = phantom.labels[0, zb] == 1, session.labels[0, zb] == 1
    assert 2 * (gt & m).sum() / (gt.sum() + m.sum()) > 0.7
    session.undo()
    assert not (session.labels[0, zb] == 1).any()


def test_empty_ring_stays_empty_when_the_ring_does_not_surround_the_lv(session, phantom, monkeypatch):
    """Where the LV found in a basal ring is not enclosed by it (cavity_step says None) the
    slice stays as it was; an LV cleared at the apex end is never refilled by this rule."""
    for name in ("myo", "lv"):
        session.apply_prompt(SlicePrompt(name, 0, 2, box=_box(phantom.labels[0, 2], phantom.label_map[name])))
        session.propagate(name, 0, 2)
    zb = _base_end(session)
    lv = _slices(session, "lv", 0)
    za = lv[-1] if zb == lv[0] else lv[0]
    session.clear("lv", 0, za)
    assert all(za not in r[4] for r in enclosure.empty_rings(session))
    session.clear("lv", 0, zb)
    assert [r[4][0] for r in enclosure.empty_rings(session)] == [zb]
    monkeypatch.setattr(enclosure, "cavity_step", lambda *a, **k: None)
    session.propagate("myo", 0, 2)
    assert not (session.labels[0, zb] == 1).any() and not (session.labels[0, za] == 1).any()


@pytest.mark.parametrize("order", [("rv", "myo", "lv"), ("lv", "myo", "rv")])
def test_key_slice_segmentation_keeps_lv_inside_the_myocardium(model, phantom, order):
    from medseg.labels import LabelMap
    from medseg.prompt_file import prompts_from_labels
    from medseg.segment import segment_volume

    lm = LabelMap({n: phantom.label_map[n] for n in order})
    res = segment_volume(phantom.image, model, prompts_from_labels(phantom.labels, lm, key_slice=True), label_map=lm)
    for t in range(phantom.image.n_frames):
        zs_myo = [z for z in range(6) if (res.labels[t, z] == lm["myo"]).any()]
        zs_lv = [z for z in range(6) if (res.labels[t, z] == lm["lv"]).any()]
        assert zs_lv and zs_myo[0] <= zs_lv[0] and zs_lv[-1] <= zs_myo[-1]


def _key_slice(session, phantom, t: int = 0) -> None:
    """Key-slice segmentation of frame t: RV, myocardium, LV from a box on slice 2 each."""
    for name in ("rv", "myo", "lv"):
        v = phantom.label_map[name]
        session.apply_prompt(SlicePrompt(name, t, 2, box=_box(phantom.labels[t, 2], v)))
        session.propagate(name, t, 2)


def _slices(session, name: str, t: int) -> list[int]:
    v = session.structure(name).value
    return [z for z in range(session.volume.n_slices) if (session.labels[t, z] == v).any()]


@pytest.fixture()
def end_check_says(monkeypatch, end_check_weights):
    """Make the RV end check's model answer ``p`` (its fitted weights are not what is tested)."""
    from medseg import end_check

    w = end_check_weights(max_trim=1)

    def say(p: float):
        monkeypatch.setattr(end_check, "weights", lambda: w)
        monkeypatch.setattr(end_check, "probability", lambda *a: p)

    return say


def test_rv_end_slices_judged_not_rv_are_removed_once(session, model, phantom, end_check_says):
    """The check runs once LV and myocardium are there too (after the last propagation), removes
    each model-written end slice judged not RV (max_trim = 1 here) in the same undo step, never the
    user's key slice, marks the new ends, and does not trim again on a later operation."""
    end_check_says(0.9)
    _key_slice(session, phantom)
    rv = _slices(session, "rv", 0)
    removed = session.log[-1]["removed"]  # named in the provenance log
    assert {r["rule"] for r in removed} == {"rv_end_check"} and all(r["p_not_rv"] == 0.9 for r in removed)
    session.undo()  # the LV propagation, with the trimming
    full = _slices(session, "rv", 0)
    assert full[0] < rv[0] and rv[-1] < full[-1] and len(rv) == len(full) - 2
    assert sorted(r["slice"] for r in removed) == [full[0], full[-1]]
    session.redo()
    assert _slices(session, "rv", 0) == rv
    assert all(session.results[("rv", 0, z)].prompt.get("end_checked") for z in (rv[0], rv[-1]))
    session.propagate("myo", 0, 2)  # another structure again: the RV ends were checked already
    assert _slices(session, "rv", 0) == rv
    again = Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))
    again.replay(session.provenance()["actions"])
    assert np.array_equal(again.labels, session.labels)
    session.propagate("rv", 0, 2)  # a new RV walk is checked again
    assert _slices(session, "rv", 0) == rv


def test_rv_end_check_leaves_user_slices_and_frames_without_context(session, phantom, end_check_says):
    end_check_says(0.9)
    for name in ("rv", "myo"):  # no LV on frame 1: nothing to judge the RV's ends with
        v = phantom.label_map[name]
        session.apply_prompt(SlicePrompt(name, 1, 2, box=_box(phantom.labels[1, 2], v)))
        session.propagate(name, 1, 2)
    assert len(_slices(session, "rv", 1)) >= 4 and not session.results[("rv", 1, _slices(session, "rv", 1)[0])].prompt.get("end_checked")
    _key_slice(session, phantom)
    rv = _slices(session, "rv", 0)
    for z in (rv[0], rv[-1]):  # the user prompts the new ends: those are never removed
        session.apply_prompt(SlicePrompt("rv", 0, z, box=_box(phantom.labels[0, z], phantom.label_map["rv"])))
    session.propagate("lv", 0, 2)
    assert _slices(session, "rv", 0) == rv


def test_rv_end_check_keeps_ends_judged_rv(session, phantom, end_check_says):
    end_check_says(0.1)
    for name in ("rv", "myo", "lv"):
        v = phantom.label_map[name]
        session.apply_prompt(SlicePrompt(name, 0, 2, box=_box(phantom.labels[0, 2], v)))
        session.propagate(name, 0, 2)
        if name == "rv":
            full = _slices(session, "rv", 0)
    assert _slices(session, "rv", 0) == full


def test_rv_end_check_base_is_where_the_lv_is_larger(session, phantom):
    from medseg.end_check import run_ends

    _key_slice(session, phantom)
    ends = run_ends(session, "rv", ("lv", "myo"), 0)
    rv, lv = _slices(session, "rv", 0), (session.labels[0] == phantom.label_map["lv"]).sum(axis=(1, 2))
    base = dict((e, z) for e, z, _ in ends)["base"]
    apex = dict((e, z) for e, z, _ in ends)["apex"]
    assert {base, apex} == {rv[0], rv[-1]}
    assert lv[base] >= lv[apex]


def test_locked_structures_are_not_trimmed_by_the_lv_or_rv_rules(session, phantom, end_check_says):
    """Accepting (locking) the RV or the LV protects it from the RV end check and from the
    LV-in-myocardium rule that a later propagation of another structure runs."""
    end_check_says(0.9)
    for name in ("rv", "lv"):
        v = phantom.label_map[name]
        session.apply_prompt(SlicePrompt(name, 0, 2, box=_box(phantom.labels[0, 2], v)))
        session.propagate(name, 0, 2)
    session.lock("rv")
    rv = _slices(session, "rv", 0)
    _myo_then_clear_ends(session, phantom)  # propagating the myocardium would trim an unlocked RV
    assert _slices(session, "rv", 0) == rv
    assert enclosure.unenclosed_runs(session)  # the LV now runs past the myocardium ...
    session.lock("lv")
    assert enclosure.unenclosed_runs(session) == []  # ... but an accepted LV is never cut back


def test_rv_walk_beyond_the_lv_and_myocardium_is_trimmed(session, model, phantom):
    """Model-written RV slices more than one slice beyond the LV and myocardium go (in the same
    undo step, named in the change); a slice the user prompts out there is theirs, and so are
    the slices between it and the heart."""
    for name in ("myo", "lv"):
        session.apply_prompt(SlicePrompt(name, 0, 2, box=_box(phantom.labels[0, 2], phantom.label_map[name])))
        session.propagate(name, 0, 2)
    for name in ("myo", "lv"):
        for z in (0, 4, 5):
            session.clear(name, 0, z)  # the heart now spans slices 1-3
    session.apply_prompt(SlicePrompt("rv", 0, 2, box=_box(phantom.labels[0, 2], 3)))
    walked = session.labels.copy()
    ch = session.propagate("rv", 0, 2)
    assert _slices(session, "rv", 0) == [0, 1, 2, 3, 4]  # the phantom's RV is on every slice; 5 is two beyond
    assert ch.removed == [{"structure": "rv", "frame": 0, "slice": 5, "rule": "rv_beyond_heart"}]
    assert "RV-beside-the-heart rule removed RV on slice 5 (frame 0)" in ch.removed_text()
    session.undo()
    assert np.array_equal(session.labels, walked)
    session.redo()
    again = Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))
    again.replay(session.provenance()["actions"])
    assert np.array_equal(again.labels, session.labels)
    session.apply_prompt(SlicePrompt("rv", 0, 5, box=_box(phantom.labels[0, 5], 3)))
    ch = session.propagate("rv", 0, 5)
    assert _slices(session, "rv", 0) == [0, 1, 2, 3, 4, 5] and not ch.removed


def test_change_names_what_the_rules_removed():
    from medseg.session import Change

    ch = Change("propagate", removed=[{"structure": "rv", "frame": 0, "slice": 9, "rule": "rv_end_check"},
                                      {"structure": "rv", "frame": 0, "slice": 0, "rule": "rv_end_check"},
                                      {"structure": "lv", "frame": 2, "slice": 7, "rule": "lv_outside_myo"}])
    assert ch.removed_text() == "RV end check removed RV on slices 0, 9 (frame 0); LV-in-myocardium rule removed LV on slice 7 (frame 2)"
    assert Change("auto").removed_text() == ""


def test_rv_end_check_only_runs_with_the_model_it_was_fitted_on(model, phantom, monkeypatch, end_check_weights):
    from medseg import end_check

    w = end_check_weights(max_trim=1)
    monkeypatch.setattr(end_check, "probability", lambda *a: 0.9)
    for sha, trimmed in ((model.sha256, True), ("0" * 64, False)):
        monkeypatch.setattr(end_check, "weights", lambda sha=sha: {**w, "model_sha256": sha})
        s = Session(phantom.image, model, phantom.label_map.subset(["lv", "myo", "rv"]))
        _key_slice(s, phantom)
        assert bool(s.log[-1].get("removed")) is trimmed


def test_predictions_in_threads_give_what_one_after_another_gives(model, phantom, monkeypatch):
    """With spare torch threads the two walk directions, zero-click's slices and the
    confidence's slices run in threads (each its own predictor): the labels, slice results,
    log and confidence must be those of running everything one after another."""
    import threading

    import torch

    lm = phantom.label_map.subset(["lv", "myo", "rv"])
    in_threads = []
    _in_worker = Session._in_worker

    def spy(self, fn, *args):
        in_threads.append(threading.current_thread().name)
        return _in_worker(self, fn, *args)

    monkeypatch.setattr(Session, "_in_worker", spy)

    def run(spare):
        monkeypatch.setattr(Session, "spare_threads", lambda self: spare)
        s = Session(phantom.image, model, lm)
        s.auto(["lv", "myo", "rv"], frames=[0])
        s.apply_prompt(SlicePrompt("lv", 1, 2, box=_box(phantom.labels[1, 2], 1)))
        s.propagate("lv", 1, 2, through="zt")
        return s.labels.copy(), s.log, s.confidence(), s.results

    threads = torch.get_num_threads()
    labels, log, conf, results = run(1)
    assert not in_threads
    labels2, log2, conf2, results2 = run(2)
    assert in_threads and all(n.startswith("medseg") for n in in_threads)
    assert torch.get_num_threads() == threads  # the split is undone
    assert (labels == labels2).all() and (labels2 == 1).any()
    assert log == log2 and results.keys() == results2.keys()
    # torch's one-thread kernels may sum in another order than its two-thread ones: the logits
    # agree to float precision, not always bit for bit
    for k, r in results.items():
        assert np.array_equal(r.roi, results2[k].roi) and r.score == pytest.approx(results2[k].score, abs=1e-5)
        assert np.allclose(r.logits, results2[k].logits, atol=1e-3)
    assert [(c.structure, c.frame, c.slice) for c in conf.slices] == [(c.structure, c.frame, c.slice) for c in conf2.slices]
    assert [c.confidence for c in conf.slices] == pytest.approx([c.confidence for c in conf2.slices], abs=1e-4)


def test_parallel_map_keeps_order_reports_progress_in_order_and_raises_the_first_error(session):
    import threading

    seen = []
    out = session.parallel_map(lambda x: (x, threading.current_thread().name), range(7), workers=2, done=seen.append)
    assert [x for x, _ in out] == list(range(7)) and seen == list(range(7))
    assert {n for _, n in out} <= {f"medseg_{i}" for i in range(2)}

    def fails_on_2_and_5(x):
        if x in (5, 2):
            raise PromptError(f"item {x} failed")
        return x

    with pytest.raises(PromptError, match="item 2 failed"):
        session.parallel_map(fails_on_2_and_5, range(7), workers=2)
    assert session.predictor is session._predictor  # the workers' predictors are gone with them


def test_a_failed_write_during_propagation_ends_the_walker_threads_at_once(session, phantom, monkeypatch):
    """A write that fails mid-walk must end the worker threads and torch's thread split right
    away, even while the exception (and the frames it holds) is still kept by whoever shows it."""
    import torch

    import medseg._threads as ms

    session.apply_prompt(SlicePrompt("lv", 0, 2, box=_box(phantom.labels[0, 2], 1)))
    monkeypatch.setattr(Session, "spare_threads", lambda self: 1 if getattr(self._tls, "predictor", None) else 2)
    threads = torch.get_num_threads()

    def disk_full(*args, **kwargs):
        raise PromptError("disk full")

    monkeypatch.setattr(Session, "_write", disk_full)
    with pytest.raises(PromptError, match="disk full") as err:
        session.propagate("lv", 0, 2)
    assert err.traceback  # the exception still holds the walk's frames here
    assert ms._SPLIT["depth"] == 0 and torch.get_num_threads() == threads


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

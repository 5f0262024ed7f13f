"""Session anatomy rules after propagation: the myocardium and LV extended into each other's
range, LV beyond the myocardium trimmed, the RV end check and the RV-beside-the-heart rule,
locked structures left alone, and how a Change names what the rules removed."""

from __future__ import annotations

import numpy as np
import pytest
from session_helpers import box_of as _box

import medseg.enclosure as enclosure
from medseg.session import Session
from medseg.types import SlicePrompt


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

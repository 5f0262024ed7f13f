"""Session: multi-label writing, locks, undo/redo, hand edits, replay, provenance, the library caller's
mistakes (the `session` fixture: tests/core/conftest.py). Propagation walks: test_session_walks.py;
zero-click: test_session_auto.py; the LV/RV rules: test_session_rules.py; threads: test_session_threads.py."""

from __future__ import annotations

import numpy as np
import pytest
from session_helpers import box_of as _box

from medseg.errors import LabelMapError, PromptError
from medseg.session import Session
from medseg.types import Box, SlicePrompt


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

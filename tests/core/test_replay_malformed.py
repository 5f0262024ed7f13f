"""Session.replay of a malformed provenance log (hand-edited, truncated, fuzzed): a PromptError
naming the action's number and what is wrong, never another exception type; the session
(labels, undo history, log) stays as it was. The logs are a real session's, then mutated."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from medseg.edits import apply_runs
from medseg.errors import LabelMapError, PromptError
from medseg.session import Session
from medseg.types import Box, SlicePrompt, prompt_from_json

STRUCTURES = ["lv", "myo", "rv"]


def _session(model, phantom) -> Session:
    return Session(phantom.image, model, phantom.label_map.subset(STRUCTURES))


@pytest.fixture(scope="module")
def log(model, phantom) -> list[dict]:
    """prompt, lock, clear, undo, redo, edit, review (every field a mutation below changes)."""
    s = _session(model, phantom)
    s.apply_prompt(SlicePrompt("lv", 0, 2, box=Box.from_mask(phantom.labels[0, 2] == 1)))
    s.lock("lv", True)
    s.lock("lv", False)
    s.clear("lv", 0, 2)
    s.undo()
    s.redo()
    before = s.labels.copy()
    s.labels[1, 3, 5:8, 5:9] = 3
    s.record_edits(before)
    s.mark_reviewed("lv", 0, 2, "ok")
    actions = json.loads(json.dumps(s.provenance()["actions"], allow_nan=False))  # as a file holds it
    assert [a["op"] for a in actions] == ["prompt", "lock", "lock", "clear", "undo", "redo", "edit", "review"]
    return actions


def _set(path, value):
    def mutate(actions):
        o = actions
        for k in path[:-1]:
            o = o[k]
        o[path[-1]] = value
    return mutate


INF = json.loads("1e400")  # what a hand-typed 1e400 reads as

CASES = {  # name: (mutation of the log, the action named, what the message says)
    "edit_frame_inf": (_set((6, "slices", 0, "frame"), INF), 7, "'frame' must be a whole number >= 0, got inf"),
    "edit_slice_past_the_stack": (_set((6, "slices", 0, "slice"), 99), 7, "lies outside the image's 3 frames x 6 slices"),
    "edit_run_start_inf": (_set((6, "slices", 0, "runs", 0, 0), INF), 7, "whole numbers, got \\[inf"),
    "edit_run_fraction": (_set((6, "slices", 0, "runs", 0, 1), 2.5), 7, "whole numbers"),
    "edit_runs_text": (_set((6, "slices", 0, "runs"), "abc"), 7, "'runs' must be a list"),
    "edit_slice_not_object": (_set((6, "slices", 0), 1), 7, "must be \\{frame, slice, runs\\}"),
    "box_text": (_set((0, "prompt", "box", 0), "x"), 1, "box y0 must be a number, got 'x'"),
    "box_bool": (_set((0, "prompt", "box", 1), True), 1, "box x0 must be a number, got True"),
    "box_huge_int": (_set((0, "prompt", "box", 2), 10**400), 1, "box y1 must be a number"),
    "points_number": (_set((0, "prompt", "points"), 5), 1, "'points' must be a list"),
    "prompt_not_object": (_set((0, "prompt"), [1]), 1, "a prompt must be an object"),
    "prompt_structure_unknown": (_set((0, "prompt", "structure"), "la"), 1, "names structure 'la'"),
    "prompt_frame_past_the_cine": (_set((0, "prompt", "frame"), 7), 1, "frame 7 is outside 0..2"),
    "multimask_text": (_set((0, "multimask"), "x"), 1, "'multimask' true or false, got 'x'"),
    "lock_false_as_text": (_set((1, "locked"), "false"), 2, "'locked' true or false, got 'false'"),
    "lock_structure_list": (_set((1, "structure"), ["lv"]), 2, "names structure \\['lv'\\]"),
    "clear_slice_inf": (_set((3, "slice"), INF), 4, "'slice' must be a whole number >= 0, got inf"),
    "clear_frame_huge_int": (_set((3, "frame"), 10**400), 4, "frame 1000.* lies outside the image's 3 frame"),
    "review_frame_negative": (_set((7, "frame"), -1), 8, "'frame' must be a whole number >= 0, got -1"),
    "op_unknown": (_set((4, "op"), "undo!"), 5, "cannot replay unknown action 'undo!'"),
    "op_list": (_set((4, "op"), ["undo"]), 5, "cannot replay unknown action \\['undo'\\]"),
    "action_number": (_set((5,), 1), 6, "an action must be an object"),
    "auto_frame_past_the_cine": (lambda a: a.append({"op": "auto", "structures": ["lv"], "frames": [5]}), 9, "'auto' frame 5 lies outside the image's 3 frame"),
    "auto_structures_text": (lambda a: a.append({"op": "auto", "structures": "lv"}), 9, "'auto' structures must be a list"),
    "propagate_through": (lambda a: a.append({"op": "propagate", "structure": "lv", "frame": 0, "slice": 2, "through": "q"}), 9,
                          "through must be one of z, t, zt"),
    "propagate_no_structure": (lambda a: a.append({"op": "propagate", "frame": 0, "slice": 2}), 9, "'propagate' needs a 'structure'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_log_is_refused_naming_the_action_and_leaves_the_session(case, log, model, phantom):
    mutate, number, what = CASES[case]
    actions = copy.deepcopy(log)
    mutate(actions)
    s = _session(model, phantom)
    before = s.labels.copy()
    s.labels[2, 1, 10:20, 10:20] = 2
    s.record_edits(before)  # labels, an undo step and a log entry of its own
    labels, undo, n_log = s.labels.copy(), [id(step) for step in s._undo], len(s.log)
    with pytest.raises(PromptError, match=f"^action {number} of {len(actions)} in the log is malformed: .*{what}") as e:
        s.replay(actions)
    assert "\n" not in str(e.value)
    assert np.array_equal(s.labels, labels) and [id(step) for step in s._undo] == undo and len(s.log) == n_log


def test_a_log_that_fails_part_way_leaves_the_session_as_it_was(log, model, phantom):
    """Well formed, but the 4th action clears a locked structure: the prompt the first action
    wrote is taken back, the undo history and the log are as before the replay."""
    actions = copy.deepcopy(log)
    actions[2]["locked"] = True  # lv stays locked: the clear after it is refused
    s = _session(model, phantom)
    with pytest.raises(PromptError, match="^action 4 of 8 in the log \\(clear\\): lv is locked"):
        s.replay(actions)
    assert not s.labels.any() and not s.can_undo and not s.can_redo and s.log == [] and not s.structure("lv").locked and not s.results


def test_a_replay_reports_progress_and_the_log_is_not_a_list(log, model, phantom):
    s = _session(model, phantom)
    steps = []
    s.replay(log, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(i + 1, len(log)) for i in range(len(log))]
    for bad in ("x", {"actions": []}, None):
        with pytest.raises(PromptError, match="actions must be a list"):
            s.replay(bad)


def test_library_calls_refuse_what_a_log_got_wrong(model, phantom):
    """The same values from a library caller: typed errors, not IndexError/ValueError/OverflowError."""
    s = _session(model, phantom)
    with pytest.raises(PromptError, match="frame 5, slice 0 lies outside the image's 3 frame"):
        s.auto(["lv"], frames=[5])
    with pytest.raises(PromptError, match="frames must be a list"):
        s.auto(["lv"], frames=5)
    with pytest.raises(LabelMapError, match="structures must be a list of names"):
        s.auto("lv")
    with pytest.raises(PromptError, match="locked must be true or false, got 'false'"):
        s.lock("lv", "false")
    with pytest.raises(PromptError, match="box y0 must be a number, got 'x'"):
        prompt_from_json({"structure": "lv", "box": ["x", 1, 5, 5]})
    with pytest.raises(PromptError, match="whole numbers, got \\[inf, 3, 1\\]"):
        apply_runs(np.zeros((4, 4), np.uint8), [[INF, 3, 1]])
    assert not s.log and not s.can_undo

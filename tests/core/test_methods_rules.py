"""The methods text's mask rules say what the action log can tell: the slices a rule removed are
counted, the slices the LV rule adds are described, not counted; a rule is named only where its
structures were segmented; counts from a log with undone operations say so."""

from __future__ import annotations

import json
from pathlib import Path

MAP = {"lv": 1, "myo": 2, "rv": 3}


def _text(tmp_path: Path, actions: list[dict], model_sha: str = "ab" * 32) -> str:
    from medseg.methods import methods_text

    side = {"labels": ["x.nii.gz"], "label_map": MAP,
            "provenance": {"medseg_version": "0.1.0", "device": "cpu", "command": "segment", "model_id": "default", "model_sha256": model_sha,
                           "adapter_id": None, "adapter_sha256": None, "label_map": MAP, "actions": actions,
                           "created": "2026-12-07T16:27:53Z", "review": {"needs_review": False, "flags": []}}}
    (tmp_path / "x.json").write_text(json.dumps(side), encoding="utf-8")
    return methods_text(tmp_path / "x.json").split("\n\n")[2]


def test_the_lv_rule_says_its_additions_are_not_counted(tmp_path):
    """"model-written LV slices not enclosed by myocardium were removed (none in this run)": the
    rule also propagates the myocardium on and prompts an LV in basal rings, which the log does
    not record; "none" read as if the rule had changed nothing."""
    para = _text(tmp_path, [{"op": "auto", "structures": ["lv", "myo", "rv"], "frames": None}])
    assert "a model-written LV slice beyond the myocardium was removed (none in this run) unless the myocardium, propagated on, enclosed it" in para
    assert "(the slices these two steps added are not recorded)" in para
    assert "RV slices more than 1 slice beyond the LV and myocardium were removed (none in this run)" in para


def test_the_rv_rules_are_not_claimed_without_the_lv_and_myocardium(tmp_path, monkeypatch):
    """An RV alone was said to have lost no slice to the rule that keeps it beside the LV and
    myocardium, and an LV alone to have had its RV's end slices checked: neither rule runs there."""
    from medseg import end_check

    sha = "cd" * 32
    monkeypatch.setattr(end_check, "weights", lambda: {"model_sha256": sha, "structure": "rv", "context": ["lv", "myo"]})
    rv_only = _text(tmp_path, [{"op": "auto", "structures": ["rv"], "frames": None}], sha)
    assert "RV slices more than" not in rv_only and "learned check" not in rv_only
    lv_only = _text(tmp_path, [{"op": "auto", "structures": ["lv", "myo"], "frames": None}], sha)
    assert "learned check" not in lv_only and "LV was kept inside the myocardium" in lv_only
    all3 = _text(tmp_path, [{"op": "auto", "structures": ["lv", "myo", "rv"], "frames": None}], sha)
    assert "a learned check of the RV's end slices removed 0 slices" in all3


def test_counts_from_a_log_with_an_undo_say_so(tmp_path):
    """A napari session's log keeps an undone propagation's removals: "removed (2 slices)" was
    stated as what the labels show."""
    removed = [{"structure": "rv", "frame": 0, "slice": z, "rule": "rv_beyond_heart"} for z in (0, 7)]
    actions = [{"op": "auto", "structures": ["lv", "myo", "rv"], "frames": None, "removed": removed}]
    plain = _text(tmp_path, actions)
    assert "were removed (2 slices)" in plain and "undone" not in plain
    undone = _text(tmp_path, [*actions, {"op": "undo"}, {"op": "auto", "structures": ["lv", "myo", "rv"], "frames": None}])
    assert "operations undone afterwards (napari) included" in undone

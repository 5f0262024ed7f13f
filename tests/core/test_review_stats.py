"""The review statistics of ``medseg evaluate`` (how well the flags catch real failures), what a
sidecar's review gives them, structures a batch handed over, and evaluate's console line.
Pure dict work (no model, no images), except one CLI run with the scoring stubbed."""

from __future__ import annotations

import pytest

from medseg.cli._app import run_cli
from medseg.evaluation import _review_of, review_stats

CONF = {"lv": 0.95, "myo": 0.95, "rv": 0.95}
CASE_WIDE = [  # review flags that name no structure
    {"code": "rv_not_adjacent_septum", "level": "volume", "frame": 0, "message": "frame 0: the RV never touches the myocardium (septum)"},
    {"code": "lv_mass_implausible", "level": "measurement", "value": 5.3, "message": "LV mass 5 g is outside 20-400 g"},
]


def _prov(flags, **extra):
    return {"review": {"needs_review": True, "flags": flags}, "confidence": {"volume": dict(CONF)}, **extra}


def test_a_flag_naming_no_structure_flags_the_structures_it_is_about():
    """review_stats' rule: a structure is flagged when a flag names it or a structure-less flag
    puts it in doubt (it counted none of them: 0 flagged, bad volumes 'missed'): an RV that
    does not touch the septum flags the RV, an implausible LV mass the myocardium, a failed
    measurement every structure."""
    case = {"dice": {"lv": 0.95, "myo": 0.40, "rv": 0.30}, "review": _review_of(_prov(CASE_WIDE))}
    assert case["review"]["structures"] == ["myo", "rv"]
    vol = review_stats([case])["volumes"]
    assert (vol["n"], vol["n_bad"], vol["n_flagged"], vol["bad_flagged_pct"], vol["flagged_fine_pct"]) == (3, 2, 2, 100.0, 0.0)
    # the rule holds for a review dict that knows the case-wide codes but not the case's structures
    bare = {"dice": case["dice"], "review": {"needs_review": True, "structures": [], "case_flags": ["lv_mass_implausible"]}}
    assert review_stats([bare])["volumes"]["n_flagged"] == 1
    failed = {"dice": case["dice"], "review": {"needs_review": True, "structures": [], "case_flags": ["measurement_failed"]}}
    assert review_stats([failed])["volumes"]["n_flagged"] == 3


@pytest.mark.parametrize("flags, structures, want", [
    ([{"code": "needs_review", "structure": "myo"}], ["lv", "myo", "rv"], ["myo"]),
    (CASE_WIDE[:1], ["lv", "myo", "rv"], ["rv"]),
    (CASE_WIDE[1:], ["lv", "rv"], []),  # a mass flag on labels without myocardium: nothing of theirs
    ([{"code": "myo_not_enclosing_lv", "level": "slice"}], ["lv", "myo", "rv"], ["lv", "myo"]),
    ([{"code": "measurement_failed", "level": "measurement"}], ["lv", "myo"], ["lv", "myo"]),
    ([{"code": "incomplete_coverage", "level": "measurement"}], ["lv", "myo"], []),  # the acquisition's, not a review flag
    ([], ["lv"], []),
])
def test_flagged_structures(flags, structures, want):
    from medseg.evaluation import flagged_structures

    assert flagged_structures(flags, structures) == want


def test_flags_of_structures_handed_over_are_not_flags_of_the_segmentation():
    """A structure left out below --min-confidence (the sidecar's ``handed_over``, flagged
    ``handed_over`` and ``needs_review``) is not scored: its flags neither flag it nor make the
    case need review; flags of the structures that remain still do."""
    handed = [{"code": "needs_review", "level": "volume", "structure": "myo", "confidence": 0.87, "threshold": 0.92},
              {"code": "handed_over", "level": "volume", "structure": "rv", "confidence": 0.93},
              {"code": "handed_over", "level": "volume", "structure": "myo", "confidence": 0.87}]
    rv = _review_of(_prov(handed, handed_over=["rv", "myo"], needs_review=True))
    assert (rv["needs_review"], rv["structures"], rv["codes"]) == (False, [], [])
    failed = [{"code": "measurement_failed", "level": "measurement", "message": "measurement failed: ..."}]
    rv = _review_of(_prov(handed + failed, handed_over=["rv", "myo"]))
    assert (rv["needs_review"], rv["structures"], rv["case_flags"]) == (True, ["lv"], ["measurement_failed"])
    vol = review_stats([{"dice": {"lv": 0.93}, "review": rv}])["volumes"]
    assert (vol["n"], vol["n_flagged"], vol["flagged_fine_pct"]) == (1, 1, 100.0)


def _stub_result(n_bad: int) -> dict:
    dice = [0.5] * n_bad + [0.95] * (4 - n_bad)
    cases = [{"case": f"p{i}", "phase": None, "image": "i", "label": "l", "dice": {"lv": d}, "hd95_mm": {"lv": 1.0},
              "review": {"needs_review": i < 2, "structures": ["lv"] if i < 2 else [], "codes": [], "case_flags": []}}
             for i, d in enumerate(dice)]
    return {"summary": {"dice": {"lv": sum(dice) / 4}, "n_cases": 4, "review": review_stats(cases)}, "cases": cases, "settings": {}}


@pytest.mark.parametrize("n_bad, want", [
    (1, "review flags: 100.0 % of the 1 structure-volumes with Dice < 0.85 flagged, 33.3 % of the good ones; "
        "50.0 % of the 2 flagged were fine"),
    (0, "review flags: none of the 4 structure-volumes has Dice < 0.85; 50.0 % of them flagged"),
])
def test_evaluate_prints_both_review_shares_with_a_prompt_too(tmp_path, capsys, monkeypatch, n_bad, want):
    """The console line gives the share of the good volumes flagged and of the flagged that were
    fine (that one was only in RESULT.json), and `--prompt` runs print it too (they printed none)."""
    import medseg.evaluation
    import medseg.models

    for name in ("i.nii.gz", "l.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "pairs.csv").write_text("image,label\ni.nii.gz,l.nii.gz\n")
    monkeypatch.setattr(medseg.models, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(medseg.evaluation, "evaluate_pairs", lambda *a, **k: _stub_result(n_bad))
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "pairs.csv"), "--label-map", "lv=1", "--prompt", "box",
                    "-o", str(tmp_path / "r.json")]) == 0
    assert want in " ".join(capsys.readouterr().err.split())

"""`batch --min-confidence`: structures and whole cases handed over for manual review, in the
summary, for `--resume` and for `evaluate --predicted`. Four tiny phantom studies (1, 6, 96, 96);
the confidences are fixed per case (the scoring is stubbed) so that which structures fall below
the cut-off is known and the jittered decodes cost nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from batch_data import MAP, batch_prompted, stubbed_confidence, write_case

from medseg.cli import run_cli

#: volume confidence of each case's structures (cut-off 0.9: c1 kept, c2 keeps lv, c3 and c4 handed over entirely)
CONF = {"c1": (0.97, 0.97, 0.97), "c2": (0.97, 0.80, 0.80), "c3": (0.60, 0.60, 0.60), "c4": (0.50, 0.50, 0.50)}
SCORED: list[str] = []  # the cases the stub scored (= segmented), in order


def _fake_score_session(session, structures=None, cal=None, progress=None):
    from medseg.confidence import ConfidenceReport

    case = Path(session.volume.meta["path"]).name.split(".")[0]
    SCORED.append(case)
    rep = ConfidenceReport(thresholds={"slice": 0.3, "volume": 0.92})
    rep.volume = {n: dict(zip(("lv", "myo", "rv"), CONF[case]))[n] for n in (structures or session.structures)}
    if case == "c1":  # a flag that names no structure: it flags every structure of the case
        rep.flags.append({"code": "lv_mass_implausible", "level": "measurement", "value": 5.0, "message": "LV mass 5 g is outside 20-400 g"})
    return rep


@pytest.fixture(scope="module", autouse=True)
def stubbed():
    with stubbed_confidence(_fake_score_session):
        yield


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    for i, case in enumerate(CONF):
        write_case(folder, case, seed=20 + i)
    return folder


_batch = batch_prompted


@pytest.fixture(scope="module")
def out(studies, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    assert _batch(studies, out, "--min-confidence", "0.9") == 0
    return out


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["cases"]


def test_summary_rows_of_cases_handed_over_entirely_are_filled_and_worst_first(out):
    """A case with no structure left gets its confidence, flags and handed-over structures like
    a case with some left (they were empty), so the handed-over rows sort lowest confidence first."""
    rows = _rows(out)
    assert [r["case"] for r in rows] == ["c4", "c3", "c2", "c1"]
    c4, c3 = rows[0], rows[1]
    for r, conf in ((c4, 0.5), (c3, 0.6)):
        assert r["status"] == "handed_over" and r["needs_review"] is True and r["confidence"] == conf, r
        assert r["handed_over"].split() == ["lv", "myo", "rv"] and r["review_structures"] == "lv myo rv"
        assert "handed_over" in r["review_flags"].split() and r["output"] == ""
    c2 = rows[2]
    assert c2["status"] == "ok" and sorted(c2["handed_over"].split()) == ["myo", "rv"]
    assert not (out / "c3.nii.gz").exists() and (out / "handed_over" / "c3.json").is_file()


def test_a_flag_naming_no_structure_lists_its_structures_in_the_summary(out):
    """review_structures: a structure-less review flag (lv_mass_implausible) flags the structure
    it is about, the myocardium (the column left it out)."""
    c1 = next(r for r in _rows(out) if r["case"] == "c1")
    assert "lv_mass_implausible" in c1["review_flags"].split() and c1["review_structures"] == "myo"


def test_evaluate_does_not_score_structures_handed_over(studies, out, tmp_path, capsys):
    """Structures left out below --min-confidence are not failed segmentations: no Dice 0 in the
    means, not in the flags' catch rate; counted and listed as handed over."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,label,case\n" + "".join(f"{studies / c}.nii.gz,{studies / c}_gt.nii.gz,{c}\n" for c in ("c1", "c2")))
    res = tmp_path / "r.json"
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", MAP, "--predicted", str(out), "-o", str(res),
                    "--csv", str(tmp_path / "cases.csv")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    r = json.loads(res.read_text())
    c1, c2 = r["cases"]
    assert set(c2["dice"]) == {"lv"} and c2["handed_over"] == ["myo", "rv"]
    s = r["summary"]
    assert s["dice"]["myo"] == c1["dice"]["myo"] > 0.5 and s["dice"]["rv"] == c1["dice"]["rv"] > 0.5
    assert s["review"]["volumes"]["n"] == 4 and s["handed_over"]["n_volumes"] == 2 and s["handed_over"]["n_cases_entire"] == 0
    assert "handed over for manual review, not scored: 2 structure-volumes: c2 (myo, rv)" in err
    assert "review flags: none of the 4 structure-volumes has Dice < 0.85; 25.0 % of them flagged" in err
    assert "handed_over" in (tmp_path / "cases.csv").read_text().splitlines()[0]


def test_evaluate_skips_cases_handed_over_entirely(studies, out, tmp_path, capsys):
    """A case with status handed_over in the batch summary has no labels and is no error: it is
    counted as handed over; a case without labels and without that status still stops the run."""
    res = tmp_path / "r.json"
    base = ["evaluate", "--pairs", str(studies), "--label-map", MAP, "-o", str(res)]
    capsys.readouterr()
    assert run_cli([*base, "--predicted", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    s = json.loads(res.read_text())["summary"]
    assert s["n_cases"] == 2 and s["handed_over"]["n_cases_entire"] == 2 and s["handed_over"]["n_volumes"] == 8
    assert "not scored: 8 structure-volumes (2 cases entirely)" in err and "c4 (no labels: lv, myo, rv)" in err
    csv_only = tmp_path / "csv_only"  # an older summary.json gone: summary.csv says it too
    shutil.copytree(out, csv_only)
    (csv_only / "summary.json").unlink()
    assert run_cli([*base, "--predicted", str(csv_only)]) == 0
    assert json.loads(res.read_text())["summary"]["handed_over"]["n_cases_entire"] == 2
    for p in (csv_only / "c1.nii.gz", csv_only / "c1.json"):  # c1 failed: no labels, status ok in no summary
        p.unlink()
    res.unlink()
    capsys.readouterr()
    assert run_cli([*base, "--predicted", str(csv_only)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no labels in" in err and "for 1 of 4 cases: c1" in " ".join(err.split()) and "Traceback" not in err and not res.exists()


def test_resume_does_not_run_cases_handed_over_again(studies, out, tmp_path):
    """--resume takes a case handed over entirely with the same --min-confidence as done (its
    record in OUT_DIR/handed_over/); another cut-off runs it again."""
    sub = tmp_path / "sub"
    sub.mkdir()
    for c in ("c3", "c4"):
        for name in (f"{c}.nii.gz", f"{c}_gt.nii.gz"):
            shutil.copy(studies / name, sub / name)
    out2 = tmp_path / "out2"
    shutil.copytree(out, out2)
    SCORED.clear()
    assert _batch(sub, out2, "--resume", "--min-confidence", "0.9") == 0
    assert SCORED == []
    rows = {r["case"]: r for r in _rows(out2)}
    assert {c: (r["status"], r["confidence"]) for c, r in rows.items()} == {"c3": ("handed_over", 0.6), "c4": ("handed_over", 0.5)}
    assert all(r["reason"].endswith("(an earlier run)") for r in rows.values())
    assert _batch(sub, out2, "--resume", "--min-confidence", "0.55") == 0
    assert sorted(SCORED) == ["c3", "c4"]
    rows = {r["case"]: r for r in _rows(out2)}
    assert rows["c3"]["status"] == "ok" and rows["c4"]["status"] == "handed_over"
    assert (out2 / "c3.nii.gz").is_file() and not (out2 / "handed_over" / "c3.json").exists()
    assert (out2 / "handed_over" / "c4.json").is_file() and not (out2 / "c4.nii.gz").exists()


def test_evaluate_scores_the_rest_when_the_batch_failed_a_case(studies, out, tmp_path, capsys):
    """A case the batch failed (status failed in its summary, no labels) stopped `evaluate
    --predicted` for every case: one failure in a cohort of hundreds and nothing was scored. Now it
    is listed with the batch's reason (`summary.failed_in_batch`, a console line) and the others
    are scored."""
    failed = tmp_path / "failed"
    shutil.copytree(out, failed)
    for p in (failed / "c1.nii.gz", failed / "c1.json"):
        p.unlink()
    doc = json.loads((failed / "summary.json").read_text())
    for r in doc["cases"]:
        if r["case"] == "c1":
            r.update(status="failed", reason="c1.nii.gz: truncated or corrupt NIfTI file")
    (failed / "summary.json").write_text(json.dumps(doc))
    res = tmp_path / "r.json"
    capsys.readouterr()
    assert run_cli(["evaluate", "--pairs", str(studies), "--label-map", MAP, "-o", str(res), "--predicted", str(failed)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    s = json.loads(res.read_text())["summary"]
    assert s["n_cases"] == 1 and s["handed_over"]["n_cases_entire"] == 2  # c2 scored; c3, c4 handed over
    assert s["failed_in_batch"] == {"n_cases": 1, "cases": [{"case": "c1", "phase": None, "reason": "c1.nii.gz: truncated or corrupt NIfTI file"}]}
    assert "failed in the batch, not scored: 1 case: c1 (c1.nii.gz: truncated or corrupt NIfTI file)" in err
    for r in doc["cases"]:  # nothing left to score: one line
        if r["case"] == "c2":
            r.update(status="failed", reason="x")
    (failed / "summary.json").write_text(json.dumps(doc))
    (failed / "c2.nii.gz").unlink()
    res.unlink()
    assert run_cli(["evaluate", "--pairs", str(studies), "--label-map", MAP, "-o", str(res), "--predicted", str(failed)]) == 1
    err = capsys.readouterr().err.strip()
    assert "none of the 4 cases has labels (2 handed over for manual review, 2 failed, by its batch summary): nothing to score" in " ".join(err.split())
    assert not res.exists()

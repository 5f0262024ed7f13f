"""`medseg evaluate` gives the RV ESV agreement beside the LV ESV (a reader study of the RV)."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

AFF = np.diag([1.5, 1.5, 8.0, 1.0])


def _stack(r_lv: float, r_rv: float, z: int = 6, n: int = 56) -> np.ndarray:
    """(Z, Y, X): LV disk in a 4-px myocardial ring, an RV disk of radius ``r_rv`` beside it."""
    yy, xx = np.mgrid[:n, :n]
    d = np.hypot(yy - n / 2, xx - n / 2)
    sl = np.zeros((n, n), np.uint8)
    sl[np.hypot(yy - n / 2, xx - (n / 2 - r_lv - 4 - r_rv)) < r_rv] = 1
    sl[d < r_lv + 4] = 2
    sl[d < r_lv] = 3
    return np.repeat(sl[None], z, axis=0)


def _save(path, arr):
    nib.save(nib.Nifti1Image(np.asarray(arr).T.copy(), AFF), str(path))


def test_rv_esv_is_in_the_agreement_and_the_case_table(tmp_path):
    """Reader B draws the RV 1 px (p1) and 2 px (p2) smaller at ES only: the RV ESV bias is
    negative and equals the mean of the per-case differences; the LV ESV bias is 0."""
    a, b = tmp_path / "readerA", tmp_path / "readerB"
    a.mkdir()
    b.mkdir()
    for case, shrink in (("p1", 1), ("p2", 2)):
        for phase, (r_lv, r_rv) in (("ED", (11.0, 10.0)), ("ES", (7.0, 7.0))):
            lab = _stack(r_lv, r_rv)
            img = np.where(lab == 3, 300.0, np.where(lab > 0, 120.0, 40.0)) + np.arange(lab.size).reshape(lab.shape) % 5
            _save(a / f"{case}_{phase}.nii.gz", img.astype(np.float32))
            _save(a / f"{case}_{phase}_gt.nii.gz", lab)
            _save(b / f"{case}_{phase}.nii.gz", _stack(r_lv, r_rv - shrink) if phase == "ES" else lab)
    out = tmp_path / "r.json"
    assert run_cli(["evaluate", "--pairs", str(a), "--label-map", "rv=1,myo=2,lv=3", "--predicted", str(b), "-o", str(out),
                    "--csv", str(tmp_path / "c.csv"), "--plots", str(tmp_path / "plots")]) == 0
    r = json.loads(out.read_text())
    rows = [c["clinical"] for c in r["cases"] if "clinical" in c]
    d = np.array([c["rv_esv_pred_ml"] - c["rv_esv_ref_ml"] for c in rows])
    ag = r["summary"]["agreement"]
    assert ag["rv_esv"]["n"] == 2 and d.max() < 0 and ag["rv_esv"]["bias"] == pytest.approx(d.mean())
    assert ag["esv"]["bias"] == pytest.approx(0.0, abs=1e-9) and ag["rv_edv"]["bias"] == pytest.approx(0.0, abs=1e-9)
    with open(tmp_path / "c.csv", newline="") as f:
        assert {"rv_esv_pred_ml", "rv_esv_ref_ml"} <= set(next(csv.DictReader(f)))
    assert (tmp_path / "plots" / "bland_altman.png").is_file()


def _reader_study(tmp_path, cases=("p1", "p2", "p3")):
    a, b = tmp_path / "readerA", tmp_path / "readerB"
    a.mkdir()
    b.mkdir()
    for case in cases:
        for phase, (r_lv, r_rv) in (("ED", (11.0, 10.0)), ("ES", (7.0, 7.0))):
            lab = _stack(r_lv, r_rv)
            _save(a / f"{case}_{phase}.nii.gz", np.where(lab > 0, 200.0, 40.0).astype(np.float32))
            _save(a / f"{case}_{phase}_gt.nii.gz", lab)
            _save(b / f"{case}_{phase}.nii.gz", lab)
    return a, b


def test_skip_missing_scores_the_cases_a_reader_has_and_lists_the_others(tmp_path, capsys):
    """Reader B left p3 out: evaluate stopped ('no labels ... for 2 of 6 cases'), so a reader study
    could not be scored until every reader had read every case."""
    a, b = _reader_study(tmp_path)
    for f in b.glob("p3_*"):
        f.unlink()
    out = tmp_path / "r.json"
    args = ["evaluate", "--pairs", str(a), "--label-map", "rv=1,myo=2,lv=3", "--predicted", str(b), "-o", str(out)]
    assert run_cli(args) == 1
    assert "--skip-missing" in " ".join(capsys.readouterr().err.split()) and not out.exists()
    assert run_cli([*args, "--skip-missing"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "no labels in --predicted, not scored (--skip-missing): 2 cases: p3 ED; p3 ES" in err
    r = json.loads(out.read_text())
    assert r["summary"]["n_cases"] == 4 and {c["case"] for c in r["cases"]} == {"p1", "p2"}
    assert [c["case"] for c in r["summary"]["not_in_predicted"]["cases"]] == ["p3", "p3"]
    assert "failed_in_batch" not in r["summary"] and r["summary"]["dice"]["lv"] == pytest.approx(1.0)


def test_skip_missing_without_predicted_or_with_nothing_there_is_one_line(tmp_path, capsys):
    a, b = _reader_study(tmp_path, cases=("p1",))
    assert run_cli(["evaluate", "--pairs", str(a), "--label-map", "rv=1,myo=2,lv=3", "--skip-missing", "-o", str(tmp_path / "x.json")]) == 1
    assert "--skip-missing goes with --predicted" in capsys.readouterr().err
    for f in b.iterdir():
        f.unlink()
    assert run_cli(["evaluate", "--pairs", str(a), "--label-map", "rv=1,myo=2,lv=3", "--predicted", str(b), "--skip-missing",
                    "-o", str(tmp_path / "x.json")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and "2 not there" in err and "nothing to score" in err and not (tmp_path / "x.json").exists()


def test_evaluate_pairs_takes_a_label_map_text_as_a_notebook_gives_it(tmp_path):
    """evaluate_pairs(pairs, "rv=1,myo=2,lv=3", ...) failed with AttributeError: 'str' object has
    no attribute 'values' deep in the scoring."""
    from medseg.evaluation import evaluate_pairs, read_pairs, with_predictions

    a, b = _reader_study(tmp_path, cases=("p1",))
    pairs = with_predictions(read_pairs(str(a)), str(b))
    r = evaluate_pairs(pairs, "rv=1,myo=2,lv=3", None, None, predicted_map="rv=1,myo=2,lv=3")
    assert r["summary"]["n_cases"] == 2 and r["summary"]["dice"]["lv"] == pytest.approx(1.0)


def test_result_created_is_utc_with_its_zone(tmp_path, monkeypatch):
    """RESULT.json's `created` was the machine's local time with no zone, as measure's was."""
    import time

    monkeypatch.setenv("TZ", "Etc/GMT-14")  # UTC+14: a local time would be 14 h ahead
    time.tzset()
    try:
        from medseg.evaluation import evaluate_pairs, read_pairs, with_predictions

        a, b = _reader_study(tmp_path, cases=("p1",))
        r = evaluate_pairs(with_predictions(read_pairs(a), b), "rv=1,myo=2,lv=3", None, None)
        created = r["settings"]["created"]
        assert created.endswith("Z")
        lag = time.time() - time.mktime(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")) - 14 * 3600
        assert abs(lag) < 120  # strptime + local mktime: UTC read as UTC+14 is 14 h behind
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

"""A reader study with ``medseg evaluate --predicted``: reader B's labels scored against reader
A's (no model). Synthetic short-axis stacks: an LV disk in a myocardial ring, an RV beside it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

LMAP = "rv=1,myo=2,lv=3"
AFF = np.diag([1.5, 1.5, 8.0, 1.0])


def _stack(r_lv: float, z: int = 6, n: int = 48) -> np.ndarray:
    """(Z, Y, X) labels: LV disk of radius ``r_lv`` px, myocardium 4 px thick, RV to its left."""
    yy, xx = np.mgrid[:n, :n]
    d = np.hypot(yy - n / 2, xx - n / 2)
    sl = np.zeros((n, n), np.uint8)
    sl[np.hypot(yy - n / 2, xx - (n / 2 - r_lv - 10)) < 8] = 1
    sl[d < r_lv + 4] = 2
    sl[d < r_lv] = 3
    return np.repeat(sl[None], z, axis=0)


def _save(path: Path, arr: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(arr).T.copy(), AFF), str(path))
    return path


@pytest.fixture()
def study(tmp_path):
    """Images with reader A's labels beside them (p1, p2 ED/ES) and reader B's folder (LV 1 px
    smaller at ED in p1, 2 px in p2): reader B's EDV and EF read low."""
    a, b = tmp_path / "readerA", tmp_path / "readerB"
    a.mkdir()
    b.mkdir()
    for case, shrink in (("p1", 1), ("p2", 2)):
        for phase, r in (("ED", 11.0), ("ES", 7.0)):
            lab = _stack(r)
            img = np.where(lab == 3, 300.0, np.where(lab > 0, 120.0, 40.0)) + np.arange(lab.size).reshape(lab.shape) % 5
            _save(a / f"{case}_{phase}.nii.gz", img.astype(np.float32))
            _save(a / f"{case}_{phase}_gt.nii.gz", lab)
            _save(b / f"{case}_{phase}.nii.gz", _stack(r - shrink) if phase == "ED" else lab)
    return a, b


def _evaluate(pairs: Path, predicted: Path, out: Path, *extra: str) -> dict:
    assert run_cli(["evaluate", "--pairs", str(pairs), "--label-map", LMAP, "--predicted", str(predicted), "-o", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_reader_vs_reader_names_what_was_compared_and_gives_esv(study, tmp_path, capsys):
    """The console said "LVEF medseg - reference" of two human readers, RESULT.json did not say
    which labels were the reference, and the Bland-Altman statistics had no ESV."""
    a, b = study
    r = _evaluate(a, b, tmp_path / "r.json", "--csv", str(tmp_path / "c.csv"))
    err = " ".join(capsys.readouterr().err.split())
    assert "LVEF readerB - reference: bias -" in err and "medseg - reference" not in err
    assert f"labels in {b} against the reference labels of {a}" in err
    compared = r["settings"]["compared"]
    assert compared["difference"] == "readerB - reference" and compared["scored"] == str(b.resolve())
    from medseg.evaluation_report import difference_name

    assert difference_name(r["settings"]) == ("readerB", "reference") and difference_name({}) == ("medseg", "reference")
    esv = r["summary"]["agreement"]["esv"]
    rows = [c["clinical"] for c in r["cases"] if "clinical" in c]
    d = np.array([c["esv_pred_ml"] - c["esv_ref_ml"] for c in rows])
    assert esv["n"] == 2 and esv["bias"] == pytest.approx(d.mean())  # ES labels identical: no ESV difference
    assert esv["bias"] == pytest.approx(0.0, abs=1e-9)
    with open(tmp_path / "c.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert {"esv_pred_ml", "esv_ref_ml"} <= set(table[0]) and len(table) == 4


def test_reader_b_vs_a_mirrors_a_vs_b(study, tmp_path, capsys):
    """Swapping the readers gives the same Dice and the opposite bias (the phases from the names)."""
    a, b = study
    ab = _evaluate(a, b, tmp_path / "ab.json")
    # B as the reference: B's labels beside the images, A's (named as the images) as the predicted folder
    b_ref, a_pred = tmp_path / "b_ref", tmp_path / "a_pred"
    b_ref.mkdir()
    a_pred.mkdir()
    for f in b.iterdir():
        (b_ref / f.name).write_bytes((a / f.name).read_bytes())
        (b_ref / f.name.replace(".nii.gz", "_gt.nii.gz")).write_bytes(f.read_bytes())
        (a_pred / f.name).write_bytes((a / f.name.replace(".nii.gz", "_gt.nii.gz")).read_bytes())
    ba = _evaluate(b_ref, a_pred, tmp_path / "ba.json")
    assert ab["summary"]["dice"] == pytest.approx(ba["summary"]["dice"])
    for k, st in ab["summary"]["agreement"].items():
        assert ba["summary"]["agreement"][k]["bias"] == pytest.approx(-st["bias"]), k


def test_a_label_value_one_reader_used_is_said(study, tmp_path, capsys):
    """Reader B's file held a value the label map does not name (4: papillary muscles drawn as a
    class of their own): evaluate dropped it without a word."""
    a, b = study
    lab = np.asarray(nib.load(b / "p1_ED.nii.gz").dataobj).T.copy()
    lab[2, 24:26, 24:26] = 4
    _save(b / "p1_ED.nii.gz", lab)
    r = _evaluate(a, b, tmp_path / "r.json", "--csv", str(tmp_path / "c.csv"))
    row = next(c for c in r["cases"] if c["case"] == "p1" and c["phase"] == "ED")
    assert row["not_in_label_map"] == {"predicted": ["value 4 (4 voxels)"]}
    assert not any("not_in_label_map" in c for c in r["cases"] if c is not row)
    err = " ".join(capsys.readouterr().err.split())
    assert "not scored (`not_in_label_map`): p1 (predicted value 4 (4 voxels))" in err
    with open(tmp_path / "c.csv", newline="") as f:
        cell = [x["not_in_label_map"] for x in csv.DictReader(f) if x["case"] == "p1" and x["phase"] == "ED"]
    assert cell == ["predicted: value 4 (4 voxels)"]


def test_an_empty_slice_or_lv_of_one_reader_is_flagged_and_counted(study, tmp_path, capsys):
    """Reader B left the LV out of one ED slice of p1 and out of p2's ED entirely: the numbers
    changed with no note, and "LVEF ... over 2 ED/ES cases" averaged one."""
    a, b = study
    for case, zs in (("p1", [3]), ("p2", list(range(6)))):
        lab = np.asarray(nib.load(b / f"{case}_ED.nii.gz").dataobj).T.copy()
        for z in zs:
            lab[z][lab[z] == 3] = 0
        _save(b / f"{case}_ED.nii.gz", lab)
    r = _evaluate(a, b, tmp_path / "r.json")
    flags = {c["case"]: c["measure_flags"] for c in r["cases"] if "measure_flags" in c}
    assert "missing_slice" in flags["p1"]["predicted"] and "reference" not in flags["p1"]
    assert "ef_undefined" in flags["p2"]["predicted"]
    err = " ".join(capsys.readouterr().err.split())
    assert "over 2 ED/ES cases: LVEF" in err and "pts (n=1)" in err
    assert "QC flags of the measurement on one side only (`measure_flags`): p1 (predicted" in err

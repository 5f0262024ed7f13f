"""The tables medseg writes, read as a scientist reads them (pandas, R's strictness, the JSON
beside them): one missing-value representation, the same numbers and columns wherever the same
measurement is written, paths that still point at the files when the table is read elsewhere."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from medseg.cli._app import run_cli

SAX = "lv=1,myo=2,rv=3"


def _sax_case(folder, case, seed=0):
    """``<case>.nii.gz`` (a one-frame short-axis phantom image) and ``<case>_gt.nii.gz`` (its labels)."""
    from medseg.io import write_labels
    from medseg.io.geometry import medseg_to_nifti
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=1, n_slices=6, shape=(64, 64), seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(medseg_to_nifti(ph.image.array.astype(np.float32), 3), ph.image.affine), str(folder / f"{case}.nii.gz"))
    write_labels(ph.labels, ph.image, folder / f"{case}_gt.nii.gz", SAX)
    return folder / f"{case}.nii.gz", folder / f"{case}_gt.nii.gz"


def _echo_views(folder, spacing=0.6):
    """An echo study's four apical views as medseg label files (NIfTI + sidecar, lv=1, myo=2, la=4),
    named as ``batch`` names its cases: ``e1_4CH_ED.nii.gz`` etc."""
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for view, name in (("a4c", "4CH"), ("a2c", "2CH")):
        ph = echo_apical_phantom(view, n_frames=8, shape=(96, 96), spacing=spacing, seed=3)
        for phase in ("ED", "ES"):
            t = ph.info[f"{phase.lower()}_frame"]
            like = ph.image.with_array(ph.image.array[t : t + 1], frame_times_s=None)
            lab = np.where(np.isin(ph.labels[t : t + 1], (1, 2, 4)), ph.labels[t : t + 1], 0).astype(np.uint8)
            paths[(name.lower(), phase)] = write_labels(lab, like, folder / f"e1_{name}_{phase}.nii.gz", "lv=1,myo=2,la=4")[0]
    return paths


def _strict_rows(path):
    """The rows of a CSV as R's read.csv takes them: every row as many fields as the header."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert {len(r) for r in rows} == {len(rows[0])}, f"{path}: rows of different lengths"
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_summary_json_writes_a_missing_number_as_null(tmp_path):
    """summary.json: a failed case's confidence and review state, and a measure a case lacks (an
    echo view without pixel spacing has no EDV), are null, not "" (summary.csv keeps them empty):
    ``pd.DataFrame(summary["cases"])["confidence"].mean()`` raised TypeError on the ""."""
    pd = pytest.importorskip("pandas")
    from medseg.batch import write_summary

    results = [
        {"case": "ok1", "status": "ok", "needs_review": False, "confidence": 0.91, "seconds": 1.5, "output": "o.nii.gz",
         "input": "i.nii.gz", "reason": "", "measures": {"lv.edv_ml": 120.5, "lv.ef_pct": 55.25}},
        {"case": "echo", "status": "ok", "needs_review": True, "confidence": 0.8, "seconds": 0.5, "output": "e.nii.gz",
         "input": "e.png", "reason": "", "measures": {"lv.edv_ml": "", "lv.ef_pct": 60.0}},
        {"case": "bad", "status": "failed", "reason": "cannot read it", "seconds": 0.0, "output": "", "input": "bad.nii.gz"},
    ]
    csv_path, json_path = write_summary(tmp_path, results)
    cases = {r["case"]: r for r in json.loads(json_path.read_text())["cases"]}
    assert cases["bad"]["confidence"] is None and cases["bad"]["needs_review"] is None
    assert cases["bad"]["lv.edv_ml"] is None and cases["echo"]["lv.edv_ml"] is None and cases["ok1"]["lv.edv_ml"] == 120.5
    assert cases["bad"]["reason"] == "cannot read it" and cases["bad"]["output"] == ""  # text stays text
    df = pd.DataFrame(json.loads(json_path.read_text())["cases"]).set_index("case")
    assert df["confidence"].mean() == pytest.approx((0.91 + 0.8) / 2) and df["lv.edv_ml"].mean() == 120.5
    rows = {r["case"]: r for r in _strict_rows(csv_path)}
    assert rows["bad"]["confidence"] == "" and rows["echo"]["lv.edv_ml"] == "" and rows["ok1"]["lv.ef_pct"] == "55.25"


def test_evaluate_predicted_records_absolute_prediction_paths(tmp_path, monkeypatch):
    """``evaluate --predicted OUT`` given a relative folder records each case's prediction as an
    absolute path, as it records the image and the label: RESULT.json and CASES.csv said
    ``pred/p1.nii.gz``, which read from another folder points nowhere."""
    pd = pytest.importorskip("pandas")
    pairs = tmp_path / "pairs"
    _, ref = _sax_case(pairs, "p1")
    pred = tmp_path / "pred"
    pred.mkdir()
    nib.save(nib.load(str(ref)), str(pred / "p1.nii.gz"))  # the reference as the prediction: another tool's file
    monkeypatch.chdir(tmp_path)
    assert run_cli(["evaluate", "--pairs", "pairs", "--label-map", SAX, "--predicted", "pred", "-o", "r.json", "--csv", "cases.csv"]) == 0
    case = json.loads((tmp_path / "r.json").read_text())["cases"][0]
    want = str((pred / "p1.nii.gz").resolve())
    assert case["prediction"] == want and case["image"] == str((pairs / "p1.nii.gz").resolve())
    assert case["dice"] == {"lv": 1.0, "myo": 1.0, "rv": 1.0}
    assert pd.read_csv(tmp_path / "cases.csv")["prediction"].tolist() == [want]


def test_cohort_echo_rows_have_the_spacing_measure_gives(tmp_path):
    """A batch's echo study row (its four apical views) and an echo clip's row give the report's
    ``spacing_mm`` as ``medseg measure`` does (it was empty in cohort.csv for every echo row, and
    filled in measure's CSV), and every other column of the study row equals measure's CSV."""
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure, _measure_echo_study
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    views = _echo_views(tmp_path / "out")
    row = _measure_echo_study(views)["cohort_row"]
    assert run_cli(["measure", "--ed", str(views[("4ch", "ED")]), "--es", str(views[("4ch", "ES")]), "--a2c-ed", str(views[("2ch", "ED")]),
                    "--a2c-es", str(views[("2ch", "ES")]), "-o", str(tmp_path / "m.json"), "--csv", str(tmp_path / "m.csv")]) == 0
    (measured,) = _strict_rows(tmp_path / "m.csv")
    report = json.loads((tmp_path / "m.json").read_text())
    assert row["spacing_mm"] == measured["spacing_mm"] == "1.0 0.6 0.6" and report["spacing_mm"] == pytest.approx([1.0, 0.6, 0.6])
    same = [k for k in measured if k in row and not k.startswith("inputs.")]
    cell = {True: "TRUE", False: "FALSE"}  # a boolean as the CSV writes it (R reads it as logical)
    assert len(same) > 20 and {k: cell[row[k]] if isinstance(row[k], bool) else str(row[k]) for k in same} == {k: measured[k] for k in same}

    ph = echo_apical_phantom("a4c", n_frames=6, shape=(96, 96), spacing=0.5, seed=1)  # one view over the cycle
    clip = write_labels(np.where(np.isin(ph.labels, (1, 2, 4)), ph.labels, 0).astype(np.uint8), ph.image, tmp_path / "out" / "c1.nii.gz",
                        "lv=1,myo=2,la=4")[0]
    assert _measure(clip, BatchOptions(out_dir=str(tmp_path / "out"), measure=True), "c1")["cohort_row"]["spacing_mm"] == "1.0 0.5 0.5"


def test_an_echo_clip_row_leaves_its_curve_out_as_a_cine_row_does(tmp_path):
    """``measure --csv`` of one apical view over the cycle: the per-frame curves stay in the JSON
    (``volume_curve_ml`` and ``volume_curve_rel``) and out of the one-row CSV, as a short-axis
    cine's curve does; the row held ``volume_curve_rel.lv`` = "1.0 0.83 ... 0.55  0.84" (a frame
    without the LV as two spaces), a cell no statistics package reads as numbers. ED and ES, EF
    and volumes in the row equal the JSON's."""
    pd = pytest.importorskip("pandas")
    from medseg.io import write_labels
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=8, shape=(96, 96), spacing=0.5, seed=1)
    lab = np.where(np.isin(ph.labels, (1, 2, 4)), ph.labels, 0).astype(np.uint8)
    lab[5][lab[5] == 1] = 0  # a frame without the LV: a gap in the curve
    clip = write_labels(lab, ph.image, tmp_path / "clip.nii.gz", "lv=1,myo=2,la=4")[0]
    assert run_cli(["measure", str(clip), "-o", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["volume_curve_rel"]["lv"][5] is None and len(report["volume_curve_ml"]["lv"]) == 8
    (row,) = _strict_rows(tmp_path / "r.csv")
    assert not [k for k in row if k.startswith(("volume_curve", "frame_times"))]
    df = pd.read_csv(tmp_path / "r.csv")
    assert df["ed_frame"][0] == report["ed_frame"] and df["es_frame"][0] == report["es_frame"]
    for key in ("edv_ml", "esv_ml", "ef_pct"):
        assert df[f"lv.{key}"][0] == pytest.approx(report["lv"][key], abs=1e-4)


@pytest.mark.parametrize("command", ["measure", "evaluate"])
@pytest.mark.parametrize(("report", "table", "said"), [
    ("results.csv", None, "the report (-o) is JSON; name it .json"),
    ("r.json", "cases.xlsx", "--csv writes a plain CSV table"),
    ("r.json", "cases.json", "--csv writes a plain CSV table"),
])
def test_a_table_named_as_another_format_is_refused(tmp_path, capsys, command, report, table, said):
    """``-o results.csv`` wrote the JSON report into a .csv (pandas read it as a one-column table
    of braces) and ``--csv cases.xlsx`` a CSV Excel calls damaged: one line, exit 1, nothing written."""
    pairs = tmp_path / "pairs"
    image, ref = _sax_case(pairs, "p1")
    args = ([str(ref), "--label-map", SAX] if command == "measure" else
            ["--pairs", str(pairs), "--label-map", SAX, "--predicted", str(pairs / "pred")])
    if command == "evaluate":
        (pairs / "pred").mkdir()
        nib.save(nib.load(str(ref)), str(pairs / "pred" / "p1.nii.gz"))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [command, *args, "-o", str(tmp_path / report), *(["--csv", str(tmp_path / table)] if table else [])]
    assert run_cli(argv) == 1
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before

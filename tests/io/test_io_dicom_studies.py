"""DICOM studies through the commands: a folder of echo clips and a study's series folders as
batch cases, --series over patient folders, evaluate on a study folder, DICOM SEG output of a
batch, height / weight / sex from the header for batch --measure and measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_synth import write_cine_series, write_us_clip

from medseg.errors import ImageReadError
from medseg.io import read_volume


def test_a_folder_of_echo_clips_is_a_case_per_clip(tmp_path):
    """An echo machine exports a study as a folder of clips (patient/study/clips): `batch` takes
    each clip as a case (the folder was one case that failed: "mixes multi-frame files with
    other images"), and reading the folder says it holds clips, one to open at a time."""
    from medseg.batch import discover_cases

    study = tmp_path / "in" / "echo study"
    study.mkdir(parents=True)
    write_us_clip(study / "A4C.dcm")
    write_us_clip(study / "IM_0002")  # no extension, as many exports
    with pytest.raises(ImageReadError, match=r"holds 2 multi-frame clips .* each a recording of its own") as err:
        read_volume(study)
    assert "other images" not in str(err.value)
    cases = discover_cases(tmp_path / "in")
    assert sorted(Path(c.input).name for c in cases) == ["A4C.dcm", "IM_0002"] and len({c.case for c in cases}) == 2
    write_cine_series(tmp_path / "in2" / "cine", n_slices=2, n_phases=1)  # an ordinary series folder stays one case
    assert [c.case for c in discover_cases(tmp_path / "in2")] == ["cine"]


def test_batch_series_reads_the_named_series_of_every_patient_folder(tmp_path):
    """`medseg batch EXPORT --series sax`: each patient's study folder holds a cine and a
    localizer; the cine of each is segmented (random pixels: a box prompt, zero-click finds no
    heart there), and the series is part of the provenance."""
    import json

    from medseg.cli import run_cli

    for i, pat in enumerate(("pat1", "pat2")):
        write_cine_series(tmp_path / "in" / pat, n_slices=3, n_phases=1, rows=24, cols=20, description="CINE SAX", prefix="A_",
                          series_number=7, seed=i)
        write_cine_series(tmp_path / "in" / pat, n_slices=1, n_phases=1, rows=16, cols=16, description="LOCALIZER", prefix="B_", series_number=1)
    assert run_cli(["batch", str(tmp_path / "in"), "--auto", "-o", str(tmp_path / "plain")]) == 1  # mixed folders fail, in one line each
    rows = json.loads((tmp_path / "plain" / "summary.json").read_text())["cases"]
    assert all(r["status"] == "failed" and "--series" in r["reason"] for r in rows)
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 1, "box": [6, 5, 17, 14]}]}))
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "--series", "sax", "-o", str(tmp_path / "out")]) == 0
    for pat in ("pat1", "pat2"):
        side = json.loads((tmp_path / "out" / f"{pat}.json").read_text())
        assert side["provenance"]["series"] == "sax" and side["provenance"]["input_shape"] == [1, 3, 24, 20]


def test_batch_series_skips_the_other_series_folders_of_a_study(tmp_path):
    """A study exported one folder per series (a CD's PT/ST/SE layout): with `--series sax`,
    the localizer's folder is skipped, not failed, so the batch exits 0 when every cine is
    segmented; a case whose own selector misses still fails."""
    import json

    from medseg.cli import run_cli

    write_cine_series(tmp_path / "in" / "pat1" / "SE1", n_slices=3, n_phases=1, rows=24, cols=20, description="CINE SAX", series_number=7)
    write_cine_series(tmp_path / "in" / "pat1" / "SE2", n_slices=1, n_phases=1, rows=16, cols=16, description="LOCALIZER", series_number=1)
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 1, "box": [6, 5, 17, 14]}]}))
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "--series", "sax", "-o", str(tmp_path / "out")]) == 0
    rows = {r["case"]: r for r in json.loads((tmp_path / "out" / "summary.json").read_text())["cases"]}
    assert {k: r["status"] for k, r in rows.items()} == {"SE1": "ok", "SE2": "skipped"}
    assert "not the series --series names" in rows["SE2"]["reason"] and not (tmp_path / "out" / "SE2.nii.gz").exists()


def test_batch_takes_a_study_exported_one_series_folder_per_slice_as_one_case(tmp_path):
    """`medseg batch EXPORT`: a patient whose short-axis cine was exported one series (one
    folder) per slice is one case, segmented as a stack, also beside a long-axis series (which
    stays a case of its own); a patient with one ordinary series folder stays a case of that
    folder, as before."""
    import json

    from medseg.batch import discover_cases
    from medseg.cli import run_cli

    for z in range(3):
        write_cine_series(tmp_path / "in" / "pat1" / f"sax_{z}", n_slices=1, n_phases=1, rows=24, cols=20, description=f"SAX {z}",
                          first_slice=z, study_uid="1.2.3.81", seed=z)
    write_cine_series(tmp_path / "in" / "pat2" / "cine", n_slices=3, n_phases=1, rows=24, cols=20, description="CINE SAX")
    cases = discover_cases(tmp_path / "in")
    assert [(c.case, c.input) for c in cases] == [("cine", str(tmp_path / "in" / "pat2" / "cine")), ("pat1", str(tmp_path / "in" / "pat1"))]
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "slice": 1, "box": [6, 5, 17, 14]}]}))
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(tmp_path / "out")]) == 0
    side = json.loads((tmp_path / "out" / "pat1.json").read_text())
    assert side["provenance"]["input_shape"] == [1, 3, 24, 20]
    # a study with a long-axis series beside its slice series: --series names the stack
    for z in range(3):
        write_cine_series(tmp_path / "in" / "pat3" / f"sax_{z}", n_slices=1, n_phases=1, rows=24, cols=20, description=f"SAX {z}",
                          first_slice=z, study_uid="1.2.3.83", seed=z)
    write_cine_series(tmp_path / "in" / "pat3" / "la", n_slices=1, n_phases=1, rows=16, cols=16, description="CINE 4CH", study_uid="1.2.3.83")
    cases = {c.case: c for c in discover_cases(tmp_path / "in")}  # the stack's three series, and the long axis alone
    assert sorted(cases) == ["cine", "la", "pat1", "pat3"] and cases["pat3"].series.count("|") == 2 and cases["pat1"].series is None
    assert [c.case for c in discover_cases(tmp_path / "in", series="*sax*")] == ["cine", "pat1", "pat3"]
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "--series", "*sax*", "-o", str(tmp_path / "out3")]) == 0
    assert json.loads((tmp_path / "out3" / "pat3.json").read_text())["provenance"]["input_shape"] == [1, 3, 24, 20]
    assert run_cli(["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(tmp_path / "out4")]) == 1  # la: no slice 1
    rows = {r["case"]: r for r in json.loads((tmp_path / "out4" / "summary.json").read_text())["cases"]}
    assert rows["pat3"]["status"] == "ok" and rows["la"]["status"] == "failed" and "outside" in rows["la"]["reason"]
    assert json.loads((tmp_path / "out4" / "pat3.json").read_text())["provenance"]["input_shape"] == [1, 3, 24, 20]


def test_evaluate_a_folder_whose_study_stack_sits_beside_other_series(tmp_path):
    """`medseg evaluate --pairs FOLDER` finds cases as batch does: a study folder whose slice
    series sit beside a long-axis series is scored on its stack, against the labels beside it
    (`<study>_gt.nii.gz`, not taken for a case of its own)."""
    import json

    from medseg.batch import discover_cases
    from medseg.cli import run_cli

    for z in range(3):
        write_cine_series(tmp_path / "in" / "pat3" / f"sax_{z}", n_slices=1, n_phases=1, rows=48, cols=48, description=f"SAX {z}",
                          first_slice=z, study_uid="1.2.3.85", seed=z)
    write_cine_series(tmp_path / "in" / "pat3" / "la", n_slices=1, n_phases=1, rows=16, cols=16, description="CINE 4CH", study_uid="1.2.3.85")
    (case,) = [c for c in discover_cases(tmp_path / "in") if c.case == "pat3"]
    vol = read_volume(tmp_path / "in" / "pat3", series=case.series)
    lab = np.zeros(vol.grid_shape, np.uint8)
    lab[:, 14:34, 14:34] = 1
    from medseg.io import write_labels

    write_labels(lab, vol, tmp_path / "in" / "pat3_gt.nii.gz", "lv=1")
    (tmp_path / "in" / "pat3_gt.json").unlink()  # as another tool's labels: no sidecar
    assert sorted(c.case for c in discover_cases(tmp_path / "in")) == ["la", "pat3"]
    assert run_cli(["evaluate", "--pairs", str(tmp_path / "in"), "--label-map", "lv=1", "--prompt", "box", "-o", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert [c["case"] for c in res["cases"]] == ["pat3"] and res["cases"][0]["dice"]["lv"] > 0.3


def test_batch_reads_non_conformant_uids_without_warnings(tmp_path):
    """Real exports carry UIDs pydicom calls invalid (a component with a leading zero, as every
    Sunnybrook file has): `medseg batch` finds the cases of such an export without printing a
    pydicom warning per folder."""
    import warnings

    from medseg.batch import discover_cases

    with warnings.catch_warnings():  # writing them warns too (pydicom's validation): not what is tested
        warnings.simplefilter("ignore")
        for pat in ("p1", "p2", "p3"):  # >= 3 folders: the search for a stack among them reads their headers
            write_cine_series(tmp_path / "in" / pat, n_slices=2, n_phases=1, rows=12, cols=10, series_uid=f"1.2.08.{pat[1]}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cases = discover_cases(tmp_path / "in")
    assert [c.case for c in cases] == ["p1", "p2", "p3"]
    assert [str(w.message) for w in caught] == []


def test_batch_dicom_seg_writes_each_dicom_studys_labels_as_seg_and_resume_checks_them(tmp_path, monkeypatch):
    """`medseg batch --dicom-seg`: a DICOM study's labels also as DICOM SEG (one per labelled
    frame) in OUT/<case>_seg/, reading back as the NIfTI's labels on the same frame; a NIfTI
    input gets NIfTI only, with the reason in the summary; --resume redoes a case whose SEG is
    gone; a SEG that fails to write leaves the case ok with its NIfTI and the reason."""
    import json

    import nibabel as nib

    from medseg.cli import run_cli
    from medseg.io import read_label_volume

    write_cine_series(tmp_path / "in" / "pat1", n_slices=3, n_phases=2, rows=24, cols=20, seed=3)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(20, 24, 3)).astype(np.float32), np.eye(4)), str(tmp_path / "in" / "nif.nii.gz"))
    (tmp_path / "p.json").write_text(json.dumps({"prompts": [{"structure": "lv", "frame": 0, "slice": 1, "box": [6, 5, 17, 14]}]}))
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), "--prompts", str(tmp_path / "p.json"), "-o", str(out), "--dicom-seg"]
    assert run_cli(args) == 0
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}
    assert rows["pat1"]["dicom_seg"] == "pat1_frame00.dcm" and rows["nif"]["dicom_seg"].startswith("none: DICOM SEG needs an image read from DICOM")
    seg = read_label_volume(out / "pat1_seg" / "pat1_frame00.dcm")
    nifti = read_label_volume(out / "pat1.nii.gz")
    assert np.array_equal(seg.array[0], nifti.array[0]) and nifti.array[0].any() and seg.same_grid(nifti)
    (out / "pat1_seg" / "pat1_frame00.dcm").unlink()
    assert run_cli([*args, "--resume"]) == 0
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}
    assert (rows["pat1"]["reason"], rows["nif"]["status"]) == ("redone: DICOM SEG file missing", "skipped")
    assert (out / "pat1_seg" / "pat1_frame00.dcm").is_file()
    import medseg.io

    real = medseg.io.write_labels

    def seg_fails(labels, like, path, *a, **k):
        if str(path).endswith(".dcm"):
            raise ValueError("highdicom refused this source")
        return real(labels, like, path, *a, **k)

    monkeypatch.setattr(medseg.io, "write_labels", seg_fails)
    out2 = tmp_path / "out2"
    assert run_cli([*args[:-2], str(out2), "--dicom-seg"]) == 0
    rows = {r["case"]: r for r in json.loads((out2 / "summary.json").read_text())["cases"]}
    assert rows["pat1"]["status"] == "ok" and rows["pat1"]["dicom_seg"] == "none: writing it failed: highdicom refused this source"
    assert (out2 / "pat1.nii.gz").is_file() and not (out2 / "pat1_seg").exists()


def test_body_data_of_a_dicom_study_index_its_cohort_measurements(tmp_path):
    """`batch --measure` of a DICOM study takes height, weight and sex from its header
    (PatientSize m, PatientWeight kg, PatientSex) for BSA and indexed values; a subjects row's
    values win field by field; placeholders (size 0) are left out; cohort.csv says which came
    from the header (`dicom_body`)."""
    from medseg.batch import BatchOptions
    from medseg.batch.cohort import _measure
    from medseg.io import write_labels
    from medseg.io.dicom import dicom_body
    from medseg.phantoms import cine_sax_phantom
    from medseg.subjects import Subject

    series = write_cine_series(tmp_path / "pat", n_slices=2, n_phases=1)
    for f in series.folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientSize, ds.PatientWeight, ds.PatientSex = "1.80", "80", "F"
        ds.save_as(f)
    assert dicom_body(series.folder) == {"height_cm": 180.0, "weight_kg": 80.0, "sex": "F"}
    assert dicom_body(tmp_path) == dicom_body(series.folder)  # a study folder: its series sub-folder
    assert read_volume(series.folder).meta["patient_body"] == dicom_body(series.folder)  # napari's measurement panel takes it
    ph = cine_sax_phantom(n_frames=6, n_slices=5, shape=(64, 64), seed=3)
    out = tmp_path / "pat.nii.gz"
    write_labels(ph.labels, ph.image, out, ph.label_map)
    row = _measure(out, BatchOptions(out_dir=tmp_path, measure=True), "pat", str(series.folder))["cohort_row"]
    assert row["bsa_m2"] == pytest.approx(2.0, abs=1e-4) and row["sex"] == "female" and row["dicom_body"] == "height_cm weight_kg sex"
    opts = BatchOptions(out_dir=tmp_path, measure=True, subjects=(Subject("pat", None, 90.0),))
    row = _measure(out, opts, "pat", str(series.folder))["cohort_row"]
    assert row["bsa_m2"] == pytest.approx((180 * 90 / 3600) ** 0.5, abs=1e-4) and (row["subject"], row["dicom_body"]) == ("pat", "height_cm sex")
    for f in series.folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientSize = "0"
        ds.save_as(f)
    assert dicom_body(series.folder) == {"weight_kg": 80.0, "sex": "F"} and dicom_body(out) == {}


def test_measure_of_labels_takes_body_data_from_their_dicom_images_header(tmp_path):
    """`medseg measure LABELS` of labels segmented from a DICOM cine (their sidecar names it):
    height, weight and sex not typed come from its header, and the report says which."""
    import json

    from medseg.cli import run_cli
    from medseg.io import write_labels

    series = write_cine_series(tmp_path / "cine", n_slices=3, n_phases=2, rows=24, cols=20)
    for f in series.folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientSize, ds.PatientWeight, ds.PatientSex = "1.80", "80", "F"
        ds.save_as(f)
    vol = read_volume(series.folder)
    yy, xx = np.mgrid[:24, :20]
    lab = np.zeros(vol.shape, np.uint8)
    for t, r in enumerate((7.0, 5.0)):  # a bigger cavity at frame 0 (ED)
        ring = (yy - 12) ** 2 + (xx - 10) ** 2
        lab[t, :, ring <= (r + 2) ** 2] = 2
        lab[t, :, ring <= r ** 2] = 1
    out = tmp_path / "seg.nii.gz"
    write_labels(lab, vol, out, "lv=1,myo=2", provenance={"input": str(series.folder)})
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["bsa_m2"] == pytest.approx(2.0, abs=1e-4) and rep["sex"] == "female"
    assert rep["inputs"]["body_from_dicom"] == ["height_cm", "weight_kg", "sex"]
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r2.json"), "--weight-kg", "45"]) == 0
    rep = json.loads((tmp_path / "r2.json").read_text())
    assert rep["bsa_m2"] == pytest.approx(1.5, abs=1e-4) and rep["inputs"]["body_from_dicom"] == ["height_cm", "sex"]

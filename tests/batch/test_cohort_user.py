"""`medseg batch` as a cohort user meets it: reference labels whose image is missing from a
study folder, a resume after a run stopped mid-case (label file there, sidecar not), and the
line Ctrl-C leaves. Tiny phantom studies (1, 6, 96, 96); one check runs the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from batch_data import MAP, write_case

from medseg.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _labels_without_sidecar(studies: Path, case: str, folder: Path, name: str) -> Path:
    """The phantom's reference labels as another tool saves them (no medseg sidecar JSON)."""
    import nibabel as nib

    src = nib.load(str(studies / f"{case}_gt.nii.gz"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nib.save(nib.Nifti1Image(np.asarray(src.dataobj).astype(np.uint8), src.affine), str(path))
    return path


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    write_case(folder, "c1", seed=3)
    return folder


# --- 1. reference labels whose image is not there ---------------------------------------------


def test_labels_whose_image_is_missing_fail_in_one_line(studies, tmp_path, capsys):
    """A patient folder copied without one image: `patient093_frame14_gt.nii.gz` alone is a case
    (it is a reference only beside its image). It was segmented as if it were an image, `ok`,
    and its label map's "volumes" went into cohort.csv and cohort.png. Now it fails, saying
    what it is, before the model loads; exit code 1."""
    inp = tmp_path / "cohort" / "patient093"
    _labels_without_sidecar(studies, "c1", inp, "patient093_frame14_gt.nii.gz")
    out = tmp_path / "out"
    rc = run_cli(["batch", str(tmp_path / "cohort"), "-o", str(out), "--auto", "--measure"])
    err = capsys.readouterr().err
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}
    assert rc == 1
    row = rows["patient093_frame14_gt"]
    assert row["status"] == "failed"
    assert row["reason"].startswith("patient093_frame14_gt.nii.gz holds only the values 0, 1, 2, 3: reference labels, not an image")
    assert "patient093_frame14 is not beside them" in row["reason"]
    assert "failed patient093_frame14_gt: patient093_frame14_gt.nii.gz holds only the values" in err
    assert not (out / "patient093_frame14_gt.nii.gz").exists() and "Traceback" not in err


@pytest.mark.parametrize("name, kind, orphan", [
    ("p1_gt", "labels", True),
    ("p1_manual", "labels", True),  # MS-CMRSeg's reference suffix
    ("p1_gt", "image", False),  # an image that happens to be named so: segmented as before
    ("p1", "labels", False),  # no reference name: a case like any other
    ("_gt", "labels", False),  # the suffix alone names no image
])
def test_reference_without_image_rule(studies, name, kind, orphan):
    import nibabel as nib

    from medseg.batch.cases import CaseSpec, reference_without_image

    path = studies / ("c1_gt.nii.gz" if kind == "labels" else "c1.nii.gz")
    array = np.asarray(nib.load(str(path)).dataobj)
    why = reference_without_image(CaseSpec(name, str(path)), array[None])
    assert (why is not None) == orphan
    if orphan:
        assert f"their image {name.rsplit('_', 1)[0]} is not beside them" in why


# --- 2. what a resume says it did ---------------------------------------------------------------


def test_resume_says_a_case_without_its_sidecar_is_redone(studies, tmp_path):
    """A run stopped while rewriting a case leaves its label file without its sidecar (the
    sidecar goes first). `--resume` redid it with an empty reason, as if it had never run; it now
    says `redone: sidecar missing` (and `label file missing` for the reverse)."""
    from medseg.batch import BatchOptions, CaseSpec, output_problem, run_case

    out = tmp_path / "out"
    case = CaseSpec("c1", str(studies / "c1.nii.gz"), str(studies / "c1_gt.nii.gz"))
    options = BatchOptions(out_dir=str(out), label_map=MAP, key_slice=True, resume=True)
    assert output_problem(case, options) == "no output yet"
    _labels_without_sidecar(studies, "c1", out, "c1.nii.gz")
    assert output_problem(case, options) == "sidecar missing"
    res = run_case(case, options)
    assert (res["status"], res["reason"]) == ("ok", "redone: sidecar missing")
    assert output_problem(case, options) is None  # complete now
    shutil.move(out / "c1.nii.gz", tmp_path / "kept.nii.gz")
    assert output_problem(case, options) == "label file missing"


# --- 3. Ctrl-C -------------------------------------------------------------------------------------


def test_ctrl_c_names_the_summary_as_sigterm_does(studies, tmp_path, monkeypatch, capsys):
    """SIGTERM's line named the summary a stopped batch leaves; Ctrl-C's did not."""
    import medseg.cli.batch_cmd as B

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(B, "_run_with_progress", interrupted)
    out = tmp_path / "out"
    rc = run_cli(["batch", str(studies), "-o", str(out), "--prompts-from", str(studies), "--label-map", MAP])
    err = capsys.readouterr().err
    assert rc == 130
    assert f"interrupted: outputs written so far are complete, summary: {out / 'summary.csv'}; the same command with --resume goes on" in err
    assert err.count("interrupted") == 1


# --- 4. some studies of a larger folder ------------------------------------------------------------


def test_a_folder_of_links_is_a_cohort(studies, tmp_path):
    """docs/batch.md: batch takes one INPUT_DIR, so a selection of studies is linked into one.
    Links to files and to study folders are followed; the summary's input is the link, the
    sidecar's the file it points to."""
    from medseg.batch import BatchOptions, discover_cases, run_case

    patient = tmp_path / "all" / "patient001"
    patient.mkdir(parents=True)
    for name in ("c1.nii.gz", "c1_gt.nii.gz"):
        shutil.copy(studies / name, patient / name.replace("c1", "patient001_frame01"))
    sel = tmp_path / "sel"
    sel.mkdir()
    (sel / "patient001").symlink_to(patient, target_is_directory=True)
    (sel / "single.nii.gz").symlink_to(studies / "c1.nii.gz")
    cases = {c.case: c for c in discover_cases(sel)}
    assert sorted(cases) == ["patient001_frame01", "single"]
    case = cases["patient001_frame01"]
    assert case.input == str(sel / "patient001" / "patient001_frame01.nii.gz") and case.reference is None
    assert case.error is None and cases["single"].input == str(sel / "single.nii.gz")
    refs = {c.case: c for c in discover_cases(sel, prompts_from=sel)}
    res = run_case(refs["patient001_frame01"].absolute(), BatchOptions(out_dir=str(tmp_path / "out"), label_map=MAP, key_slice=True))
    assert res["status"] == "ok" and res["input"] == str(sel / "patient001" / "patient001_frame01.nii.gz")
    prov = json.loads((tmp_path / "out" / "patient001_frame01.json").read_text())["provenance"]
    assert prov["input"] == str((patient / "patient001_frame01.nii.gz").resolve())


def test_a_structure_found_on_no_slice_is_flagged_not_the_whole_case_failed(tmp_path):
    """`batch --auto --structures lv,la` on a short-axis study (no LA): the case failed ("never
    found on any slice: la") and its LV was lost, where `segment` writes the LV and flags
    structure_not_found (la). Now batch does as segment does; a case where nothing asked for is
    found still fails (nothing to write)."""
    inp = tmp_path / "in"
    write_case(inp, "c1", seed=3, n_slices=4)
    (inp / "c1_gt.nii.gz").unlink(), (inp / "c1_gt.json").unlink()
    out = tmp_path / "out"
    assert run_cli(["batch", str(inp), "-o", str(out), "--auto", "--structures", "lv,la"]) == 0
    row = json.loads((out / "summary.json").read_text())["cases"][0]
    assert (row["status"], row["needs_review"], row["review_flags"], row["review_structures"]) == ("ok", True, "structure_not_found", "la")
    from medseg.io import read_label_volume

    lab = read_label_volume(out / "c1.nii.gz")
    side = json.loads((out / "c1.json").read_text())
    assert (np.asarray(lab.array) == side["label_map"]["lv"]).sum() > 100
    assert not (np.asarray(lab.array) == side["label_map"]["la"]).any()
    out2 = tmp_path / "out2"
    assert run_cli(["batch", str(inp), "-o", str(out2), "--auto", "--structures", "la"]) == 1
    row = json.loads((out2 / "summary.json").read_text())["cases"][0]
    assert row["status"] == "failed" and row["reason"] == "structure(s) never found on any slice: la"
    assert not (out2 / "c1.nii.gz").exists()

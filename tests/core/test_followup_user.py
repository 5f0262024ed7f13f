"""A walk through a longitudinal study: each patient scanned at baseline and at follow-up, the
per-patient changes of LVEF, volumes and mass read from ``cohort.csv``.

Before: a patient's visits saved in folders of their own with the same file names
(``subj01/baseline/subj01_frame01``, ``subj01/followup/subj01_frame01``) shared only their ED
frame's name, so only that got the folder prefix; the ES frames (``subj01_frame09``,
``subj01_frame10``) kept their names and were measured together as one study ``subj01``, the
baseline's ES with the follow-up's, and neither visit had an EF row. And a DICOM export's
cohort rows had the study date and UID but no patient id to pair the visits by, when the case
ids are only folder names (``PA0_ST0_SE0``).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg.batch import discover_cases
from medseg.batch.case_names import study_of

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _nifti(path, value: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 2), value, np.int16), np.eye(4)), str(path))


def _studies(root) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in discover_cases(root):
        out.setdefault(study_of(c.case) or c.case, []).append(c.input.split(str(root) + "/", 1)[1])
    return out


def test_visits_in_folders_of_their_own_are_studies_of_their_own(tmp_path):
    for visit, es in (("baseline", "09"), ("followup", "10")):
        for frame in ("01", es):
            _nifti(tmp_path / "subj01" / visit / f"subj01_frame{frame}.nii.gz")
    assert _studies(tmp_path) == {
        "subj01_baseline_subj01": ["subj01/baseline/subj01_frame01.nii.gz", "subj01/baseline/subj01_frame09.nii.gz"],
        "subj01_followup_subj01": ["subj01/followup/subj01_frame01.nii.gz", "subj01/followup/subj01_frame10.nii.gz"]}


def test_echo_views_and_phase_stacks_of_two_visits_keep_their_visit(tmp_path):
    """The baseline has both apical views, the follow-up the 4-chamber only: the baseline's
    2-chamber views (names found once) stay with the baseline's study (biplane), not a study of
    their own; ED/ES stacks likewise."""
    for view in ("4CH", "2CH"):
        for ph in ("ED", "ES"):
            _nifti(tmp_path / "v1" / f"pat_{view}_{ph}.nii.gz")
    for ph in ("ED", "ES"):
        _nifti(tmp_path / "v2" / f"pat_4CH_{ph}.nii.gz")
    _nifti(tmp_path / "m1" / "p7_SA_ED.nii.gz")
    _nifti(tmp_path / "m1" / "p7_SA_ES.nii.gz")
    _nifti(tmp_path / "m2" / "p7_SA_ES.nii.gz")
    studies = _studies(tmp_path)
    assert sorted(studies) == ["m1_p7_SA", "m2_p7_SA", "v1_pat", "v2_pat"]
    assert len(studies["v1_pat"]) == 4 and len(studies["v2_pat"]) == 2 and studies["m2_p7_SA"] == ["m2/p7_SA_ES.nii.gz"]


def test_one_phase_per_folder_stays_one_study(tmp_path):
    """ED and ES kept in folders of their own (one case of the study in each) are still one study."""
    _nifti(tmp_path / "ED" / "p1_ED.nii.gz")
    _nifti(tmp_path / "ES" / "p1_ES.nii.gz")
    assert [c.case for c in discover_cases(tmp_path)] == ["p1_ED", "p1_ES"]


def _dicom(path, patient: str, date: str, z_mm: float = 0.0, study: str | None = None, **tags: str) -> None:
    """A 4 x 4 MR image of ``patient`` with StudyDate ``date`` ("" for none) and other ``tags`` (SeriesDate=...)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MR_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MR_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study or generate_uid(), generate_uid()
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0.0, 0.0, z_mm], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.5, 1.5]
    ds.PatientID, ds.StudyDate, ds.SeriesDescription, ds.Modality = patient, date, "SAX CINE", "MR"
    for tag, value in tags.items():
        setattr(ds, tag, value)
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 16, 15, 0, 1
    ds.PhotometricInterpretation, ds.PixelData = "MONOCHROME2", np.zeros((4, 4), np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_cohort_row_of_a_dicom_study_names_its_patient(tmp_path):
    from medseg.batch.cohort import _subject, _with_subject

    _dicom(tmp_path / "PA0" / "ST1" / "SE0" / "IM00001", "PAT0001", "20121002")
    who = _subject("PA0_ST1_SE0", (), str(tmp_path / "PA0" / "ST1" / "SE0"))
    row = _with_subject({"lv.ef_pct": 32.4}, who)
    assert list(row)[:3] == ["patient_id", "study_date", "study_uid"]
    assert (row["patient_id"], row["study_date"], row["series_description"]) == ("PAT0001", "2012-10-02", "SAX CINE")


def test_measure_report_names_the_dicom_study_its_labels_were_segmented_from(tmp_path):
    """`medseg measure` of each visit's labels: the report (and its one-row CSV) says which
    patient and study they are of, as cohort.csv does, so that reports can be paired by patient."""
    import csv
    import json

    from medseg.cli import run_cli
    from medseg.io import write_labels
    from medseg.phantoms import cine_sax_phantom

    image = tmp_path / "PA0" / "ST1" / "SE0"
    _dicom(image / "IM00001", "PAT0001", "20121002")
    ph = cine_sax_phantom(n_frames=1, n_slices=6, shape=(64, 64), seed=0)
    labels = tmp_path / "out" / "PA0_ST1_SE0.nii.gz"
    labels.parent.mkdir()
    write_labels(ph.labels, ph.image, labels, "lv=1,myo=2,rv=3", provenance={"input": str(image)})
    report, row = tmp_path / "report.json", tmp_path / "row.csv"
    assert run_cli(["measure", str(labels), "-o", str(report), "--csv", str(row)]) == 0
    study = json.loads(report.read_text())["inputs"]["study"]
    assert (study["patient_id"], study["study_date"], study["series_description"]) == ("PAT0001", "2012-10-02", "SAX CINE")
    with open(row, newline="", encoding="utf-8") as f:
        (cells,) = list(csv.DictReader(f))
    assert (cells["inputs.study.patient_id"], cells["inputs.study.study_date"]) == ("PAT0001", "2012-10-02")


def test_a_baseline_and_follow_up_in_one_folder_are_not_stacked_as_one_volume(tmp_path, capsys):
    """Both visits' files copied into one folder: their slices at other positions were stacked
    into one volume (baseline and follow-up as slices of one study); now one line naming the two
    studies and what to do, and `medseg info` lists them, saying batch would not tell them apart."""
    import pytest

    from medseg.cli import run_cli
    from medseg.errors import MixedSeriesError
    from medseg.io import read_volume

    _dicom(tmp_path / "PATA" / "IM1", "PAT0001", "20120315", z_mm=0.0)
    _dicom(tmp_path / "PATA" / "IM2", "PAT0001", "20121002", z_mm=8.0)
    with pytest.raises(MixedSeriesError, match=r"folder holds 2 studies \(PAT0001 2012-03-15 \.\.\.\w+; PAT0001 2012-10-02 .*"
                                               r"put each study's files in a folder of its own"):
        read_volume(tmp_path / "PATA")
    assert run_cli(["info", str(tmp_path / "PATA")]) == 0
    out = capsys.readouterr().out
    assert "2 studies of 1 patient(s), some sharing a folder (this folder)" in out and "PAT0001 2012-10-02" in out
    _dicom(tmp_path / "PATB" / "IM1", "PAT0002", "20120315", z_mm=0.0, study="1.2.3.9")
    _dicom(tmp_path / "PATB" / "IM2", "PAT0002", "20120315", z_mm=8.0, study="1.2.3.9")
    assert read_volume(tmp_path / "PATB").shape[1] == 2  # one study's series still stack

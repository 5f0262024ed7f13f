"""What medseg's outputs hold about the patient (docs/batch.md, *What the outputs hold about the
patient*): a synthetic identifiable DICOM study (PatientName, birth date, accession number,
institution, physicians, ...) through `medseg batch`; only the DICOM SEG and SR copy the patient
and study modules, and neither a NIfTI label file nor METHODS.md carries what a source header,
a failure's reason or a local path puts in their way."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from medseg.cli import run_cli

if (_IO := str(Path(__file__).resolve().parents[1] / "io")) not in sys.path:
    sys.path.insert(0, _IO)
from io_synth import write_cine_series, write_phantom_cine_series  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[2]
#: the header values no output but the DICOM SEG and SR may hold (the patient's name, birth date, ...)
PRIVATE = {"PatientName": "DOE^JOHN", "PatientBirthDate": "19530417", "AccessionNumber": "ACC98765",
           "ReferringPhysicianName": "HOUSE^GREGORY", "OtherPatientIDs": "OTHERID55"}
#: written nowhere, the SEG and SR included (their equipment module names medseg)
NOWHERE = {"InstitutionName": "St. Elsewhere Hospital", "InstitutionAddress": "1 Main Street Springfield",
           "OperatorsName": "NURSE^JACKIE", "PerformingPhysicianName": "CUDDY^LISA", "StationName": "MRC40123"}
TAGS = {**PRIVATE, **NOWHERE, "PatientID": "MRN123456", "PatientSex": "M", "PatientAge": "073Y", "PatientSize": "1.81",
        "PatientWeight": "82", "StudyDate": "20260315", "SeriesDate": "20260315"}


def _retag(folder: Path, **tags: str) -> None:
    for f in folder.iterdir():
        ds = dcmread(f)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(f, enforce_file_format=True)


def _words(text: str) -> list[str]:
    """The values of PRIVATE and NOWHERE (and the birth date as medseg would write a date) found in ``text``."""
    values = [*PRIVATE.values(), *NOWHERE.values(), "1953-04-17", "DOE"]
    return [v for v in values if v in text]


@pytest.fixture(scope="module")
def kept_study(tmp_path_factory) -> tuple[Path, Path]:
    """A phantom cine with every identifying tag filled, its labels saved as `segment`'s (kept by
    --resume: nothing is segmented), through batch --measure --pdf --review-png --dicom-seg."""
    from medseg._files import sha256_path
    from medseg.io import read_volume, write_labels

    root = tmp_path_factory.mktemp("kept")
    case = root / "in" / "S01" / "SAX"
    ph = write_phantom_cine_series(case, "1.2.826.0.1.3680043.8.498.1111")
    _retag(case, **TAGS)
    out = root / "out"
    write_labels(ph.labels, read_volume(case), out / "SAX.nii.gz", ph.label_map,
                 provenance={"command": "segment", "input": str(case), "input_sha256": sha256_path(case)})
    args = ["batch", str(root / "in"), "-o", str(out), "--auto", "--measure", "--pdf", "--review-png", "--dicom-seg", "--resume"]
    assert run_cli(args) == 0
    return case, out


def test_only_the_dicom_seg_and_sr_copy_the_patient_and_study_modules(kept_study):
    _, out = kept_study
    for f in [*sorted((out / "SAX_seg").glob("SAX_frame*.dcm"))[:1], out / "SAX_seg" / "SAX_sr.dcm"]:
        ds = dcmread(f, stop_before_pixels=True)
        assert all(str(ds.get(k, "")) == v for k, v in PRIVATE.items() if k != "OtherPatientIDs"), f.name
        assert ds.PatientID == "MRN123456" and ds.StudyDate == "20260315"
        assert all(k not in ds for k in (*NOWHERE, "OtherPatientIDs")), f.name


def test_labels_sidecars_tables_sheet_and_methods_hold_no_name_birth_date_or_institution(kept_study):
    from PIL import Image

    case, out = kept_study
    texts = {p.relative_to(out).as_posix(): p.read_text(encoding="utf-8")
             for p in [*out.glob("*.json"), *out.glob("*.csv"), *out.glob("*.md"), *out.glob("*_seg/*.json"), *out.glob("measured/*.json")]}
    assert {"SAX.json", "summary.json", "summary.csv", "cohort.csv", "METHODS.md", "measured/SAX.json"} <= set(texts)
    texts["SAX.nii.gz"] = gzip.decompress((out / "SAX.nii.gz").read_bytes()).decode("latin-1")
    sheet = Image.open(out / "SAX_review.png")
    texts["SAX_review.png"] = json.dumps({k: str(v) for k, v in sheet.info.items()})
    if shutil.which("pdftotext"):
        texts["pdf/SAX.pdf"] = subprocess.run(["pdftotext", str(out / "pdf" / "SAX.pdf"), "-"], capture_output=True, text=True, check=True).stdout
        assert "MRN123456" in texts["pdf/SAX.pdf"]  # the page's header names the patient by id, as a clinical report
    assert {name: _words(t) for name, t in texts.items() if _words(t)} == {}
    # what they do hold: the sidecar the input's path (a replay reads it again), cohort.csv the ids that pair visits
    assert Path(json.loads(texts["SAX_seg/SAX_frame00.json"])["provenance"]["input"]).resolve() == case.resolve()
    assert "MRN123456" not in texts["SAX.json"] and "MRN123456" not in texts["METHODS.md"]
    row = next(csv.DictReader((out / "cohort.csv").open(encoding="utf-8")))
    assert (row["patient_id"], row["study_date"], row["sex"], row["dicom_body"] != "") == ("MRN123456", "2026-03-15", "male", True)


def test_nifti_labels_of_a_nifti_image_carry_none_of_its_header_extensions_or_text_fields(tmp_path):
    """A NIfTI whose converter kept the DICOM header in an extension (dcmstack's DcmMeta, NIFTI_ECODE_DICOM)
    or a name in Analyze's db_name: the labels get its grid, not those (they copied every extension)."""
    import nibabel as nib
    from nibabel.nifti1 import Nifti1Extension

    from medseg.io import read_volume, write_labels

    img = nib.Nifti1Image(np.arange(16 * 16 * 4, dtype=np.int16).reshape(16, 16, 4), np.diag([1.5, 1.5, 8.0, 1.0]))
    img.header["db_name"], img.header["data_type"], img.header["descrip"] = b"DOE^JOHN", b"MRN123456", b"DOE^JOHN 19530417"
    img.header.extensions.append(Nifti1Extension(6, b"PatientName=DOE^JOHN; /data/DOE^JOHN/STUDY_20260315"))
    img.header.extensions.append(Nifti1Extension(0, json.dumps({"global": {"const": {"PatientName": "DOE^JOHN"}}}).encode()))
    nib.save(img, tmp_path / "image.nii.gz")
    vol = read_volume(tmp_path / "image.nii.gz")
    labels = np.zeros(vol.array.shape, np.uint8)
    labels[..., 4:9, 3:7] = 1
    write_labels(labels, vol, tmp_path / "labels.nii.gz", "lv=1", provenance={"command": "test"})
    raw = gzip.decompress((tmp_path / "labels.nii.gz").read_bytes())
    assert b"DOE" not in raw and b"MRN123456" not in raw and b"19530417" not in raw
    back = nib.load(tmp_path / "labels.nii.gz")
    assert len(back.header.extensions) == 0 and bytes(back.header["descrip"]).rstrip(b"\0") == b"medseg labels"
    assert np.allclose(back.affine, img.affine) and np.array_equal(np.asarray(read_volume(tmp_path / "labels.nii.gz").array), labels)


@pytest.fixture(scope="module")
def failed_batch(tmp_path_factory) -> tuple[Path, Path]:
    """One case, two studies of a patient in one folder (failed, its reason listing their patient ids
    and dates), batched with an adapter folder named by its path below a user's home."""
    root = tmp_path_factory.mktemp("failed")
    mixed = root / "in" / "DOE^JOHN" / "MIXED"
    for i, date in enumerate(("20260315", "20250101")):
        part = root / f"part{i}"
        write_cine_series(part, seed=i, prefix=f"S{i}_")
        _retag(part, PatientID="MRN123456", StudyDate=date, SeriesDate=date)
        mixed.mkdir(parents=True, exist_ok=True)
        for f in part.iterdir():
            f.rename(mixed / f.name)
    adapter = root / "home" / "jdoe" / "cmr-lge"
    shutil.copytree(REPO / "adapters" / "cmr-lge", adapter)
    out = root / "out"
    assert run_cli(["batch", str(root / "in"), "-o", str(out), "--auto", "--adapter", str(adapter)]) == 1
    return out, adapter


def test_methods_md_leaves_out_the_patient_ids_and_dates_a_failed_cases_reason_lists(failed_batch):
    out, _ = failed_batch
    row = next(csv.DictReader((out / "summary.csv").open(encoding="utf-8")))
    assert row["status"] == "failed" and "MRN123456 2026-03-15" in row["reason"]  # the user's own table: which studies to split
    text = (out / "METHODS.md").read_text(encoding="utf-8")
    assert "MIXED: folder holds 2 studies, 2 series" in text
    assert not [v for v in ("MRN123456", "2026-03-15", "2025-01-01", "DOE^JOHN") if v in text]


def test_methods_md_names_an_adapter_folder_given_by_its_path_by_its_name(failed_batch):
    out, adapter = failed_batch
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["settings"]["adapter"] == str(adapter)
    text = (out / "METHODS.md").read_text(encoding="utf-8")
    assert "--adapter cmr-lge" in text and "jdoe" not in text and str(out.parent) not in text

"""A multi-centre, multi-vendor study: each result says which scanner it came from (DICOM
Manufacturer, model, field strength; never the institution or station), a subjects file's
site / vendor / group columns reach cohort.csv, and `medseg compare` says when a patient's
visits were scanned on different scanners."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MAP = "lv=1,myo=2,rv=3"
SCANNERS = {"siteA": ("GE MEDICAL SYSTEMS", "SIGNA HDx", "1.5"), "siteB": ("SIEMENS", "Prisma", "3")}


def _dicom_stack(folder: Path, vol, patient: str, manufacturer: str, model: str, tesla: str) -> Path:
    """One phase of a phantom (Z, Y, X) as a DICOM MR stack of ``manufacturer``'s ``model`` at
    ``tesla``, with the institution and station a site's scanner writes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
    from io_synth import MR_STORAGE, _base
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    dz, dy, dx = vol.spacing
    pixels = np.round(vol.array[0] / max(float(vol.array.max()), 1e-6) * 1000).astype(np.int16)
    for z in range(vol.n_slices):
        ds = _base(MR_STORAGE, study, series, "1.2.3.4.5")
        ds.Modality, ds.SeriesDescription, ds.InstanceNumber, ds.PatientID = "MR", "SAX", z + 1, patient
        ds.Manufacturer, ds.ManufacturerModelName, ds.MagneticFieldStrength = manufacturer, model, tesla
        ds.InstitutionName, ds.StationName = "St. Elsewhere Hospital", "MRC40123"
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, z * dz], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [dy, dx], dz
        ds.Rows, ds.Columns = pixels.shape[1:]
        ds.PixelData = pixels[z].tobytes()
        ds.save_as(folder / f"IM{z:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def es_phase():
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=8, n_slices=6, shape=(96, 96), seed=4)
    t = ph.info["ed_frame"]
    return ph.image.with_array(ph.image.array[t:t + 1], frame_times_s=None), ph.labels[t:t + 1]


def test_scanner_of_a_header_reads_vendor_model_and_tesla_never_the_site():
    from pydicom.dataset import Dataset

    from medseg.io.dicom_meta import scanner_of

    ds = Dataset()
    ds.Manufacturer, ds.ManufacturerModelName, ds.MagneticFieldStrength = "Philips Medical Systems ", "Ingenia", "3"
    ds.InstitutionName, ds.StationName = "St. Elsewhere Hospital", "MRC40123"
    assert scanner_of(ds) == {"manufacturer": "Philips Medical Systems", "manufacturer_model": "Ingenia", "field_strength_t": 3.0}
    ds.MagneticFieldStrength = "15000"  # gauss, as some older scanners wrote it
    assert scanner_of(ds)["field_strength_t"] == 1.5
    ds.MagneticFieldStrength = "0"  # a placeholder
    del ds.ManufacturerModelName
    assert scanner_of(ds) == {"manufacturer": "Philips Medical Systems"}


def test_label_sidecar_and_measure_report_name_the_scanner(tmp_path, es_phase):
    """The labels' sidecar keeps the scanner (labels moved away from their image still say it),
    and `medseg measure`'s REPORT.json `inputs.study` has it beside the patient id."""
    from medseg.cli import run_cli
    from medseg.io import read_volume, write_labels

    vol, labels = es_phase
    folder = _dicom_stack(tmp_path / "siteB", vol, "B01", *SCANNERS["siteB"])
    image = read_volume(folder)
    out = tmp_path / "siteB.nii.gz"
    write_labels(labels, image, out, MAP, provenance={"input": str(folder)})
    prov = json.loads((tmp_path / "siteB.json").read_text())["provenance"]
    assert prov["scanner"] == {"manufacturer": "SIEMENS", "manufacturer_model": "Prisma", "field_strength_t": 3.0}
    assert run_cli(["measure", str(out), "-o", str(tmp_path / "r.json")]) == 0
    study = json.loads((tmp_path / "r.json").read_text())["inputs"]["study"]
    assert (study["patient_id"], study["manufacturer"], study["manufacturer_model"], study["field_strength_t"]) == ("B01", "SIEMENS", "Prisma", 3.0)
    assert "St. Elsewhere" not in (tmp_path / "r.json").read_text() + (tmp_path / "siteB.json").read_text()


def test_subjects_columns_other_than_body_data_are_kept_and_checked(tmp_path):
    from medseg.errors import MedsegError
    from medseg.subjects import read_subjects

    f = tmp_path / "s.csv"
    f.write_text("case;site;vendor;height_cm\np1;Leeds;Philips;170\np2;Oslo;;\n")
    s = read_subjects(f)
    assert s[0].columns == (("site", "Leeds"), ("vendor", "Philips")) and s[1].columns == (("site", "Oslo"), ("vendor", ""))
    f.write_text("case,site\np1,Leeds\n")  # a site column alone (no body data) is a subjects file too, said
    notes: list[str] = []
    assert read_subjects(f, notes)[0].columns == (("site", "Leeds"),)
    assert notes == ["s.csv gives no body data (none of the columns height_cm, weight_kg, heart_rate, sex): its columns site are "
                     "copied into cohort.csv only"]
    f.write_text("case,site,Site\np1,Leeds,Oslo\n")
    with pytest.raises(MedsegError, match="column 'site' appears twice"):
        read_subjects(f)


def test_cohort_rows_of_a_multicentre_batch_name_site_and_scanner(tmp_path, es_phase, capsys):
    """Two DICOM sites (GE 1.5 T, Siemens 3 T) and a NIfTI site in one batch with a subjects file
    giving each its site: cohort.csv has the subjects file's site and group columns, and each
    DICOM row its manufacturer, model and field strength; no institution or station; a subjects
    column named as one of medseg's (confidence) is kept as subjects.confidence."""
    import nibabel as nib

    from medseg.cli import run_cli
    from medseg.io import read_volume, write_labels
    from medseg.io.geometry import medseg_to_nifti

    vol, labels = es_phase
    inp, refs = tmp_path / "in", tmp_path / "refs"
    refs.mkdir()
    for i, (site, scanner) in enumerate(SCANNERS.items()):
        folder = _dicom_stack(inp / site, vol, f"P{i}", *scanner)
        write_labels(labels, read_volume(folder), refs / f"{site}_gt.nii.gz", MAP)
    nib.save(nib.Nifti1Image(medseg_to_nifti(vol.array.astype(np.float32), 3), vol.affine), str(inp / "a_siteC.nii.gz"))
    write_labels(labels, vol, refs / "a_siteC_gt.nii.gz", MAP)
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("case,site,group,weight_kg,confidence\nsiteA,A,HF,80,x\nsiteB,B,HF,,y\na_siteC,C,NOR,,z\n")
    out = tmp_path / "out"
    assert run_cli(["batch", str(inp), "-o", str(out), "--prompts-from", str(refs), "--label-map", MAP, "--measure",
                    "--subjects", str(subjects)]) == 0
    with open(out / "cohort.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, {r["case"]: r for r in reader}
    assert fields[fields.index("subject") + 1:fields.index("subject") + 3] == ["site", "group"]
    # the ids and scanner come before the numbers, though the first row (a NIfTI case) has none
    assert list(rows)[0] == "a_siteC" and fields.index("field_strength_t") < fields.index("volumes_ml.lv")
    assert [(rows[c]["subject"], rows[c]["site"], rows[c]["group"], rows[c]["subjects.confidence"]) for c in ("siteA", "siteB", "a_siteC")] == \
        [("siteA", "A", "HF", "x"), ("siteB", "B", "HF", "y"), ("a_siteC", "C", "NOR", "z")]
    assert [(rows[c]["manufacturer"], rows[c]["manufacturer_model"], rows[c]["field_strength_t"]) for c in ("siteA", "siteB", "a_siteC")] == \
        [("GE MEDICAL SYSTEMS", "SIGNA HDx", "1.5"), ("SIEMENS", "Prisma", "3.0"), ("", "", "")]
    assert "Elsewhere" not in (out / "cohort.csv").read_text() and "MRC40123" not in (out / "cohort.csv").read_text()
    assert float(rows["siteA"]["volumes_ml.lv"]) == pytest.approx(float(rows["siteB"]["volumes_ml.lv"]), rel=1e-3)


def test_compare_says_when_a_patients_visits_were_scanned_on_different_scanners(tmp_path, es_phase):
    """Baseline on a GE 1.5 T, follow-up on a Siemens 3 T: a caution names both scanners
    (a vendor or field-strength change biases volumes and mass); the same scanner: none."""
    from medseg.cli import run_cli
    from medseg.io import read_volume, write_labels

    vol, labels = es_phase
    reports = {}
    for site, scanner in (("base", SCANNERS["siteA"]), ("same", SCANNERS["siteA"]), ("other", SCANNERS["siteB"])):
        folder = _dicom_stack(tmp_path / site, vol, "P7", *scanner)
        write_labels(labels, read_volume(folder), tmp_path / f"{site}.nii.gz", MAP, provenance={"input": str(folder)})
        reports[site] = tmp_path / f"{site}_report.json"
        assert run_cli(["measure", str(tmp_path / f"{site}.nii.gz"), "-o", str(reports[site])]) == 0
    for follow, said in (("same", False), ("other", True)):
        assert run_cli(["compare", str(reports["base"]), str(reports[follow]), "-o", str(tmp_path / f"{follow}.json")]) == 0
        cautions = json.loads((tmp_path / f"{follow}.json").read_text())["pairs"][0]["cautions"]
        assert any(c == "scanner differs: baseline GE MEDICAL SYSTEMS SIGNA HDx 1.5 T, follow-up SIEMENS Prisma 3 T" for c in cautions) is said

"""`medseg batch --measure --dicom-seg`: each DICOM case's measurements also as a DICOM SR beside
its SEG files (``OUT/<case>_seg/<case>_sr.dcm``), kept by a ``--resume`` with nothing changed.

The case's labels are the phantom's truth saved as another command's (kept, never segmented
again), so the batch writes the SEG files, measures and writes the SR without running the model.
"""

from __future__ import annotations

import csv

import pytest
from io_synth import write_phantom_cine_series
from pydicom import dcmread
from pydicom.uid import generate_uid

from medseg._files import sha256_path
from medseg.cli import run_cli


def test_batch_writes_each_dicom_cases_sr_beside_its_seg_and_a_resume_keeps_it(tmp_path):
    from medseg.io import read_volume, write_labels

    uid, case = generate_uid(), tmp_path / "in" / "pat1"
    ph = write_phantom_cine_series(case, uid)
    out = tmp_path / "out"
    write_labels(ph.labels, read_volume(case), out / "pat1.nii.gz", ph.label_map,
                 provenance={"command": "segment", "input": str(case), "input_sha256": sha256_path(case)})
    args = ["batch", str(tmp_path / "in"), "-o", str(out), "--auto", "--measure", "--dicom-seg", "--resume"]
    assert run_cli(args) == 0
    sr_file = out / "pat1_seg" / "pat1_sr.dcm"
    sr = dcmread(sr_file)
    assert sr.StudyInstanceUID == uid and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    segs = sorted((out / "pat1_seg").glob("pat1_frame*.dcm"))
    listed = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
              for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert len(segs) == 6 and {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in segs} <= listed
    assert {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in case.iterdir()} <= listed
    row = next(csv.DictReader((out / "cohort.csv").open()))
    values = {}
    for item in sr.ContentSequence:
        for group in item.get("ContentSequence", []):
            for m in group.get("ContentSequence", []):
                if m.ValueType == "NUM":
                    values[m.ConceptNameCodeSequence[0].CodeValue] = float(m.MeasuredValueSequence[0].NumericValue)
    assert values["8821-1"] == pytest.approx(float(row["lv.edv_ml"])) and values["8811-2"] == pytest.approx(float(row["lv.ef_pct"]))
    assert values["8818-7"] == pytest.approx(float(row["rv.ef_pct"])) and values["18087-7"] == pytest.approx(float(row["lv_mass_g"]))
    summary = next(csv.DictReader((out / "summary.csv").open()))
    assert summary["dicom_seg"].split()[-1] == "pat1_sr.dcm" and summary["status"] == "skipped"
    # a resume with nothing changed keeps the SR (its UIDs: PACS gets no second copy); labels saved again remake SEG and SR
    before = (sr.SOPInstanceUID, sr_file.stat().st_mtime_ns)
    assert run_cli(args) == 0
    assert (dcmread(sr_file).SOPInstanceUID, sr_file.stat().st_mtime_ns) == before
    assert next(csv.DictReader((out / "summary.csv").open()))["dicom_seg"].split()[-1] == "pat1_sr.dcm"
    write_labels(ph.labels, read_volume(case), out / "pat1.nii.gz", ph.label_map,
                 provenance={"command": "segment", "input": str(case), "input_sha256": sha256_path(case)})
    assert run_cli(args) == 0
    assert dcmread(sr_file).SOPInstanceUID != before[0]

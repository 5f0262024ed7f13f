"""`medseg measure ... --dicom-sr OUT.dcm`: the report's measurements as a DICOM SR (TID 1500)
in the study of the DICOM images the labels were segmented from.

A phantom cine written as a DICOM series (pydicom) and its truth labels, written as NIfTI with
a sidecar naming the series, or as one DICOM SEG per phase; the SR is read back with pydicom
and highdicom and compared with REPORT.json: codes, values, units, study, evidence.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from io_synth import write_phantom_cine_series
from pydicom import dcmread
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from medseg.cli import run_cli

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR Storage


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(folder, DICOM series folder, study UID, phantom, NIfTI labels with a sidecar naming the series)."""
    from medseg.io import read_volume, write_labels

    root = tmp_path_factory.mktemp("sr")
    uid = generate_uid()
    ph = write_phantom_cine_series(root / "dicom", uid)
    image = read_volume(root / "dicom")
    write_labels(ph.labels, image, root / "labels.nii.gz", ph.label_map, provenance={"input": str(root / "dicom")})
    return root, root / "dicom", uid, ph, root / "labels.nii.gz"


def _numbers(sr) -> dict[tuple[str, str], tuple[float, str, str]]:
    """(scheme, code) -> (value, UCUM unit, finding site meaning) of each NUM item, read with pydicom."""
    out = {}

    def walk(items, site):
        site = next((str(i.ConceptCodeSequence[0].CodeMeaning) for i in items if i.ValueType == "CODE"
                     and i.ConceptNameCodeSequence[0].CodeValue == "363698007"), site)
        for i in items:
            if i.ValueType == "NUM":
                name, mv = i.ConceptNameCodeSequence[0], i.MeasuredValueSequence[0]
                unit = mv.MeasurementUnitsCodeSequence[0]
                assert unit.CodingSchemeDesignator == "UCUM"
                out[(name.CodingSchemeDesignator, name.CodeValue)] = (float(mv.NumericValue), unit.CodeValue, site)
            if "ContentSequence" in i:
                walk(i.ContentSequence, site)
    walk(sr.ContentSequence, "")
    return out


def test_measure_writes_an_sr_in_the_study_of_the_dicom_cine(study, tmp_path, capsys):
    import highdicom as hd

    _, dicom, uid, _, labels = study
    report_path, sr_path = tmp_path / "report.json", tmp_path / "out.dcm"
    assert run_cli(["measure", str(labels), "-o", str(report_path), "--dicom-sr", str(sr_path)]) == 0
    assert "DICOM SR -> " in (said := capsys.readouterr().out) and "not in the SR: indexed.lv_edv_ml_m2, indexed.lv_esv_ml_m2" in said
    report = json.loads(report_path.read_text())
    sr = dcmread(sr_path)
    source = dcmread(next(dicom.iterdir()), stop_before_pixels=True)
    assert sr.SOPClassUID == SR_CLASS and sr.Modality == "SR"
    assert sr.StudyInstanceUID == uid and sr.PatientID == "SR0001" and sr.PatientName == source.PatientName
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert b"St. Elsewhere" not in sr_path.read_bytes() and b"MRC40123" not in sr_path.read_bytes()  # the site is written nowhere
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == ("COMPLETE", "UNVERIFIED", "PRELIMINARY")
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report (TID 1500)
    # every image of the series segmented is listed as evidence of this study
    evidence = sr.CurrentRequestedProcedureEvidenceSequence
    assert len(evidence) == 1 and evidence[0].StudyInstanceUID == uid
    listed = {i.ReferencedSOPInstanceUID for s in evidence[0].ReferencedSeriesSequence for i in s.ReferencedSOPSequence}
    assert listed == {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in dicom.iterdir()}
    got = _numbers(sr)
    lv, rv, idx = report["lv"], report["rv"], report["indexed"]
    want = {("LN", "8821-1"): (lv["edv_ml"], "ml", "Left ventricle"), ("LN", "8823-7"): (lv["esv_ml"], "ml", "Left ventricle"),
            ("SCT", "90096001"): (lv["sv_ml"], "ml", "Left ventricle"), ("LN", "8811-2"): (lv["ef_pct"], "%", "Left ventricle"),
            ("LN", "18087-7"): (report["lv_mass_g"], "g", "Left ventricle"), ("SCT", "82799009"): (report["co_l_min"], "l/min", "Left ventricle"),
            ("SCT", "277381004"): (idx["lv_sv_ml_m2"], "ml/m2", "Left ventricle"), ("SCT", "54993008"): (idx["ci_l_min_m2"], "l/min/m2", "Left ventricle"),
            ("LN", "8822-9"): (rv["edv_ml"], "ml", "Right ventricle"), ("LN", "8824-5"): (rv["esv_ml"], "ml", "Right ventricle"),
            ("SCT", "429483009"): (rv["sv_ml"], "ml", "Right ventricle"), ("LN", "8818-7"): (rv["ef_pct"], "%", "Right ventricle"),
            ("SCT", "429619008"): (idx["rv_sv_ml_m2"], "ml/m2", "Right ventricle")}
    assert set(got) == set(want)
    for key, (value, unit, site) in want.items():
        assert got[key][0] == pytest.approx(value, rel=1e-9) and got[key][1:] == (unit, site), key
    # BSA from the DICOM header: the indexed EDV has no standard code and is left out, and said so
    assert report["dicom_sr"]["left_out"] == ["indexed.lv_edv_ml_m2", "indexed.lv_esv_ml_m2", "indexed.lv_mass_g_m2",
                                              "indexed.rv_edv_ml_m2", "indexed.rv_esv_ml_m2"]
    assert report["dicom_sr"]["sop_instance_uid"] == sr.SOPInstanceUID and report["dicom_sr"]["study_instance_uid"] == uid
    # highdicom reads it back as a TID 1500 report with one measurement group per ventricle
    groups = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_image_measurement_groups()
    assert [(g.tracking_identifier, g.finding_sites[0].value.value) for g in groups] == [("left ventricle", "87878005"), ("right ventricle", "53085002")]
    assert [m.name for m in groups[0].get_measurements()][:4] == [codes.LN.LeftVentricularEDVolume, codes.LN.LeftVentricularESVolume,
                                                                  codes.SCT.StrokeVolume, codes.LN.LeftVentricularEjectionFractionByMR]


def test_the_sr_of_dicom_seg_labels_references_the_segs(study, tmp_path):
    from medseg.io import read_volume, write_labels

    _, dicom, uid, ph, _ = study
    image = read_volume(dicom)
    ed, es = ph.info["ed_frame"], ph.info["es_frame"]
    written = write_labels(ph.labels, image, tmp_path / "seg.dcm", ph.label_map, provenance={"input": str(dicom)})
    segs = {p.name: p for p in written if p.suffix == ".dcm"}
    ed_seg, es_seg = segs[f"seg_frame{ed:02d}.dcm"], segs[f"seg_frame{es:02d}.dcm"]
    out = tmp_path / "sr.dcm"
    assert run_cli(["measure", "--ed", str(ed_seg), "--es", str(es_seg), "-o", str(tmp_path / "r.json"), "--dicom-sr", str(out)]) == 0
    sr = dcmread(out)
    assert sr.StudyInstanceUID == uid
    listed = {i.ReferencedSOPInstanceUID: i.ReferencedSOPClassUID for s in sr.CurrentRequestedProcedureEvidenceSequence
              for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    for seg in (ed_seg, es_seg):
        assert listed[dcmread(seg, stop_before_pixels=True).SOPInstanceUID] == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    report = json.loads((tmp_path / "r.json").read_text())
    assert _numbers(sr)[("LN", "8821-1")][0] == pytest.approx(report["lv"]["edv_ml"], rel=1e-9)


def test_labels_of_a_nifti_image_are_refused_and_nothing_is_written(study, tmp_path, capsys):
    import nibabel as nib

    from medseg.io import read_volume, write_labels

    *_, ph, _ = study
    nifti = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(ph.image.array.transpose(3, 2, 1, 0), ph.image.affine), nifti)
    write_labels(ph.labels, read_volume(nifti), tmp_path / "labels.nii.gz", ph.label_map, provenance={"input": str(nifti)})
    capsys.readouterr()
    code = run_cli(["measure", str(tmp_path / "labels.nii.gz"), "-o", str(tmp_path / "r.json"), "--dicom-sr", str(tmp_path / "sr.dcm"),
                    "--csv", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--dicom-sr needs the DICOM study" in err and "is not DICOM" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.nii.gz", "labels.json", "labels.nii.gz"]


def test_a_failed_sr_write_leaves_no_file_and_no_report(study, tmp_path, monkeypatch, capsys):
    import highdicom as hd

    *_, labels = study
    out = tmp_path / "sr.dcm"
    out.write_bytes(b"an earlier SR")

    def fail(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"DICM half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hd.sr.Comprehensive3DSR, "save_as", fail)
    assert run_cli(["measure", str(labels), "-o", str(tmp_path / "r.json"), "--dicom-sr", str(out)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier SR" and sorted(p.name for p in tmp_path.iterdir()) == ["sr.dcm"]


def test_info_describes_an_sr_and_a_dicom_folder_still_ignores_it(study, tmp_path, capsys):
    from medseg.io import read_volume

    _, dicom, uid, _, labels = study
    out = tmp_path / "sr.dcm"
    assert run_cli(["measure", str(labels), "-o", str(tmp_path / "r.json"), "--dicom-sr", str(out)]) == 0
    capsys.readouterr()
    assert run_cli(["info", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["title"] == "Imaging Measurement Report" and d["study_uid"] == uid and d["evidence"] == "MR Image Storage x36"
    assert {"name": "Left ventricular ejection fraction by MR", "code": "LN 8811-2", "unit": "%", "site": "Left ventricle"}.items() \
        <= next(m for m in d["measurements"] if m["code"] == "LN 8811-2").items()
    assert run_cli(["info", str(out)]) == 0
    assert "structured report" in capsys.readouterr().out
    before = read_volume(dicom)
    copy = tmp_path / "series"
    copy.mkdir()
    for p in dicom.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    (copy / "sr.dcm").write_bytes(out.read_bytes())
    after = read_volume(copy)
    assert after.array.shape == before.array.shape and np.array_equal(after.array, before.array)


def test_echo_and_ct_reports_take_their_own_standard_codes(tmp_path):
    from io_synth import write_us_clip

    from medseg.io.sr_writer import SRContext, build_measurement_sr, measurement_rows

    echo = {"method": "biplane_disks", "lv": {"edv_ml": 120.0, "esv_ml": 50.0, "sv_ml": 70.0, "ef_pct": 58.3},
            "indexed": {"lv_edv_ml_m2": 64.0, "lv_esv_ml_m2": 27.0, "la_volume_ml_m2": 30.0}, "la_method": "biplane_area_length",
            "atria": {"la": {"max_ml": 55.0, "min_ml": 25.0}}}
    rows, left = measurement_rows(echo, "US")
    got = {(code.scheme_designator, code.value): (key, unit, method.value if method else None) for _, key, code, unit, method in rows}
    assert got == {("LN", "79996-5"): ("lv.edv_ml", "ml", "125207"), ("LN", "80001-1"): ("lv.esv_ml", "ml", "125207"),
                   ("LN", "79991-6"): ("lv.ef_pct", "%", "125207"), ("LN", "79997-3"): ("indexed.lv_edv_ml_m2", "ml/m2", "125207"),
                   ("LN", "80002-9"): ("indexed.lv_esv_ml_m2", "ml/m2", "125207"), ("SCT", "90096001"): ("lv.sv_ml", "ml", "125207"),
                   ("LN", "79981-7"): ("atria.la.max_ml", "ml", None), ("LN", "79982-5"): ("indexed.la_volume_ml_m2", "ml/m2", None)}
    assert left == []
    write_us_clip(tmp_path / "a4c.dcm")
    us = dcmread(tmp_path / "a4c.dcm", stop_before_pixels=True)
    sr, _ = build_measurement_sr(echo, SRContext([us], "US", us.StudyInstanceUID))  # highdicom accepts the tree
    assert sr.StudyInstanceUID == us.StudyInstanceUID and _numbers(sr)[("LN", "79991-6")] == (58.3, "%", "Left ventricle")
    assert _numbers(sr)[("LN", "79981-7")] == (55.0, "ml", "Left atrium")
    methods = [c for g in sr.ContentSequence[-1].ContentSequence for m in g.ContentSequence if m.ValueType == "NUM"
               for c in m.get("ContentSequence", []) if c.ConceptNameCodeSequence[0].CodeValue == "370129005"]  # Measurement Method
    assert [c.ConceptCodeSequence[0].CodeValue for c in methods] == ["125207"] * 6  # the LV's six, not the LA's area-length
    single = dict(echo, method="single_plane_disks_a4c", la_method="single_plane_area_length_a4c")
    rows, left = measurement_rows(single, "US")
    assert {c.value for _, _, c, _, _ in rows} == {"79999-9", "80004-5", "79993-2", "90096001"}
    assert left == ["indexed.lv_edv_ml_m2", "indexed.lv_esv_ml_m2", "atria.la.max_ml", "indexed.la_volume_ml_m2"]
    ct = {"lv": {"edv_ml": 150.0, "esv_ml": 60.0, "sv_ml": 90.0, "ef_pct": 60.0}, "rv": {"ef_pct": 50.0}, "lv_mass_g": 120.0}
    codes_ct = {c.value for _, _, c, _, _ in measurement_rows(ct, "CT")[0]}
    assert {"8810-4", "8817-9"} <= codes_ct and "8811-2" not in codes_ct
    rows, left = measurement_rows(ct, "OT")  # no ejection fraction code for another modality: left out
    assert left == ["lv.ef_pct", "rv.ef_pct"] and "8811-2" not in {c.value for _, _, c, _, _ in rows}


def test_every_code_the_sr_uses_is_in_pydicoms_dictionaries():
    """Never an invented code: each concept name the writer can use is a pydicom code."""
    from pydicom.sr._concepts_dict import concepts

    from medseg.io import sr_writer as W

    names = [(s, n) for _, _, c, _ in W.SHORT_AXIS if c and c[0] != "EF" for s, n in [c]]
    names += [("LN", n) for n in W.EF_CODES.values()] + [("SCT", n) for n in W.SITES.values()]
    names += [("LN", n) for table in W.ECHO.values() for n in table.values() if n]
    names += [("LN", n) for pair in W.ECHO_LA.values() for n in pair if n]
    names += [("DCM", "MethodOfDisksBiplane"), ("DCM", "MethodOfDisksSinglePlane")]
    names += [("SCT", n) for n in ("CardiacMRI", "CardiacCT", "Echocardiography", "ImagingProcedure")]
    for scheme, name in names:
        assert name in concepts[scheme], (scheme, name)
        code = getattr(getattr(codes, scheme), name)
        assert code.value in concepts[scheme][name]
    assert all(re.fullmatch(r"[a-z/0-9%]+", u) for u in W.UNITS)


def test_info_of_another_tools_sr_with_a_broken_content_tree_is_one_table(tmp_path, capsys):
    from io_synth import _base
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = _base("1.2.840.10008.5.1.4.1.1.88.22", generate_uid(), generate_uid(), "1.2.3")  # Enhanced SR
    item = Dataset()
    item.ValueType = "CODE"  # no concept name
    ds.Modality, ds.ValueType, ds.ContentSequence = "SR", "CONTAINER", Sequence([item])
    ds.save_as(tmp_path / "other.dcm", enforce_file_format=True)
    assert run_cli(["info", str(tmp_path / "other.dcm"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sop_class"] == "Enhanced SR Storage" and d["patient_id"] == "P001" and "could not be read" in d["note"]


def test_real_sunnybrook_expert_segs_give_an_sr_in_the_series_study(shared_data, tmp_path):
    """Sunnybrook SCD0000501 (non-conformant UIDs, per-image frames of reference): its expert
    contours as two DICOM SEGs, measured into an SR whose values are the report's."""
    from medseg.io import read_volume, write_labels
    from medseg.io.contours import contour_labels

    series = shared_data / "sunnybrook" / "dicoms" / "SCD0000501"
    image = read_volume(series)
    labels = contour_labels(image, shared_data / "sunnybrook" / "contourfiles" / "SC-HF-I-6")
    write_labels(labels.array, image, tmp_path / "ref.dcm", labels.meta["label_map"], provenance={"input": str(series)})
    frames = [t for t in range(image.n_frames) if labels.array[t].any()]
    lv = {t: int((labels.array[t] == labels.meta["label_map"]["lv"]).sum()) for t in frames}
    ed, es = (tmp_path / f"ref_frame{t:02d}.dcm" for t in sorted(frames, key=lambda t: -lv[t]))
    assert run_cli(["measure", "--ed", str(ed), "--es", str(es), "-o", str(tmp_path / "r.json"), "--dicom-sr", str(tmp_path / "sr.dcm")]) == 0
    report, sr = json.loads((tmp_path / "r.json").read_text()), dcmread(tmp_path / "sr.dcm")
    assert sr.StudyInstanceUID == dcmread(next(series.iterdir()), stop_before_pixels=True).StudyInstanceUID and sr.PatientID == "SCD0000501"
    got = _numbers(sr)
    assert got[("LN", "8821-1")][0] == pytest.approx(report["lv"]["edv_ml"], rel=1e-9)
    assert got[("LN", "8811-2")][0] == pytest.approx(report["lv"]["ef_pct"], rel=1e-9)
    assert got[("LN", "18087-7")][0] == pytest.approx(report["lv_mass_g"], rel=1e-9)

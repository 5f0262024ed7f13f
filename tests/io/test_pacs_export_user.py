"""A user's walk through a hospital PACS export: patient / study / series folders with numeric
names and files without an ending, a DICOMDIR, a 3-plane localizer, a structured report and a
presentation state beside the cines, and a baseline and a follow-up study of one patient (the
follow-up's short-axis cine one Enhanced MR file).

Before: the report's and the presentation state's folders were batch cases that failed ("no
DICOM images in folder"), the localizer failed ("images have different orientations"), so a
batch of a clean export exited 1; and cohort.csv told the baseline from the follow-up only by
the folder numbers in the case ids.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from io_synth import ENHANCED_MR_STORAGE, MR_STORAGE, _base
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from medseg.cli import run_cli

SR_STORAGE, GSPS_STORAGE = "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.11.1"
DATES = {"1": "20250110", "2": "20250612"}  # study folder -> StudyDate (baseline, follow-up)


def _header(sop: str, study: str, date: str, number: int, description: str, modality: str = "MR") -> Dataset:
    ds = _base(sop, study, generate_uid(), "1.2.3.4.7")
    ds.PatientID, ds.StudyDate, ds.SeriesNumber, ds.SeriesDescription, ds.Modality = "PAT0001", date, number, description, modality
    ds.PatientSize, ds.PatientWeight, ds.PatientSex, ds.InstanceNumber = "1.77", "70", "M", 1
    return ds


def _geometry(vol):
    """ImageOrientationPatient, ImagePositionPatient per slice (LPS) and PixelSpacing of a Volume."""
    lps = np.array([-1.0, -1.0, 1.0])
    a = vol.affine
    iop = [*(lps * a[:3, 0] / np.linalg.norm(a[:3, 0])), *(lps * a[:3, 1] / np.linalg.norm(a[:3, 1]))]
    ipps = [lps * (a @ [0, 0, z, 1])[:3] for z in range(vol.array.shape[1])]
    return [float(v) for v in iop], ipps, [float(vol.spacing[1]), float(vol.spacing[2])]


def _pixels(vol) -> np.ndarray:
    return np.clip(vol.array / vol.array.max() * 2000, 0, 4095).astype(np.int16)


def _classic_cine(folder, vol, study: str, date: str) -> None:
    iop, ipps, ps = _geometry(vol)
    pixels, series = _pixels(vol), generate_uid()
    folder.mkdir(parents=True)
    for z in range(pixels.shape[1]):
        for t in range(pixels.shape[0]):
            ds = _header(MR_STORAGE, study, date, 2, "sa_cine_retro")
            ds.SeriesInstanceUID, ds.InstanceNumber = series, z * pixels.shape[0] + t + 1
            ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [float(v) for v in ipps[z]], iop, ps
            ds.TriggerTime, ds.HeartRate, ds.Rows, ds.Columns = 400.0 * t, 60, *pixels.shape[2:]
            ds.PixelData = pixels[t, z].tobytes()
            ds.save_as(folder / f"{z * pixels.shape[0] + t + 1:08d}", enforce_file_format=True)


def _enhanced_cine(path, vol, study: str, date: str) -> None:
    """One Enhanced MR file, frames slice by slice (all phases of each), geometry shared."""
    iop, ipps, ps = _geometry(vol)
    pixels = _pixels(vol)
    ds = _header(ENHANCED_MR_STORAGE, study, date, 2, "sa_cine_enh")
    ds.Rows, ds.Columns, ds.HeartRate = *pixels.shape[2:], 60
    shared, pm, po = Dataset(), Dataset(), Dataset()
    pm.PixelSpacing, pm.SliceThickness, po.ImageOrientationPatient = ps, float(vol.spacing[0]), iop
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([pm]), Sequence([po])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per, frames = [], []
    for z in range(pixels.shape[1]):
        for t in range(pixels.shape[0]):
            fg, fc, pp, cs = Dataset(), Dataset(), Dataset(), Dataset()
            fc.InStackPositionNumber, fc.TemporalPositionIndex, fc.DimensionIndexValues = z + 1, t + 1, [z + 1, t + 1]
            pp.ImagePositionPatient, cs.NominalCardiacTriggerDelayTime = [float(v) for v in ipps[z]], 400.0 * t
            fg.FrameContentSequence, fg.PlanePositionSequence, fg.CardiacSynchronizationSequence = Sequence([fc]), Sequence([pp]), Sequence([cs])
            per.append(fg)
            frames.append(pixels[t, z])
    ds.PerFrameFunctionalGroupsSequence, ds.NumberOfFrames, ds.PixelData = Sequence(per), len(per), np.stack(frames).tobytes()
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)


def _localizer(folder, study: str, date: str) -> None:
    """A 3-plane localizer: one series, one image in each of three planes."""
    folder.mkdir(parents=True)
    series = generate_uid()
    for i, iop in enumerate(([1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1])):
        ds = _header(MR_STORAGE, study, date, 1, "localizer")
        ds.SeriesInstanceUID, ds.InstanceNumber, ds.Rows, ds.Columns = series, i + 1, 32, 32
        ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [-100.0, -100.0, 0.0], iop, [6.0, 6.0]
        ds.PixelData = np.random.default_rng(i).integers(0, 800, (32, 32)).astype(np.int16).tobytes()
        ds.save_as(folder / f"{i + 1:08d}", enforce_file_format=True)


def _non_image(path, sop: str, study: str, date: str, modality: str) -> None:
    ds = _header(sop, study, date, 100, "report", modality)
    for name in ("SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, name)
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)


def _export(tmp_path):
    """export/DICOMDIR; export/1/<study>/1 localizer, /2 short-axis cine (study 1: classic
    files, study 2: one Enhanced MR file), /3 structured report, /4 presentation state."""
    from medseg.phantoms import cine_sax_phantom

    root = tmp_path / "export"
    root.mkdir()
    dicomdir = _base("1.2.840.10008.1.3.10", "", "", "")
    dicomdir.save_as(root / "DICOMDIR", enforce_file_format=True)
    for st, date in DATES.items():
        study, vol = generate_uid(), cine_sax_phantom(n_frames=2, n_slices=4, shape=(64, 64), seed=int(st)).image
        _localizer(root / "1" / st / "1", study, date)
        if st == "1":
            _classic_cine(root / "1" / st / "2", vol, study, date)
        else:
            _enhanced_cine(root / "1" / st / "2" / "00000001", vol, study, date)
        _non_image(root / "1" / st / "3" / "00000001", SR_STORAGE, study, date, "SR")
        _non_image(root / "1" / st / "4" / "00000001.dcm", GSPS_STORAGE, study, date, "PR")
    return root


def test_an_exports_report_and_presentation_state_are_no_cases(tmp_path):
    """The folders of a structured report and a presentation state (files without an ending,
    or .dcm) are no cases, nor are such files themselves; a folder with a file that does not
    read as DICOM still is one (its reading names the file)."""
    from medseg.batch import discover_cases

    root = _export(tmp_path)
    assert [c.case for c in discover_cases(root)] == ["1_1_1", "1_1_2", "1_2_1", "1_2_2"]
    assert discover_cases(root / "1" / "1" / "3") == []  # INPUT_DIR a report's folder: nothing to segment
    (root / "1" / "1" / "4" / "broken.dcm").write_bytes(b"not dicom")
    assert [c.case for c in discover_cases(root / "1" / "1")] == ["1", "2", "4"]


def test_a_localizer_is_named_in_one_line(tmp_path, capsys):
    """`medseg info` (and segment) of a 3-plane localizer says what it is; a series of two
    orientations that no description calls a localizer still says 'different orientations'."""
    from medseg.errors import GeometryError, LocalizerError
    from medseg.io import read_volume

    root = _export(tmp_path)
    loc = root / "1" / "1" / "1"
    with pytest.raises(LocalizerError, match=r"1/1/1: a localizer \(scout\) series \('localizer': 3 images in 3 planes\), no stack"):
        read_volume(loc)
    assert run_cli(["info", str(loc)]) == 1
    err = capsys.readouterr().err.strip()
    assert "localizer (scout) series" in err and len(err.splitlines()) == 1
    for f in loc.iterdir():  # the same images as a series of another name
        ds = __import__("pydicom").dcmread(f)
        ds.SeriesDescription = "cine 2ch 4ch"
        ds.save_as(f)
    with pytest.raises(GeometryError, match="different orientations") as e:
        read_volume(loc)
    assert not isinstance(e.value, LocalizerError)


def test_info_of_an_enhanced_cine_shows_its_frame_times_and_heart_rate(tmp_path, capsys):
    root = _export(tmp_path)
    enhanced = root / "1" / "2" / "2" / "00000001"
    assert run_cli(["info", str(enhanced)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"frame times +│ 0, 0\.4 s ", out) and re.search(r"heart rate +│ 60 beats/min ", out)
    assert run_cli(["info", str(enhanced), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["shape"] == [2, 4, 64, 64] and d["frame_times_s"] == [0.0, 0.4] and d["heart_rate_bpm"] == 60.0


def test_batch_of_an_export_skips_localizers_and_tells_baseline_from_follow_up(tmp_path, capsys):
    """`medseg batch EXPORT --auto --measure`: one case per study's cine (the follow-up's an
    Enhanced MR file), each localizer skipped with its reason, exit 0; cohort.csv has a row
    per study with its date, StudyInstanceUID and series, and the body data of the header."""
    root = _export(tmp_path)
    out = tmp_path / "out"
    assert run_cli(["batch", str(root), "-o", str(out), "--auto", "--measure"]) == 0
    rows = {r["case"]: r for r in json.loads((out / "summary.json").read_text())["cases"]}
    assert {k: r["status"] for k, r in rows.items()} == {"1_1_1": "skipped", "1_1_2": "ok", "1_2_1": "skipped", "1_2_2": "ok"}
    assert rows["1_1_1"]["reason"].endswith("1/1/1: a localizer (scout) series ('localizer': 3 images in 3 planes), no stack or cine to segment")
    with open(out / "cohort.csv", newline="", encoding="utf-8") as f:
        cohort = {r["case"]: r for r in csv.DictReader(f)}
    assert sorted(cohort) == ["1_1_2", "1_2_2"]
    base, follow = cohort["1_1_2"], cohort["1_2_2"]
    assert (base["study_date"], follow["study_date"]) == ("2025-01-10", "2025-06-12")
    assert base["study_uid"] != follow["study_uid"] and base["study_uid"].startswith("1.2.")
    assert (base["series_description"], follow["series_description"]) == ("sa_cine_retro", "sa_cine_enh")
    assert base["lv.ef_pct"] and follow["lv.ef_pct"] and base["dicom_body"] == "height_cm weight_kg sex"


def test_info_of_an_export_lists_its_studies_and_their_series(tmp_path, capsys):
    """`medseg info EXPORT` (it was an error: "its sub-folders hold more than one study"): each
    study with its patient, date and series, and the folder of each series; no report."""
    root = _export(tmp_path)
    assert run_cli(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 studies of 1 patient(s)" in out and "PAT0001 2025-01-10" in out and "PAT0001 2025-06-12" in out
    assert run_cli(["info", str(root), "--json"]) == 0
    studies = json.loads(capsys.readouterr().out)["studies"]
    assert [(s["study_date"], s["folder"]) for s in studies] == [("2025-01-10", "1/1"), ("2025-06-12", "1/2")]
    assert [(r["description"], r["images"], r["folder"]) for r in studies[1]["series"]] == [("localizer", 3, "1/2/1"), ("sa_cine_enh", 8, "1/2/2")]
    assert run_cli(["info", str(root), "--series", "sa_cine"]) == 1  # --series names a series of one study


def test_a_dicomdir_given_as_the_input_names_its_folder(tmp_path, capsys):
    """`medseg info EXPORT/DICOMDIR` said "DICOM file holds no image (SOP class ?)"; `batch`
    "input folder not found": both now say it is an export's index and to give its folder."""
    root = _export(tmp_path)
    assert run_cli(["info", str(root / "DICOMDIR")]) == 1
    err = capsys.readouterr().err.strip()
    assert "(SOP class Media Storage Directory Storage); a DICOMDIR is the index of an export: give the folder it lies in" in err
    assert len(err.splitlines()) == 1
    assert run_cli(["batch", str(root / "DICOMDIR"), "-o", str(tmp_path / "out"), "--auto"]) != 0
    assert "is a DICOMDIR, the index of a DICOM export: give the folder it lies in" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

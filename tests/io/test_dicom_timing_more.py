"""DICOM timing, continued: the notes on how an image was read (``time_note``,
``cardiac_timing_note``, ``geometry_note``) travel with its labels (sidecar -> ``medseg
measure``), and a series of magnitude and phase images reads as its magnitude images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_synth import IOP, MR_STORAGE, _base, write_cine_series, write_enhanced_mr
from pydicom.uid import generate_uid

from medseg.errors import ImageReadError
from medseg.io import read_volume, write_labels
from medseg.io.dicom_frames import mr_component

M_TYPE = ["ORIGINAL", "PRIMARY", "M", "ND"]
P_TYPE = ["ORIGINAL", "PRIMARY", "P", "ND"]


def _where(s, ds) -> tuple[int, int]:
    """(slice, phase) of a file of the series ``s`` (from its position and trigger time)."""
    z = int(np.argmin(np.linalg.norm(s.ipps - np.asarray(ds.ImagePositionPatient, dtype=float)[None], axis=1)))
    t = int(np.argmin(np.abs(s.triggers_ms[:, z] - float(ds.TriggerTime))))
    return z, t


def _truth(s) -> np.ndarray:
    return s.pixels.astype(np.float32) * s.slope + s.intercept


def _with_twins(s, twin_type: list[str] | None, trigger: bool = True, keep_first: bool = True) -> None:
    """Give every image of the series ``s`` (made ImageType ...\\M\\ND) a twin at its position and
    trigger time: ImageType ``twin_type`` (None: none), other pixels, another SOP instance. Per
    slice the InstanceNumbers run first, twin, first, twin, ... (as a flow series' do);
    ``trigger`` False takes every TriggerTime out, ``keep_first`` False leaves the twins alone."""
    n_phases = s.triggers_ms.shape[0]
    for f in sorted(s.folder.iterdir()):
        ds = pydicom.dcmread(f)
        z, t = _where(s, ds)
        ds.ImageType, ds.InstanceNumber = M_TYPE, z * 2 * n_phases + 2 * t + 1
        if not trigger:
            del ds.TriggerTime
        if keep_first:
            ds.save_as(f, enforce_file_format=True)
        else:
            f.unlink()
        if twin_type is not None:
            ds.ImageType, ds.InstanceNumber = twin_type, ds.InstanceNumber + 1
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.PixelData = np.full((ds.Rows, ds.Columns), 2000 - 300 * t, dtype=np.int16).tobytes()
            ds.save_as(f.with_name("PH" + f.name), enforce_file_format=True)


# -- magnitude and phase images of one series -----------------------------------------------
@pytest.mark.parametrize("trigger", [True, False], ids=["trigger-time", "no-trigger-time"])
def test_magnitude_and_phase_images_read_as_the_magnitude_cine(tmp_path, trigger):
    """Without TriggerTime, InstanceNumber interleaved magnitude and phase images into a cine of
    twice the frames; with it, the pair was refused. Both now read the magnitude images, with
    a note, and keep the frame times the trigger times give."""
    s = write_cine_series(tmp_path / "flow", n_slices=3, n_phases=4)
    _with_twins(s, P_TYPE, trigger=trigger)
    vol = read_volume(s.folder)
    assert vol.shape == (4, 3, 12, 10) and np.array_equal(vol.array, _truth(s))
    if trigger:
        assert np.allclose(vol.frame_times_s, s.triggers_ms[:, 0] / 1000.0)
    else:
        assert vol.frame_times_s is None
    note = ("the series holds magnitude and phase images: the 12 magnitude images read, the 12 phase images "
            "(ImageType ORIGINAL\\PRIMARY\\P\\ND: velocity maps, not anatomy) left out")
    assert vol.meta["time_note"] == note and vol.describe()["time_note"] == note
    assert all("PH" not in Path(p).name for row in vol.meta["files"] for p in row)


@pytest.mark.parametrize("trigger", [True, False], ids=["trigger-time", "no-trigger-time"])
def test_a_series_of_phase_images_alone_is_refused(tmp_path, trigger):
    s = write_cine_series(tmp_path / "flow", n_slices=3, n_phases=4)
    _with_twins(s, P_TYPE, trigger=trigger, keep_first=False)
    with pytest.raises(ImageReadError, match=r"the series holds phase images only \(12 image\(s\), ImageType ORIGINAL\\PRIMARY\\P\\ND, "
                                             r"e\.g\. PH\w+\.dcm\): phase images are velocity maps, not anatomy") as e:
        read_volume(s.folder)
    assert "\n" not in str(e.value)
    with pytest.raises(ImageReadError, match="phase images only"):  # one file of them too
        read_volume(next(s.folder.iterdir()))


@pytest.mark.parametrize("twin_type", [["ORIGINAL", "PRIMARY", "M", "ND", "NORM"], ["ORIGINAL", "PRIMARY", "R", "ND"]],
                         ids=["two-magnitudes", "magnitude-and-real"])
def test_other_image_types_at_one_position_and_trigger_time_are_still_refused(tmp_path, twin_type):
    s = write_cine_series(tmp_path / "cine", n_slices=3, n_phases=4)
    _with_twins(s, twin_type)
    with pytest.raises(ImageReadError, match=r"2 images at each position and trigger time, ImageType .* and .*: the series mixes image types; export one"):
        read_volume(s.folder)


def test_magnitude_phase_and_a_third_image_type_is_no_pair(tmp_path):
    """Phase images are left out only when every other image is a magnitude image: a third kind
    (here an untyped image at one position and trigger time) keeps the refusal, naming all."""
    s = write_cine_series(tmp_path / "flow", n_slices=3, n_phases=4)
    _with_twins(s, P_TYPE)
    extra = pydicom.dcmread(sorted(s.folder.glob("IM*"))[0])
    del extra.ImageType
    extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    extra.save_as(s.folder / "X0001.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError, match=r"ImageType \(not set\) and ORIGINAL\\PRIMARY\\M\\ND and ORIGINAL\\PRIMARY\\P\\ND"):
        read_volume(s.folder)


def test_an_enhanced_file_of_phase_frames_is_refused(tmp_path):
    s = write_enhanced_mr(tmp_path / "enh.dcm")
    ds = pydicom.dcmread(s.folder)
    ds.ComplexImageComponent = "PHASE"
    ds.save_as(s.folder, enforce_file_format=True)
    with pytest.raises(ImageReadError, match="phase images only"):
        read_volume(s.folder)
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.save_as(s.folder, enforce_file_format=True)
    assert np.array_equal(read_volume(s.folder).array, s.pixels.astype(np.float32))


@pytest.mark.parametrize(
    ("image_type", "complex_component", "want"),
    [
        ("ORIGINAL\\PRIMARY\\M\\ND", None, "M"),
        ("ORIGINAL\\PRIMARY\\P\\RETRO\\DIS2D", None, "P"),
        ("ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", None, "M"),
        ("ORIGINAL\\PRIMARY\\P_PCA\\P\\PCA", None, "P"),
        ("ORIGINAL\\PRIMARY\\OTHER", None, ""),
        ("ORIGINAL\\PRIMARY\\CARDIAC\\NONE", None, ""),  # Sunnybrook's
        ("ORIGINAL\\PRIMARY\\M\\P", None, ""),  # both: unknown
        ("P\\M", None, ""),  # the first two values are ORIGINAL/DERIVED, PRIMARY/SECONDARY
        ("ORIGINAL\\PRIMARY\\VOLUME\\NONE", "PHASE", "P"),
        ("ORIGINAL\\PRIMARY\\VOLUME\\NONE", "REAL", ""),
    ],
)
def test_mr_component(image_type, complex_component, want):
    assert mr_component(image_type, complex_component) == want


# -- the notes travel with the labels --------------------------------------------------------
def _phantom_flow_dicom(folder: Path) -> None:
    """The cine phantom (2 frames, 4 slices) as an MR DICOM series of magnitude images, each with
    a phase twin, HeartRate 120 and NominalInterval 1000 ms (60/min) in every header."""
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=2, n_slices=4, shape=(96, 96), spacing=(10.0, 1.5, 1.5), seed=3)
    pixels = np.round(ph.image.array).astype(np.int16)
    folder.mkdir(parents=True)
    study, series = generate_uid(), generate_uid()
    n_t, n_z = pixels.shape[:2]
    for z in range(n_z):
        for t in range(n_t):
            for k, (kind, plane) in enumerate(((M_TYPE, pixels[t, z]), (P_TYPE, np.full_like(pixels[t, z], 2048 - 500 * t)))):
                ds = _base(MR_STORAGE, study, series, "1.2.3.4.5")
                ds.Modality, ds.SeriesDescription, ds.ImageType = "MR", "FLOW", kind
                ds.InstanceNumber = z * 2 * n_t + 2 * t + k + 1
                ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, 10.0 * z], [f"{v:.6f}" for v in IOP]
                ds.PixelSpacing, ds.SliceThickness, ds.TriggerTime = [1.5, 1.5], 10.0, 300.0 * t
                ds.HeartRate, ds.NominalInterval = 120, 1000
                ds.Rows, ds.Columns = plane.shape
                ds.PixelData = plane.tobytes()
                ds.save_as(folder / f"IM{ds.InstanceNumber:04d}.dcm", enforce_file_format=True)


def test_segment_keeps_the_image_notes_in_the_sidecar_and_measure_reports_them(tmp_path):
    """`medseg segment` of a DICOM cine whose HeartRate (120) disagrees with its NominalInterval
    (60/min) and whose phase images were left out: the label sidecar says so (the labels'
    reader must see which heart rate was taken), and `medseg measure` reports both notes
    among its inputs, with the heart rate taken."""
    from medseg.cli import run_cli

    _phantom_flow_dicom(tmp_path / "flow")
    vol = read_volume(tmp_path / "flow")
    assert vol.shape == (2, 4, 96, 96)
    notes = {k: vol.meta[k] for k in ("time_note", "cardiac_timing_note")}
    assert "60.0 beats/min taken" in notes["cardiac_timing_note"] and "8 phase images" in notes["time_note"]
    assert run_cli(["segment", str(tmp_path / "flow"), "--auto", "--structures", "lv,myo", "-o", str(tmp_path / "seg.nii.gz")]) == 0
    prov = json.loads((tmp_path / "seg.json").read_text())["provenance"]
    assert prov["image_notes"] == notes and prov["cardiac_timing"] == {"heart_rate": 60.0, "nominal_interval": 1000.0}
    assert run_cli(["measure", str(tmp_path / "seg.nii.gz"), "-o", str(tmp_path / "r.json")]) == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert {k: rep["inputs"].get(k) for k in notes} == notes
    assert rep["heart_rate_bpm"] == pytest.approx(60.0)


def test_every_image_note_reaches_the_sidecar_and_measure_lists_differing_ones(tmp_path):
    """geometry_note, time_note and cardiac_timing_note go into ``provenance.image_notes`` (none:
    no key); ED and ES labels of images with different notes give measure a list."""
    from medseg.cli import run_cli
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=3, n_slices=6, shape=(64, 64), seed=3)
    ed, es = ph.info["ed_frame"], ph.info["es_frame"]
    plain = ph.image.phase(ed)
    _, side = write_labels(ph.labels[ed], plain, tmp_path / "plain.nii.gz", ph.label_map)
    assert "image_notes" not in json.loads(side.read_text())["provenance"]
    notes = {"geometry_note": "g", "time_note": "ed frames", "cardiac_timing_note": "hr"}
    img_ed = plain.with_array(plain.array, meta={**plain.meta, **notes, "other_note": "x"})
    _, side = write_labels(ph.labels[ed], img_ed, tmp_path / "ed.nii.gz", ph.label_map)
    assert json.loads(side.read_text())["provenance"]["image_notes"] == notes
    img_es = ph.image.phase(es)
    img_es = img_es.with_array(img_es.array, meta={**img_es.meta, "time_note": "es frames", "cardiac_timing_note": "hr"})
    write_labels(ph.labels[es], img_es, tmp_path / "es.nii.gz", ph.label_map)
    assert run_cli(["measure", "--ed", str(tmp_path / "ed.nii.gz"), "--es", str(tmp_path / "es.nii.gz"), "-o", str(tmp_path / "r.json")]) == 0
    inputs = json.loads((tmp_path / "r.json").read_text())["inputs"]
    assert inputs["time_note"] == ["ed frames", "es frames"] and inputs["cardiac_timing_note"] == "hr"

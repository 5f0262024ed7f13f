"""What an echocardiography researcher met with transthoracic echo clips exported from the scanner
as DICOM: Ultrasound Multi-frame Image Storage without position or orientation, JPEG Baseline
YBR_FULL_422 or PALETTE COLOR pixels, a SequenceOfUltrasoundRegions with the 2-D sector's region
in cm beside an ECG strip's region (seconds), FrameTime and HeartRate. A palette clip read as its
palette indices (a colour-flow jet in the LV brighter than any tissue), and the labels of a clip
given to ``measure --ed`` (for a biplane EF) were refused with "must each be one phase", which left
no way on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from medseg.cli import run_cli
from medseg.errors import ImageReadError
from medseg.io import read_volume, write_labels
from medseg.io.volume import Volume, luminance

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
MAP = "lv=1,myo=2,rv=3,la=4,ra=5"  # the phantom's values
TOP, LEFT, DX_CM = 6, 20, 0.05  # the sector's place on the screen; its pixel size (0.5 mm)


def _region(box: tuple[int, int, int, int], fmt: int, kind: int, units: tuple[int, int], delta: tuple[float, float]) -> Dataset:
    r = Dataset()
    r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = fmt, kind, 0
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = box
    r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = units
    r.PhysicalDeltaX, r.PhysicalDeltaY = delta
    return r


def _header(path: Path, shape: tuple[int, int, int], photometric: str, syntax: str) -> FileDataset:
    """A scanner's clip header: no position, the ECG strip's region first, then the 2-D sector's in cm."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID = US_MULTIFRAME, generate_uid(), syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.Manufacturer = generate_uid(), generate_uid(), "US", "GE Vingmed Ultrasound"
    ds.PatientID, ds.PatientSex, ds.PatientSize, ds.PatientWeight, ds.SeriesDescription = "ECHO01", "F", "1.65", "60", "A4C"
    n, rows, cols = shape
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.FrameTime, ds.HeartRate = rows, cols, n, 40.0, 72
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (1 if photometric == "PALETTE COLOR" else 3), photometric
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ecg = _region((0, rows - 12, cols - 1, rows - 1), 4, 0xA, (4, 0), (0.004, 1.0))
    sector = _region((LEFT, TOP, cols - 1, rows - 13), 1, 1, (3, 3), (DX_CM, DX_CM))
    ds.SequenceOfUltrasoundRegions = Sequence([ecg, sector])
    return ds


@pytest.fixture(scope="module")
def echo():
    """An apical 4-chamber phantom clip (8 frames) on a 72 x 104 screen: (grey screen (T, Y, X) uint8, labels)."""
    from medseg.phantoms import echo_apical_phantom

    ph = echo_apical_phantom("a4c", n_frames=8, shape=(54, 84), spacing=10 * DX_CM, seed=3)
    grey = np.zeros((8, 72, 104), np.uint8)
    grey[:, TOP:TOP + 54, LEFT:] = np.clip(ph.image.array[:, 0], 0, 255).astype(np.uint8)
    labels = np.zeros(grey.shape, np.uint8)
    labels[:, TOP:TOP + 54, LEFT:] = ph.labels[:, 0]
    return grey, labels


def _jpeg_clip(path: Path, grey: np.ndarray) -> Path:
    """The clip as GE exports it: JPEG Baseline, YBR_FULL_422, a green ECG trace on the strip."""
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[:, -6, :, 1] = 255
    ds = _header(path, grey.shape, "YBR_FULL_422", JPEGBaseline8Bit)
    frames = []
    for f in rgb:
        b = io.BytesIO()
        from PIL import Image

        Image.fromarray(f, "RGB").save(b, format="JPEG", quality=95, subsampling=1)  # 4:2:2
        frames.append(b.getvalue())
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].is_undefined_length = True
    ds.LossyImageCompression = "01"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_palette_colour_clip_reads_as_the_luminance_of_its_colours(tmp_path, echo):
    """PALETTE COLOR (as some scanners export colour-flow clips): the stored values are indices into
    the Red/Green/Blue palette LUTs. They were read as grey: a red jet (index 200) in the dark LV read
    200, brighter than any tissue (indices up to 127). Now each pixel is its colour's luminance; a
    palette clip without its LUTs is a one-line error, not indices read as grey."""
    grey, _ = echo
    lut = np.zeros((256, 3), np.uint16)
    lut[:128] = (np.arange(128) * 2)[:, None] * 257  # index i: grey 2i (16-bit entries)
    lut[128:, 0] = np.linspace(80, 255, 128).astype(np.uint16) * 257  # colour flow: reds
    index = (grey // 2).astype(np.uint8)
    index[:, 30:34, 60:66] = 200  # a jet in the LV
    path = tmp_path / "palette.dcm"
    ds = _header(path, grey.shape, "PALETTE COLOR", ExplicitVRLittleEndian)
    for name, channel in (("Red", 0), ("Green", 1), ("Blue", 2)):
        ds.add_new(f"{name}PaletteColorLookupTableDescriptor", "US", [256, 0, 16])
        ds.add_new(f"{name}PaletteColorLookupTableData", "OW", lut[:, channel].astype("<u2").tobytes())
    ds.PixelData = index.tobytes()
    ds.save_as(path, enforce_file_format=True)

    vol = read_volume(path)
    assert np.allclose(vol.array[:, 0], luminance(lut[index]), rtol=1e-6)
    jet, tissue = vol.array[0, 0, 31, 62], vol.array[0, 0][index[0] < 128].max()
    assert jet == pytest.approx(0.299 * lut[200, 0]) and jet < tissue
    assert vol.spacing[1:] == pytest.approx((10 * DX_CM, 10 * DX_CM))  # the sector's region, not the ECG strip's

    for name in ("Red", "Green", "Blue"):
        del ds[f"{name}PaletteColorLookupTableData"]
    ds.save_as(tmp_path / "no_lut.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError, match="PALETTE COLOR image whose palette cannot be applied") as e:
        read_volume(tmp_path / "no_lut.dcm")
    assert "\n" not in str(e.value)


def test_a_jpeg_ybr_clip_measures_as_its_labels_say(tmp_path, echo, capsys):
    """The GE clip (JPEG YBR_FULL_422, the ECG strip's region listed first) reads as the grey sector
    within JPEG's error, 0.5 mm pixels from the sector's region, frame times from FrameTime and the
    heart rate from HeartRate; labels written for it give ``medseg measure`` the EF of the method of
    disks on those labels, and the patient's sex from the header."""
    from medseg.measure import measure_echo_clip

    grey, labels = echo
    vol = read_volume(_jpeg_clip(tmp_path / "a4c.dcm", grey))
    assert vol.modality == "US" and vol.spacing_known and vol.spacing[1:] == pytest.approx((0.5, 0.5))
    assert np.abs(vol.array[:, 0, TOP:TOP + 54, LEFT:] - grey[:, TOP:TOP + 54, LEFT:]).mean() < 2.0
    assert np.allclose(vol.frame_times_s, np.arange(8) * 0.040) and vol.meta["heart_rate"] == 72
    write_labels(labels[:, None], vol, tmp_path / "a4c_lab.nii.gz", MAP, provenance={"input": str(tmp_path / "a4c.dcm")})
    assert run_cli(["measure", str(tmp_path / "a4c_lab.nii.gz"), "-o", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    truth = measure_echo_clip(labels, label_map=MAP, spacing_mm=(0.5, 0.5))
    assert report["method"] == "single_plane_disks_clip" and report["lv"]["ef_pct"] == pytest.approx(truth["lv"]["ef_pct"], abs=0.05)
    assert report["lv"]["edv_ml"] == pytest.approx(truth["lv"]["edv_ml"], rel=1e-3) and report["frame_times_s"][1] == pytest.approx(0.04)
    assert set(report["inputs"]["body_from_dicom"]) == {"height_cm", "weight_kg", "sex"} and report["bsa_m2"] == pytest.approx(1.6583, abs=1e-3)


@pytest.mark.parametrize("option", ["--ed", "--a2c-ed"])
def test_clip_labels_given_as_one_phase_are_refused_with_the_way_to_measure_them(tmp_path, echo, capsys, option):
    """``measure --ed CLIP`` (a biplane EF wanted from the labels of two clips) said "--ed and --es
    must each be one phase" (and for --a2c-ed "echo views are one 2-D image each"): it now names the
    file, its frames, and the command that measures a clip (ED and ES found on its curve)."""
    grey, labels = echo
    like = Volume(grey[:, None].astype(np.float32), np.diag([-0.5, -0.5, 1.0, 1.0]), modality="US")
    clip = tmp_path / "a4c_lab.nii.gz"
    write_labels(labels[:, None], like, clip, MAP)
    one = Volume(like.array[:1], like.affine, modality="US")
    for name, t in (("ed.nii.gz", 1), ("es.nii.gz", 4)):
        write_labels(labels[t][None, None], one, tmp_path / name, MAP)
    files = {"--ed": tmp_path / "ed.nii.gz", "--es": tmp_path / "es.nii.gz", "--a2c-ed": tmp_path / "ed.nii.gz", "--a2c-es": tmp_path / "es.nii.gz"}
    files[option] = clip
    argv = ["measure", *(a for opt, p in files.items() for a in (opt, str(p))), "-o", str(tmp_path / "r.json")]
    capsys.readouterr()
    assert run_cli(argv) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"{option} takes one frame, and a4c_lab.nii.gz holds 8 frames of one view" in err
    assert "medseg measure a4c_lab.nii.gz" in err and not (tmp_path / "r.json").exists()

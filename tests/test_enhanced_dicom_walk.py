"""A user's walk with enhanced multi-frame DICOM cines (one file per series, per-frame functional
groups: Siemens XA / Philips exports, and highdicom's Legacy Converted Enhanced MR): read like
the same images as a folder of single-frame files (array, affine, frame times, heart rate),
bad files refused in one line naming the frame (DICOM frame numbers start at 1), and a DICOM
SEG of one phase referencing the frames of that phase.

The inputs are written here from a phantom with pydicom / highdicom; the test on Sunnybrook's
real series skips when ../shared/data is absent.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medseg.cli import run_cli
from medseg.errors import GeometryError, ImageReadError
from medseg.io import read_volume

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
ROW, COL = np.array([0.8, 0.6, 0.0]), np.array([-0.36, 0.48, -0.8])  # an oblique short axis (LPS)
NORMAL = np.cross(ROW, COL)
T, Z, NY, NX = 3, 4, 24, 20
STEP_MM, SPACING = 8.0, (1.5, 1.25)


def _phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels (T, Z, Y, X) uint16, positions (Z, 3) LPS mm, trigger times (T, Z) ms)."""
    rng = np.random.default_rng(7)
    pix = rng.integers(0, 3000, size=(T, Z, NY, NX)).astype(np.uint16)
    ipps = np.array([-40.0, 25.0, 60.0])[None] + np.arange(Z)[:, None] * STEP_MM * NORMAL[None]
    trig = np.array([[t * 320.0 + 2.5 * (z % 2) for z in range(Z)] for t in range(T)])
    return pix, ipps, trig


def _base(sop: str, series: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = "1.2.826.0.1.9.1", series, "1.2.826.0.1.9.2"
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P9", "Walk^Test", "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "A1"
    ds.SeriesDate, ds.SeriesTime, ds.ContentDate, ds.ContentTime = "20240101", "120000", "20240101", "120000"
    ds.ReferringPhysicianName, ds.Manufacturer, ds.SeriesNumber = "", "SIEMENS", 12
    ds.Modality, ds.SeriesDescription, ds.PositionReferenceIndicator = "MR", "cine_sax", ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def _write_enhanced(path: Path, order: str = "zt", rr_ms: float | None = None) -> Path:
    """A true enhanced MR cine: orientation and spacing shared, per frame its position, trigger
    delay, temporal position index and dimension index values; frames stored slice by slice
    (``zt``, Philips) or phase by phase (``tz``)."""
    pix, ipps, trig = _phantom()
    ds = _base(ENHANCED_MR, generate_uid())
    ds.InstanceNumber, ds.Rows, ds.Columns = 1, NY, NX
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    shared, pm, po, ft = Dataset(), Dataset(), Dataset(), Dataset()
    pm.PixelSpacing, pm.SliceThickness = list(SPACING), 6.0
    po.ImageOrientationPatient = [float(v) for v in np.r_[ROW, COL]]
    ft.FrameType, ft.ComplexImageComponent = ["ORIGINAL", "PRIMARY", "M", "NONE"], "MAGNITUDE"
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([pm]), Sequence([po])
    shared.MRImageFrameTypeSequence = Sequence([ft])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    dims = []
    for pointer in ("StackID", "InStackPositionNumber", "TemporalPositionIndex"):
        d = Dataset()
        d.DimensionIndexPointer, d.FunctionalGroupPointer = tag_for_keyword(pointer), tag_for_keyword("FrameContentSequence")
        dims.append(d)
    ds.DimensionIndexSequence = Sequence(dims)
    order_tz = [(t, z) for z in range(Z) for t in range(T)] if order == "zt" else [(t, z) for t in range(T) for z in range(Z)]
    groups = []
    for t, z in order_tz:
        fg, pp, cs, fc = Dataset(), Dataset(), Dataset(), Dataset()
        pp.ImagePositionPatient = [float(v) for v in ipps[z]]
        cs.NominalCardiacTriggerDelayTime = float(trig[t, z])
        if rr_ms is not None:
            cs.RRIntervalTimeNominal = rr_ms
        fc.StackID, fc.InStackPositionNumber, fc.TemporalPositionIndex = "1", z + 1, t + 1
        fc.DimensionIndexValues = [1, z + 1, t + 1]
        fg.PlanePositionSequence, fg.CardiacSynchronizationSequence = Sequence([pp]), Sequence([cs])
        fg.FrameContentSequence = Sequence([fc])
        groups.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    ds.NumberOfFrames = len(groups)
    ds.PixelData = np.stack([pix[t, z] for t, z in order_tz]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _write_folder(folder: Path, heart_rates: tuple[int, ...] = (70,)) -> Path:
    """The same cine as single-frame MR files; slice z records heart_rates[z % len]."""
    pix, ipps, trig = _phantom()
    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    for z in range(Z):
        for t in range(T):
            ds = _base(MR, series)
            ds.InstanceNumber = z * T + t + 1
            ds.ImagePositionPatient = [float(v) for v in ipps[z]]
            ds.ImageOrientationPatient = [float(v) for v in np.r_[ROW, COL]]
            ds.PixelSpacing, ds.SliceThickness, ds.TriggerTime = list(SPACING), 6.0, float(trig[t, z])
            ds.HeartRate, ds.ImageType = heart_rates[z % len(heart_rates)], ["ORIGINAL", "PRIMARY", "M", "NONE"]
            ds.Rows, ds.Columns, ds.PixelData = NY, NX, pix[t, z].tobytes()
            ds.save_as(folder / f"IM{ds.InstanceNumber:04d}.dcm", enforce_file_format=True)
    return folder


def _legacy_converted(folder: Path, path: Path) -> Path:
    """highdicom's Legacy Converted Enhanced MR Image of a folder's single-frame files."""
    hd = pytest.importorskip("highdicom")
    sources = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd.legacy.LegacyConvertedEnhancedMRImage(sources, series_instance_uid=generate_uid(), series_number=99,
                                                 sop_instance_uid=generate_uid(), instance_number=1).save_as(path)
    return path


def _assert_same(a, b) -> None:
    assert a.array.shape == b.array.shape == (T, Z, NY, NX)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-5)
    np.testing.assert_allclose(a.spacing, (STEP_MM, *SPACING), atol=1e-5)
    np.testing.assert_allclose(a.frame_times_s, b.frame_times_s)


@pytest.mark.parametrize("order", ["zt", "tz"])
def test_an_enhanced_cine_reads_as_its_single_frame_series(tmp_path, order):
    folder = read_volume(_write_folder(tmp_path / "folder"))
    enhanced = read_volume(_write_enhanced(tmp_path / "enh.dcm", order))
    _assert_same(enhanced, folder)
    np.testing.assert_array_equal(enhanced.array, _phantom()[0].astype(np.float32))
    np.testing.assert_allclose(enhanced.frame_times_s, [0.0, 0.32, 0.64])
    frames = np.array(enhanced.meta["frame_numbers"])  # which stored frame is (t, z)
    expected = [[z * T + t if order == "zt" else t * Z + z for z in range(Z)] for t in range(T)]
    np.testing.assert_array_equal(frames, expected)


def test_a_legacy_converted_file_takes_the_median_heart_rate_of_its_frames(tmp_path):
    """Each source image's HeartRate lies in the file's per-frame converted attributes: the
    median over the frames, as over the folder (it was the first frame's: 76 for 78)."""
    folder = _write_folder(tmp_path / "folder", heart_rates=(76, 78, 79, 80))
    converted = read_volume(_legacy_converted(folder, tmp_path / "lce.dcm"))
    from_folder = read_volume(folder)
    _assert_same(converted, from_folder)
    assert from_folder.meta["heart_rate"] == 78.5
    assert converted.meta["heart_rate"] == 78.5


def test_an_enhanced_cine_takes_its_rr_interval_from_the_cardiac_synchronization_group(tmp_path):
    """A true enhanced file records the nominal RR interval per frame (RRIntervalTimeNominal),
    not as NominalInterval: read as the series' nominal interval, and its heart rate without
    a HeartRate tag."""
    vol = read_volume(_write_enhanced(tmp_path / "enh.dcm", rr_ms=857.0))
    assert vol.meta["nominal_interval"] == 857.0


def _edit(src: Path, dst: Path, change) -> Path:
    ds = pydicom.dcmread(src)
    change(ds)
    ds.save_as(dst)
    return dst


def _rotate_last_slice(ds) -> None:
    orientation = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    del ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        po = Dataset()
        po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0] if i >= (Z - 1) * T else list(orientation[0].ImageOrientationPatient)
        fg.PlaneOrientationSequence = Sequence([po])


@pytest.mark.parametrize("case, error, message", [
    ("no_position", GeometryError, r"missing position: bad\.dcm frame 6 has no ImagePositionPatient"),
    ("mixed_orientation", GeometryError,
     r"different orientations \(bad\.dcm frame 1 \[0\.8, 0\.6, 0, -0\.36, 0\.48, -0\.8\] vs bad\.dcm frame 10 \[1, 0, 0, 0, 1, 0\]\)"),
    ("cut_in_header", ImageReadError, r"per-frame functional groups for NumberOfFrames 12: the file was cut short"),
])
def test_a_bad_enhanced_file_is_refused_in_one_line_naming_the_frame(tmp_path, capsys, case, error, message):
    """Frames are named as DICOM numbers them (from 1), as the stacking errors already did; an
    orientation error names the frames and their orientations (it named the file twice)."""
    src = _write_enhanced(tmp_path / "src.dcm")
    bad = tmp_path / "bad.dcm"
    if case == "no_position":
        _edit(src, bad, lambda ds: delattr(ds.PerFrameFunctionalGroupsSequence[5], "PlanePositionSequence"))
    elif case == "mixed_orientation":
        _edit(src, bad, _rotate_last_slice)
    else:
        bad.write_bytes(src.read_bytes()[:3000])
    with pytest.raises(error, match=message):
        read_volume(bad)
    assert run_cli(["info", str(bad)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:")


def test_a_dicom_seg_of_one_phase_references_that_phases_frames(tmp_path):
    hd = pytest.importorskip("highdicom")
    from medseg.io.seg_writer import write_dicom_seg

    vol = read_volume(_write_enhanced(tmp_path / "enh.dcm", order="zt"))
    labels = np.zeros((Z, NY, NX), np.uint8)
    labels[:, 8:14, 6:12] = 1
    out = write_dicom_seg(labels, vol, tmp_path / "seg.dcm", "lv=1", frame=2)
    seg = hd.seg.segread(out)
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == vol.meta["sop_instance_uids"][0][0]
    referenced = sorted(int(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
                        for fg in seg.PerFrameFunctionalGroupsSequence)
    assert referenced == sorted(vol.meta["frame_numbers"][2][z] + 1 for z in range(Z))  # phase 2: frames 3, 6, 9, 12


def test_sunnybrooks_series_converted_by_highdicom_reads_as_the_folder(shared_data, tmp_path):
    hd = pytest.importorskip("highdicom")
    folder = shared_data / "sunnybrook" / "dicoms" / "SCD0000101"
    if not folder.is_dir():
        pytest.skip("Sunnybrook SCD0000101 is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sources = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
        for ds in sources:  # the anonymised export's month 00 and one frame of reference per slice: highdicom refuses them
            for key in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
                if key in ds:
                    ds[key].value = "20120101"
            ds.PatientBirthDate, ds.FrameOfReferenceUID = "", sources[0].FrameOfReferenceUID
        hd.legacy.LegacyConvertedEnhancedMRImage(sources, series_instance_uid=generate_uid(), series_number=99,
                                                 sop_instance_uid=generate_uid(), instance_number=1).save_as(tmp_path / "sb.dcm")
    converted, original = read_volume(tmp_path / "sb.dcm"), read_volume(folder)
    assert converted.array.shape == original.array.shape == (2, 9, 256, 256)
    np.testing.assert_array_equal(converted.array, original.array)
    np.testing.assert_allclose(converted.affine, original.affine, atol=1e-4)
    np.testing.assert_allclose(converted.frame_times_s, original.frame_times_s)
    assert converted.meta["heart_rate"] == original.meta["heart_rate"] == 79.0


def _realtime(ds, trigger: float | None, step_ms: float) -> None:
    """Make the cine ungated: no trigger time (or ``trigger`` on every frame, a placeholder), each
    frame's Frame Content date-time ``step_ms`` after the one before, by temporal position."""
    import datetime

    start = datetime.datetime(2024, 1, 1, 12, 0, 0)
    for fg in ds.PerFrameFunctionalGroupsSequence:
        if trigger is None:
            del fg.CardiacSynchronizationSequence
        else:
            fg.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime = trigger
        fc = fg.FrameContentSequence[0]
        t, z = int(fc.TemporalPositionIndex) - 1, int(fc.InStackPositionNumber) - 1
        when = start + datetime.timedelta(milliseconds=step_ms * (t * Z + z))  # slices interleaved within each frame
        fc.FrameReferenceDateTime = when.strftime("%Y%m%d%H%M%S.%f")


@pytest.mark.parametrize("trigger", [None, 0.0])
def test_a_real_time_cine_gets_its_frame_times_from_the_frame_date_times(tmp_path, trigger):
    """An ungated (real-time) cine has no trigger delay, or 0 on every frame: its frame times
    come from the frames' FrameReferenceDateTime (there were none, and no word why)."""
    src = _write_enhanced(tmp_path / "src.dcm", order="tz")
    vol = read_volume(_edit(src, tmp_path / "rt.dcm", lambda ds: _realtime(ds, trigger, step_ms=12.5)))
    np.testing.assert_array_equal(vol.array, _phantom()[0].astype(np.float32))  # ordered by TemporalPositionIndex
    np.testing.assert_allclose(vol.frame_times_s, [0.0, 0.05, 0.1])  # Z = 4 slices of 12.5 ms each per frame
    assert "frame times from the frames' FrameReferenceDateTime" in vol.meta["time_note"]
    assert "left out" not in vol.meta["time_note"]


def test_frame_date_times_that_do_not_advance_give_no_frame_times(tmp_path):
    src = _write_enhanced(tmp_path / "src.dcm")
    vol = read_volume(_edit(src, tmp_path / "rt.dcm", lambda ds: _realtime(ds, None, step_ms=0.0)))
    assert vol.frame_times_s is None


def test_a_cine_of_one_enhanced_file_per_slice_reads_and_gets_a_dicom_seg(tmp_path):
    """Some scanners export a cine as one enhanced file per slice (one series): read as the
    folder of single-frame files, and a DICOM SEG of a phase references each file's frame of
    that phase (it was refused, 'DICOM SEG from several multi-frame files is not supported',
    after the whole segmentation)."""
    hd = pytest.importorskip("highdicom")
    from medseg.io.seg_reader import read_dicom_seg, seg_frame_in
    from medseg.io.seg_writer import write_dicom_seg

    src = _write_enhanced(tmp_path / "all.dcm", order="zt")
    folder = tmp_path / "per_slice"
    folder.mkdir()
    whole = pydicom.dcmread(src)
    for z in range(Z):  # frames z*T .. z*T+T-1 are slice z's phases
        part = pydicom.dcmread(src)
        part.SOPInstanceUID = part.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        part.InstanceNumber = z + 1
        part.PerFrameFunctionalGroupsSequence = Sequence(list(whole.PerFrameFunctionalGroupsSequence[z * T:(z + 1) * T]))
        part.NumberOfFrames = T
        part.PixelData = whole.PixelData[z * T * NY * NX * 2:(z + 1) * T * NY * NX * 2]
        part.save_as(folder / f"slice{z}.dcm", enforce_file_format=True)
    vol = read_volume(folder)
    _assert_same(vol, read_volume(_write_folder(tmp_path / "single")))
    labels = np.zeros((Z, NY, NX), np.uint8)
    labels[:, 8:14, 6:12] = 1
    out = write_dicom_seg(labels, vol, tmp_path / "seg.dcm", "lv=1", frame=1)
    seg = hd.seg.segread(out)
    refs = {(str(s.ReferencedSOPInstanceUID), int(s.ReferencedFrameNumber))
            for fg in seg.PerFrameFunctionalGroupsSequence for s in fg.DerivationImageSequence[0].SourceImageSequence}
    assert refs == {(vol.meta["sop_instance_uids"][1][z], vol.meta["frame_numbers"][1][z] + 1) for z in range(Z)}
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == Z
    assert seg_frame_in(read_dicom_seg(out), vol) == 1


def test_a_dicom_seg_of_a_single_file_cine_references_one_frame_per_seg_frame(tmp_path):
    """highdicom referenced every phase's frame at a position (all renumbered to one frame):
    one reference per SEG frame now, and the SEG is placed on its phase when read back."""
    pytest.importorskip("highdicom")
    from medseg.io.seg_reader import read_dicom_seg, seg_frame_in
    from medseg.io.seg_writer import write_dicom_seg

    vol = read_volume(_write_enhanced(tmp_path / "enh.dcm", order="tz"))
    labels = np.zeros((Z, NY, NX), np.uint8)
    labels[:, 8:14, 6:12] = 1
    out = write_dicom_seg(labels, vol, tmp_path / "seg.dcm", "lv=1", frame=2)
    seg = pydicom.dcmread(out)
    assert {len(fg.DerivationImageSequence[0].SourceImageSequence) for fg in seg.PerFrameFunctionalGroupsSequence} == {1}
    assert seg_frame_in(read_dicom_seg(out), vol) == 2


def test_a_flat_folder_of_enhanced_studies_is_one_case_per_file_but_per_slice_files_are_one(tmp_path):
    """`medseg batch` on a flat export of enhanced files, one per study (Siemens XA, Philips),
    made the folder one case that failed ('holds 2 studies'); each such file (frames at several
    positions) is a case, while enhanced files of one slice each stay one stack, one case."""
    from medseg.batch import discover_cases

    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("studyA", "studyB"):
        path = _write_enhanced(flat / f"{name}.dcm")
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = generate_uid()
        ds.save_as(path, enforce_file_format=True)
    cases = discover_cases(flat)
    assert [(c.case, Path(c.input).name, c.error) for c in cases] == [("studyA", "studyA.dcm", None), ("studyB", "studyB.dcm", None)]
    assert read_volume(cases[0].input).shape == (T, Z, NY, NX)
    src, per_slice = _write_enhanced(tmp_path / "all.dcm"), tmp_path / "in" / "per_slice"
    per_slice.mkdir(parents=True)
    whole = pydicom.dcmread(src)
    for z in range(Z):
        part = pydicom.dcmread(src)
        part.SOPInstanceUID = part.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        part.PerFrameFunctionalGroupsSequence = Sequence(list(whole.PerFrameFunctionalGroupsSequence[z * T:(z + 1) * T]))
        part.NumberOfFrames = T
        part.PixelData = whole.PixelData[z * T * NY * NX * 2:(z + 1) * T * NY * NX * 2]
        part.save_as(per_slice / f"slice{z}.dcm", enforce_file_format=True)
    assert [c.case for c in discover_cases(tmp_path / "in")] == ["per_slice"]


@pytest.mark.parametrize("how", ["datetime", "date_and_time"])
def test_a_real_time_cine_of_single_frame_files_gets_its_frame_times_from_the_acquisition_times(tmp_path, how):
    """The same for a real-time cine saved one file per image (no TriggerTime): the images'
    AcquisitionDateTime, else AcquisitionDate and AcquisitionTime."""
    import datetime

    folder = _write_folder(tmp_path / "rt")
    start = datetime.datetime(2024, 1, 1, 12, 0, 0)
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        del ds.TriggerTime
        z, t = divmod(int(ds.InstanceNumber) - 1, T)
        when = start + datetime.timedelta(milliseconds=40.0 * (t * Z + z))
        if how == "datetime":
            ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S.%f")
        else:
            ds.AcquisitionDate, ds.AcquisitionTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")
        ds.save_as(path, enforce_file_format=True)
    vol = read_volume(folder)
    np.testing.assert_array_equal(vol.array, _phantom()[0].astype(np.float32))
    np.testing.assert_allclose(vol.frame_times_s, [0.0, 0.16, 0.32])  # Z = 4 slices of 40 ms each per frame
    assert vol.meta["time_note"].startswith("no TriggerTime (an ungated, real-time cine): frames ordered by InstanceNumber, frame times "
                                            "from the frames' AcquisitionDateTime (or AcquisitionDate and AcquisitionTime) (160.0 ms apart)")

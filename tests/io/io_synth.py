"""Synthetic DICOM files for the io tests (written with pydicom into tmp_path).

A cine short-axis series: ``n_slices`` positions x ``n_phases`` phases, oblique orientation,
file names and InstanceNumbers shuffled, trigger times jittered between slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"

# an oblique short-axis-like orientation (LPS), orthonormal
_ROW = np.array([0.8, 0.6, 0.0])
_COL = np.array([-0.36, 0.48, -0.8])
IOP = (*_ROW, *_COL)
NORMAL = np.cross(_ROW, _COL)


@dataclass
class Series:
    folder: Path
    pixels: np.ndarray  # (T, Z, Y, X) int16 stored values, in true (sorted) order
    ipps: np.ndarray  # (Z, 3) LPS
    triggers_ms: np.ndarray  # (T, Z)
    pixel_spacing: tuple[float, float]  # (dy, dx)
    step_mm: float
    slope: float
    intercept: float


def _base(sop_class: str, study: str, series: str, frame_ref: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_ref
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P001", "Test^Patient", "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "A1"
    ds.ReferringPhysicianName, ds.Manufacturer, ds.SeriesNumber = "", "synth", 5
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def write_cine_series(
    folder: Path,
    n_slices: int = 4,
    n_phases: int = 2,
    rows: int = 12,
    cols: int = 10,
    pixel_spacing: tuple[float, float] = (1.5, 1.25),
    step_mm: float = 8.0,
    description: str = "CINE SA",
    series_uid: str | None = None,
    study_uid: str | None = None,
    seed: int = 0,
    first_slice: int = 0,
    prefix: str = "IM",
    series_number: int | None = None,
) -> Series:
    """Write a shuffled, oblique cine series; returns the truth in sorted order.

    ``first_slice`` shifts the stack along the normal by that many steps; ``prefix`` starts
    the file names (so several series can share a folder)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    study, series, fref = study_uid or generate_uid(), series_uid or generate_uid(), "1.2.3.4.5"
    origin = np.array([-40.0, 25.0, 60.0])
    ipps = origin[None] + (first_slice + np.arange(n_slices))[:, None] * step_mm * NORMAL[None]
    pixels = rng.integers(0, 1000, size=(n_phases, n_slices, rows, cols)).astype(np.int16)
    triggers = np.array([[t * 400.0 + 3.5 * ((z * 7) % 3) for z in range(n_slices)] for t in range(n_phases)])
    slope, intercept = 2.0, -5.0
    n = n_slices * n_phases
    names, instances = rng.permutation(n), rng.permutation(n) + 1
    k = 0
    for z in range(n_slices):
        for t in range(n_phases):
            ds = _base(MR_STORAGE, study, series, fref)
            ds.Modality, ds.SeriesDescription = "MR", description
            if series_number is not None:
                ds.SeriesNumber = series_number
            ds.InstanceNumber = int(instances[k])
            ds.ImagePositionPatient = [f"{v:.4f}" for v in ipps[z]]
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in IOP]
            ds.PixelSpacing = list(pixel_spacing)
            ds.SliceThickness, ds.TriggerTime = 6.0, float(triggers[t, z])
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
            ds.HeartRate, ds.NominalInterval = 60, 1000
            ds.Rows, ds.Columns = rows, cols
            ds.PixelData = pixels[t, z].tobytes()
            ds.save_as(folder / f"{prefix}{names[k]:04d}.dcm", enforce_file_format=True)
            k += 1
    return Series(folder, pixels, ipps, triggers, pixel_spacing, step_mm, slope, intercept)


def write_enhanced_mr(path: Path, n_slices: int = 3, n_phases: int = 2, rows: int = 8, cols: int = 9) -> Series:
    """One enhanced MR multi-frame file, frames stored in shuffled order."""
    rng = np.random.default_rng(1)
    ds = _base(ENHANCED_MR_STORAGE, generate_uid(), generate_uid(), "1.2.3.4.6")
    ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "MR", "ENH CINE", 1
    ds.Rows, ds.Columns = rows, cols
    origin = np.array([10.0, -20.0, 30.0])
    ipps = origin[None] + np.arange(n_slices)[:, None] * 7.0 * NORMAL[None]
    pixels = rng.integers(0, 500, size=(n_phases, n_slices, rows, cols)).astype(np.int16)
    triggers = np.array([[t * 350.0 + z for z in range(n_slices)] for t in range(n_phases)])
    shared = Dataset()
    pm, po = Dataset(), Dataset()
    pm.PixelSpacing, pm.SliceThickness = [1.1, 1.3], 6.0
    po.ImageOrientationPatient = list(IOP)
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([pm]), Sequence([po])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    order = rng.permutation(n_slices * n_phases)
    per, frames = [], []
    for k in order:
        t, z = divmod(int(k), n_slices)
        fg, pp, cs = Dataset(), Dataset(), Dataset()
        pp.ImagePositionPatient = [float(v) for v in ipps[z]]
        cs.NominalCardiacTriggerDelayTime = float(triggers[t, z])
        fg.PlanePositionSequence, fg.CardiacSynchronizationSequence = Sequence([pp]), Sequence([cs])
        per.append(fg)
        frames.append(pixels[t, z])
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.NumberOfFrames = len(per)
    ds.PixelData = np.stack(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Series(path, pixels, ipps, triggers, (1.1, 1.3), 7.0, 1.0, 0.0)


def write_us_clip(path: Path, n_frames: int = 5, rows: int = 16, cols: int = 20, frame_time_ms: float = 33.3) -> np.ndarray:
    """A legacy multi-frame ultrasound clip without geometry; returns the (T, Y, X) pixels."""
    pixels = np.random.default_rng(2).integers(0, 255, size=(n_frames, rows, cols)).astype(np.uint8)
    ds = _base(US_MULTIFRAME_STORAGE, generate_uid(), generate_uid(), "1.2.3")
    ds.Modality, ds.InstanceNumber = "US", 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.FrameTime = rows, cols, n_frames, frame_time_ms
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return pixels


def write_phantom_cine_series(folder: Path, study: str):
    """A small short-axis phantom cine (:func:`medseg.phantoms.cine_sax_phantom`, 6 frames x 6
    slices of 64 x 64) as a classic MR series of study ``study`` (one file per slice and frame);
    returns the phantom (its labels are the truth on the series' grid)."""
    from medseg.phantoms import cine_sax_phantom

    ph = cine_sax_phantom(n_frames=6, n_slices=6, shape=(64, 64), spacing=(10.0, 2.0, 2.0), seed=1)
    vol, lps = ph.image, np.array([-1.0, -1.0, 1.0])
    a = vol.affine
    iop = [float(v) for v in (*(lps * a[:3, 0] / np.linalg.norm(a[:3, 0])), *(lps * a[:3, 1] / np.linalg.norm(a[:3, 1])))]
    pixels = np.clip(vol.array / vol.array.max() * 2000, 0, 4095).astype(np.int16)
    series = generate_uid()
    folder.mkdir(parents=True)
    n_t, n_z = pixels.shape[:2]
    for z in range(n_z):
        for t in range(n_t):
            ds = _base(MR_STORAGE, study, series, "1.2.3.4.7")
            ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "MR", "sa cine", z * n_t + t + 1
            ds.PatientID, ds.PatientSize, ds.PatientWeight = "SR0001", "1.77", "70"
            ds.InstitutionName, ds.StationName, ds.Manufacturer = "St. Elsewhere Hospital", "MRC40123", "ACME"
            ds.ImagePositionPatient = [float(v) for v in lps * (a @ [0, 0, z, 1])[:3]]
            ds.ImageOrientationPatient, ds.PixelSpacing = iop, [float(vol.spacing[1]), float(vol.spacing[2])]
            ds.SliceThickness, ds.TriggerTime, ds.HeartRate = float(vol.spacing[0]), 100.0 * t, 60
            ds.Rows, ds.Columns = pixels.shape[2:]
            ds.PixelData = pixels[t, z].tobytes()
            ds.save_as(folder / f"IM{z * n_t + t + 1:04d}.dcm", enforce_file_format=True)
    return ph


def us_region(box_rc: tuple[int, int, int, int], fmt: int = 1, units: tuple[int, int] = (3, 3),
              delta_cm: tuple[float, float] = (0.07, 0.07), data_type: int = 1) -> Dataset:
    """One SequenceOfUltrasoundRegions item: ``box_rc`` = (row0, col0, row1, col1), inclusive
    (written as RegionLocationMinX0 = col0, ...); ``fmt`` RegionSpatialFormat (1: 2-D);
    ``units`` PhysicalUnitsX/YDirection (3: cm); ``delta_cm`` PhysicalDeltaX/Y."""
    r0, c0, r1, c1 = box_rc
    r = Dataset()
    r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = fmt, data_type, 0
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = c0, r0, c1, r1
    r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = units
    r.PhysicalDeltaX, r.PhysicalDeltaY = delta_cm
    return r


def write_us_screen(path: Path, pixels: np.ndarray, regions: list[Dataset] | None, patient: str = "ECHO01",
                    frame_time_ms: float = 50.0) -> Path:
    """A full-screen ultrasound multi-frame DICOM as echo machines export one: (T, Y, X) uint8
    ``pixels``, no position, and ``regions`` (:func:`us_region`; None: no SequenceOfUltrasoundRegions)."""
    import pydicom

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = US_MULTIFRAME_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = US_MULTIFRAME_STORAGE, meta.MediaStorageSOPInstanceUID, "US"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = generate_uid(), generate_uid(), patient
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.FrameTime = pixels.shape[1], pixels.shape[2], pixels.shape[0], frame_time_ms
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    if regions is not None:
        ds.SequenceOfUltrasoundRegions = Sequence(regions)
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path

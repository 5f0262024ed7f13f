"""What a DICOM Volume's ``meta`` records, read from its headers: series, study and patient
identifiers, the files and frames of each (t, z) image, the cardiac timing (heart rate, RR
interval) and the patient's body data (height, weight, sex), with the small header-value
helpers (:func:`_num`, :func:`_modality`) the other ``medseg.io.dicom_*`` modules share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .dicom_frames import FrameInfo, _group_value, converted_value


def _meta(ds0: Dataset, source: Path, grid: list[list[FrameInfo]], datasets: list[Dataset] | None = None) -> dict[str, Any]:
    """What a DICOM Volume's ``meta`` records; ``datasets`` are the headers of all its files
    (for the heart rate: :func:`_cardiac_timing`), ``ds0``'s alone when not given."""
    uids = list(dict.fromkeys(f.series_uid for row in grid for f in row))
    heart_rate, nominal_interval, timing_note = _cardiac_timing(datasets or [ds0])
    meta = {
        "format": "dicom",
        "path": str(source),
        "source_ndim": 4 if len(grid) > 1 else 3,
        "positioned": True,  # every image has position + orientation (needed for DICOM SEG)
        "series_description": grid[0][0].series_description or None,
        "series_instance_uid": uids[0] or None,
        "series_instance_uids": uids,
        "study_instance_uid": str(ds0.get("StudyInstanceUID", "")) or None,
        "patient_id": str(ds0.get("PatientID", "")) or None,
        "frame_of_reference_uid": str(ds0.get("FrameOfReferenceUID", "")) or None,
        "patient_body": body_of(ds0),  # height, weight, sex for BSA (napari's measurement panel); never written out
        "scanner": scanner_of(ds0),  # manufacturer, model, field strength: a label sidecar's provenance.scanner
        "heart_rate": heart_rate,
        "nominal_interval": nominal_interval,
        "files": [[str(f.path) for f in row] for row in grid],
        "frame_numbers": [[f.frame for f in row] for row in grid],
        "sop_instance_uids": [[f.sop_uid for f in row] for row in grid],
        "trigger_times_ms": [[f.trigger_ms for f in row] for row in grid],
    }
    if timing_note:
        meta["cardiac_timing_note"] = timing_note
    if (note := frame_of_reference_note(datasets or [ds0])) is not None:
        meta["frame_of_reference_note"] = note
    return meta


def frame_of_reference_note(datasets: list[Dataset]) -> str | None:
    """The note on a series whose images carry more than one FrameOfReferenceUID (Sunnybrook's
    anonymiser gave each image its own): medseg stacks them by their positions as one frame of
    reference, and a DICOM SEG written for them references the first image's (seg_writer); None
    for one (or none)."""
    uids = {str(ds.get("FrameOfReferenceUID", "") or "") for ds in datasets} - {""}
    if len(uids) < 2:
        return None
    return (f"the {len(datasets)} images carry {len(uids)} FrameOfReferenceUIDs (an anonymiser's renaming?): stacked by their "
            "positions as one frame of reference; a DICOM SEG written for them references the first image's")


#: HeartRate and 60000 / NominalInterval further apart than this (relative) are noted, and
#: NominalInterval's taken
HEART_RATE_DISAGREE = 0.10


def _cardiac_timing(datasets: list[Dataset]) -> tuple[float | None, float | None, str | None]:
    """(heart rate beats/min, RR interval ms, note): the median HeartRate and the median
    NominalInterval over the images' headers (each image records the beats of its own
    acquisition: Sunnybrook's slices 76-80/min); placeholders (0) are left out of the median.
    When both are heart rates (20-300/min) and they differ by more than 10 %, the heart rate
    becomes 60000 / NominalInterval (the RR interval the scanner gated on, which measure's
    cardiac output then uses) and the note says so."""
    from ..measure.volumes import HEART_RATE_RANGE_BPM

    def median(attr: str) -> float | None:
        values = [v for ds in datasets for x in _timing_values(ds, attr) if (v := _num(x)) is not None]
        positive = [v for v in values if v > 0]
        return float(np.median(positive)) if positive else (values[0] if values else None)

    hr, rr = median("HeartRate"), median("NominalInterval")
    lo, hi = HEART_RATE_RANGE_BPM
    if hr is None or rr is None or not (lo <= hr <= hi and rr > 0 and lo <= 60000.0 / rr <= hi):
        return hr, rr, None
    hr_rr = 60000.0 / rr
    if abs(hr - hr_rr) <= HEART_RATE_DISAGREE * hr_rr:
        return hr, rr, None
    note = (f"HeartRate {hr:g} beats/min and NominalInterval {rr:g} ms ({hr_rr:.1f} beats/min) differ by more than "
            f"{HEART_RATE_DISAGREE:.0%}: {hr_rr:.1f} beats/min taken, from the RR interval the scanner gated on")
    return hr_rr, rr, note


#: where an enhanced image records, per frame, what a classic image's header attribute holds: the
#: Cardiac Synchronization functional group's nominal RR interval
_PER_FRAME_TIMING = {"NominalInterval": ("CardiacSynchronizationSequence", "RRIntervalTimeNominal")}


def _timing_values(ds: Dataset, attr: str) -> list[Any]:
    """``attr`` (HeartRate, NominalInterval) of one header: its own value; else, in an enhanced
    file, each frame's (a Legacy Converted Enhanced image keeps every source image's value in its
    Unassigned Per-Frame Converted Attributes; a true enhanced one the RR interval in its Cardiac
    Synchronization group), so the median is over all frames, as over a folder's files."""
    if attr in ds:
        return [ds.get(attr)]
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq is not None and len(shared_seq) else Dataset()
    groups = list(ds.get("PerFrameFunctionalGroupsSequence") or []) or [None]
    values = [converted_value(ds, attr, fg) for fg in groups]
    if all(v is None for v in values) and attr in _PER_FRAME_TIMING:
        seq, name = _PER_FRAME_TIMING[attr]
        values = [_group_value([g for g in (fg, shared) if g is not None], seq, name) for fg in groups]
    return values


def body_of(ds: Dataset) -> dict[str, Any]:
    """Height (cm), weight (kg) and sex (M/F) of one DICOM header, placeholders left out."""
    from ..measure.volumes import HEIGHT_RANGE_CM, WEIGHT_RANGE_KG

    out: dict[str, Any] = {}
    size, weight = _num(ds.get("PatientSize")), _num(ds.get("PatientWeight"))
    if size and HEIGHT_RANGE_CM[0] <= size * 100.0 <= HEIGHT_RANGE_CM[1]:
        out["height_cm"] = round(size * 100.0, 1)
    if weight and WEIGHT_RANGE_KG[0] <= weight <= WEIGHT_RANGE_KG[1]:
        out["weight_kg"] = weight
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    if sex in ("M", "F"):
        out["sex"] = sex
    return out


#: scanner fields (``cohort.csv`` columns, ``inputs.study`` and ``provenance.scanner`` keys) and the
#: tag each is read from; InstitutionName and StationName (they name the hospital and its scanner room)
#: are left out on purpose (docs/io.md, *What the outputs say about the patient*)
SCANNER_TAGS = {"manufacturer": "Manufacturer", "manufacturer_model": "ManufacturerModelName", "field_strength_t": "MagneticFieldStrength"}


def scanner_of(ds: Dataset) -> dict[str, Any]:
    """The scanner of one DICOM header: ``manufacturer``, ``manufacturer_model`` and, for MR,
    ``field_strength_t`` (tesla; a value above 100 is taken as gauss, as some older scanners wrote
    15000 for 1.5 T; 0 or no number is left out), those it records, for a multi-centre analysis's
    per-vendor results."""
    out: dict[str, Any] = {}
    for key in ("manufacturer", "manufacturer_model"):
        if text := str(ds.get(SCANNER_TAGS[key], "") or "").strip():
            out[key] = text
    tesla = _num(ds.get("MagneticFieldStrength"))
    if tesla is not None and tesla > 100:
        tesla /= 10000.0
    if tesla is not None and 0 < tesla <= 20:
        out["field_strength_t"] = round(tesla, 3)
    return out


#: the tags a study's date is taken from, in order: an export that leaves StudyDate empty
#: mostly keeps the day of the visit in one of the others
STUDY_DATE_TAGS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


def study_date_from(ds: Dataset) -> str:
    """The tag of :data:`STUDY_DATE_TAGS` that :func:`study_date` takes the date from (the first
    one not empty), "" when all are empty."""
    return next((t for t in STUDY_DATE_TAGS if str(ds.get(t, "") or "").strip()), "")


def study_date(ds: Dataset) -> str:
    """A header's StudyDate as YYYY-MM-DD, else (an export that leaves it empty) its SeriesDate,
    AcquisitionDate or ContentDate (:func:`study_date_from` says which); as written when it is
    no date (an anonymised export's 20120000), "" when all are absent."""
    import datetime

    tag = study_date_from(ds)
    date = str(ds.get(tag, "") or "").strip() if tag else ""
    try:
        return datetime.datetime.strptime(date, "%Y%m%d").strftime("%Y-%m-%d")
    except ValueError:
        return date


def _num(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _modality(ds: Dataset) -> str:
    mod = str(ds.get("Modality", "") or "").upper()
    return mod if mod in ("MR", "CT", "US") else "OT"

"""DICOM header parsing: one :class:`FrameInfo` per 2-D image (a classic single-frame file, or one
frame of an enhanced multi-frame file). Used by :mod:`medseg.io.dicom` to sort and group images.

All positions and directions here are DICOM LPS; conversion to RAS happens in
:mod:`medseg.io.geometry`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..errors import GeometryError, ImageReadError


@dataclass
class FrameInfo:
    """Geometry and ordering facts of one 2-D DICOM image (LPS mm, ms)."""

    path: Path
    frame: int | None  # frame index in a multi-frame file; None for a single-frame file
    ipp: tuple[float, float, float] | None
    iop: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None  # (row spacing dy, column spacing dx)
    thickness: float | None
    trigger_ms: float | None
    order: tuple  # tie-breakers after trigger time (temporal index, instance, path)
    rows: int
    cols: int
    series_uid: str
    series_description: str
    slope: float
    intercept: float
    sop_uid: str = ""  # SOPInstanceUID (a DICOM SEG references its source images by it)


def read_header(path: Path, strict: bool) -> Dataset | None:
    """Read a DICOM header without pixels.

    Returns None for a file that is not DICOM (no 'DICM' marker) when ``strict`` is False;
    raises :class:`ImageReadError` for a file that starts as DICOM but cannot be parsed, and
    for any unreadable file when ``strict`` is True.
    """
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageReadError(f"cannot open {path}: {e.strerror}") from None
    if size == 0:
        if strict:
            raise ImageReadError(f"file is empty (0 bytes): {path}")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_dicom(path, stop_before_pixels=True)
    except InvalidDicomError:
        if strict:
            raise ImageReadError(f"not a DICOM file (no DICM marker): {path}") from None
        return None
    except Exception as e:  # truncated or malformed header
        raise ImageReadError(f"corrupt DICOM file {path}: {type(e).__name__}: {str(e)[:120]}") from None


def read_dicom(path: Path, **kwargs: Any) -> Dataset:
    """``pydicom.dcmread``, also for a file without the Part-10 preamble and file meta (old
    exports, research archives: :func:`medseg.io.readers.is_bare_dicom`), whose transfer syntax
    is then the encoding pydicom found (implicit or explicit VR, little endian)."""
    try:
        return pydicom.dcmread(path, **kwargs)
    except InvalidDicomError:
        from .readers import is_bare_dicom

        with open(path, "rb") as f:
            if not is_bare_dicom(f.read(8)):
                raise
    ds = pydicom.dcmread(path, force=True, **kwargs)
    if "TransferSyntaxUID" not in ds.file_meta:
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

        implicit = (ds.original_encoding or (True, True))[0]
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ds


def is_image(ds: Dataset) -> bool:
    """True for datasets with an image (Rows/Columns); DICOMDIR, SR, SEG-less files are not."""
    return "Rows" in ds and "Columns" in ds and ds.get("Modality", "") != "SEG"


def is_broken_image(ds: Dataset) -> bool:
    """An image's header without its image: an image storage SOP class (MR Image Storage...)
    but no Rows/Columns, as pydicom reads a file cut short (a truncated copy)."""
    from pydicom.uid import UID

    sop = ds.get("SOPClassUID")
    try:
        name = UID(str(sop)).name if sop else ""
    except Exception:  # an unreadable UID value is no evidence either way
        return False
    return "Image Storage" in name and not is_image(ds) and ds.get("Modality", "") != "SEG"


def unique_instances(headers: list[tuple[Any, Dataset]]) -> list[tuple[Any, Dataset]]:
    """``headers`` with each SOPInstanceUID once (the first file): a study copied twice into one
    folder is that study, not a cine of identical frames."""
    seen: set[str] = set()
    out = []
    for p, ds in headers:
        uid = str(ds.get("SOPInstanceUID", "") or "") if ds is not None else ""
        if uid and uid in seen:
            continue
        seen.add(uid)
        out.append((p, ds))
    return out


def broken_image_error(path: Any, ds: Dataset) -> ImageReadError:
    from pydicom.uid import UID

    return ImageReadError(f"{path}: truncated or corrupt DICOM file (a {UID(str(ds.SOPClassUID)).name} header without its image "
                          "attributes); copy it again from the source")


def image_headers(paths: list[Path]) -> list[tuple[Path, Dataset]]:
    """The image headers among ``paths``, each SOP instance once (:func:`unique_instances`).

    Raises:
        ImageReadError: a file is an image cut short (:func:`is_broken_image`): leaving it out
            would lose a slice or a frame without a word.
    """
    out = []
    for p in paths:
        ds = read_header(p, strict=False)
        if ds is None:
            continue
        if is_broken_image(ds):
            raise broken_image_error(p, ds)
        if is_image(ds):
            out.append((p, ds))
    return unique_instances(out)


def n_frames(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def is_enhanced(ds: Dataset) -> bool:
    """True for enhanced multi-frame images: a PerFrameFunctionalGroupsSequence with content
    (some classic files, e.g. Sunnybrook's, carry one holding a single empty item)."""
    return any(len(item) for item in (ds.get("PerFrameFunctionalGroupsSequence") or []))


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """``n`` floats from a DICOM multi-value (or a single value), else None."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    try:
        vals = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n else None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None and str(value).strip() != "" else None
    except (TypeError, ValueError):
        return None


def frames_from_classic(ds: Dataset, path: Path) -> list[FrameInfo]:
    """One :class:`FrameInfo` for a classic single-frame image file."""
    return [
        FrameInfo(
            path=path,
            frame=None,
            ipp=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
            iop=_floats(ds.get("ImageOrientationPatient"), 6),
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
            thickness=_float(ds.get("SliceThickness")),
            trigger_ms=_float(ds.get("TriggerTime")),
            order=(_int(ds.get("InstanceNumber")), str(path)),
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            series_description=str(ds.get("SeriesDescription", "") or ""),
            slope=_float(ds.get("RescaleSlope")) or 1.0,
            intercept=_float(ds.get("RescaleIntercept")) or 0.0,
            sop_uid=str(ds.get("SOPInstanceUID", "")),
        )
    ]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _group_value(groups: list[Dataset], seq: str, attr: str) -> Any:
    """``attr`` from the first functional group (per-frame, then shared) that has ``seq``."""
    for g in groups:
        if seq in g and len(g[seq].value) and attr in g[seq].value[0]:
            return g[seq].value[0][attr].value
    return None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def converted_value(ds: Dataset, attr: str, frame_group: Dataset | None = None) -> Any:
    """``attr`` of a Legacy Converted Enhanced image (highdicom, dcm2dcm): kept in the frame's
    Unassigned Per-Frame Converted Attributes or the Unassigned Shared ones, not in a functional
    group (a cine's TriggerTime, HeartRate, NominalInterval); None when it holds none."""
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq is not None and len(shared_seq) else Dataset()
    frame_group = frame_group if frame_group is not None else next(iter(ds.get("PerFrameFunctionalGroupsSequence") or []), Dataset())
    return _first(_group_value([frame_group], "UnassignedPerFrameConvertedAttributesSequence", attr),
                  _group_value([shared], "UnassignedSharedConvertedAttributesSequence", attr))


def frames_from_enhanced(ds: Dataset, path: Path) -> list[FrameInfo]:
    """One :class:`FrameInfo` per frame of an enhanced multi-frame image (functional groups)."""
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq is not None and len(shared_seq) else Dataset()
    per_frame = ds.PerFrameFunctionalGroupsSequence
    if len(per_frame) != n_frames(ds):
        raise ImageReadError(f"{path}: {len(per_frame)} per-frame groups for {n_frames(ds)} frames")
    out = []
    for i, fg in enumerate(per_frame):
        groups = [fg, shared]
        slope = _float(_group_value(groups, "PixelValueTransformationSequence", "RescaleSlope"))
        intercept = _float(_group_value(groups, "PixelValueTransformationSequence", "RescaleIntercept"))
        out.append(
            FrameInfo(
                path=path,
                frame=i,
                ipp=_floats(_group_value(groups, "PlanePositionSequence", "ImagePositionPatient"), 3),  # type: ignore[arg-type]
                iop=_floats(_group_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                pixel_spacing=_floats(_group_value(groups, "PixelMeasuresSequence", "PixelSpacing"), 2),  # type: ignore[arg-type]
                thickness=_float(_group_value(groups, "PixelMeasuresSequence", "SliceThickness")),
                trigger_ms=_float(_first(_group_value(groups, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),
                                         converted_value(ds, "TriggerTime", fg))),
                order=(_int(_group_value(groups, "FrameContentSequence", "TemporalPositionIndex")), i, str(path)),
                rows=int(ds.Rows),
                cols=int(ds.Columns),
                series_uid=str(ds.get("SeriesInstanceUID", "")),
                series_description=str(ds.get("SeriesDescription", "") or ""),
                slope=slope if slope is not None else (_float(ds.get("RescaleSlope")) or 1.0),
                intercept=intercept if intercept is not None else (_float(ds.get("RescaleIntercept")) or 0.0),
                sop_uid=str(ds.get("SOPInstanceUID", "")),
            )
        )
    return out


def require_geometry(frames: list[FrameInfo]) -> None:
    """Raise :class:`GeometryError` naming the first image without position/orientation/spacing."""
    for f in frames:
        where = f.path.name + (f" frame {f.frame}" if f.frame is not None else "")
        if f.pixel_spacing is None or min(f.pixel_spacing) <= 0:
            raise GeometryError(f"missing spacing: {where} has no valid PixelSpacing")
        if f.iop is None:
            raise GeometryError(f"missing orientation: {where} has no ImageOrientationPatient")
        if f.ipp is None:
            raise GeometryError(f"missing position: {where} has no ImagePositionPatient")

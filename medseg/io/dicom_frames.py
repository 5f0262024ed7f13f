"""DICOM header parsing: one :class:`FrameInfo` per 2-D image (a classic single-frame file, or one
frame of an enhanced multi-frame file). Used by :mod:`medseg.io.dicom` to sort and group images.

All positions and directions here are DICOM LPS; conversion to RAS happens in
:mod:`medseg.io.geometry`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError

from ..errors import GeometryError, ImageReadError
from .dicom_times import frame_datetimes_s, image_datetimes_s
from .geometry import ORIENTATION_ATOL
from .volume import VOXEL_MM


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
    image_type: str = ""  # ImageType (an enhanced frame's FrameType) joined with "\\": ORIGINAL\\PRIMARY\\M\\ND
    component: str = ""  # an MR image's complex component: "M" magnitude, "P" phase, "" neither or unknown (:func:`mr_component`)
    trigger_invalid: str = ""  # a TriggerTime that is no time (nan, inf) as written; trigger_ms is then None (:func:`_trigger`)
    acquired_s: tuple[float | None, ...] | float | None = None  # its date-times, s, one per clock (:mod:`medseg.io.dicom_times`: a real-time cine's)


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
    except ImageReadError:  # a deflated data set that would not fit in memory
        raise
    except InvalidDicomError:
        if strict:
            raise ImageReadError(f"not a DICOM file (no DICM marker): {path}") from None
        return None
    except Exception as e:  # truncated or malformed header
        raise ImageReadError(f"corrupt DICOM file {path}: {type(e).__name__}: {str(e)[:120]}") from None


def read_dicom(path: Path, **kwargs: Any) -> Dataset:
    """``pydicom.dcmread``, also for a file without the Part-10 preamble and file meta (old
    exports, research archives: :func:`medseg.io.readers.is_bare_dicom`), or with a file meta
    that lacks its TransferSyntaxUID, whose transfer syntax is then the encoding pydicom found
    (implicit or explicit VR, little endian: pixels could not be decoded without it). A file in the
    Deflated Explicit VR Little Endian transfer syntax is inflated here, within the memory
    available (:func:`read_deflated`), not by pydicom (which inflates it whole at once).

    Raises:
        ImageReadError: a deflated data set that inflates to more than half the memory available.
    """
    try:
        ds = dcmread(path, **kwargs)
    except InvalidDicomError:
        from .readers import is_bare_dicom

        with open(path, "rb") as f:
            if not is_bare_dicom(f.read(8)):
                raise
        ds = pydicom.dcmread(path, force=True, **kwargs)
    if "TransferSyntaxUID" not in ds.file_meta:  # a bare data set, or a Part-10 file whose meta lacks (0002,0010)
        from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        implicit, little = ds.original_encoding or (True, True)  # as pydicom found the data set encoded
        if implicit and not little:
            raise ImageReadError(f"{path}: no TransferSyntaxUID and its data set reads as implicit VR big endian, which DICOM "
                                 "does not define: not a readable DICOM file")
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    return ds


def dcmread(path: Path | str, **kwargs: Any) -> Dataset:
    """``pydicom.dcmread(path, **kwargs)``, except that a Deflated Explicit VR Little Endian file
    is inflated within the memory available (:func:`read_deflated`)."""
    deflated = _deflated_start(Path(path))
    if deflated is not None:
        return read_deflated(Path(path), *deflated, **kwargs)
    return pydicom.dcmread(path, **kwargs)


def _deflated_start(path: Path) -> tuple[bytes | None, FileMetaDataset, int] | None:
    """(preamble or None, file meta, offset of the data set) of a file whose file meta names the
    Deflated Explicit VR Little Endian transfer syntax; None for any other file (including
    files that are no DICOM: :func:`read_dicom` gives their error)."""
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from .readers import is_bare_dicom

    try:
        with open(path, "rb") as f:
            head = f.read(132)
            if not (len(head) == 132 and head[128:] == b"DICM") and not is_bare_dicom(head):
                return None
            f.seek(0)
            preamble = read_preamble(f, True)
            meta = _read_file_meta_info(f)
            if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
                return None
            return preamble, meta, f.tell()
    except Exception:  # unreadable or malformed file meta: pydicom's own read reports it
        return None


#: compressed bytes read at a time while inflating, and the most inflated bytes from one step
_INFLATE_CHUNK = _INFLATE_PIECE = 1 << 20


def read_deflated(path: Path, preamble: bytes | None, meta: FileMetaDataset, offset: int, **kwargs: Any) -> Dataset:
    """``pydicom.dcmread`` of a Deflated Explicit VR Little Endian file, inflated in chunks.

    The inflated data set is held while its pixels are decoded into an array at least as large
    (and a float32 copy), so inflating stops with an :class:`ImageReadError` at half the memory
    available (:func:`medseg.io.limits.available_bytes`): a deflate bomb (a few MB of zeros
    inflate a thousandfold) is refused before it fills the memory. pydicom then reads the
    inflated bytes as Explicit VR Little Endian; the dataset's file meta keeps the deflated
    transfer syntax (its pixel data is native).
    """
    import copy
    import io
    import zlib

    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian

    from .limits import available_bytes

    avail = available_bytes()
    cap = avail // 2 if avail is not None else None
    buf = io.BytesIO()
    if preamble is not None:
        buf.write(preamble + b"DICM")
    plain_meta = copy.deepcopy(meta)  # (a shallow copy would share the elements and change `meta`)
    plain_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    write_file_meta_info(buf, plain_meta, enforce_standard=False)
    start = buf.tell()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while not inflater.eof and (data := f.read(_INFLATE_CHUNK)):
                while data and not inflater.eof:
                    room = min(cap + 1 - (buf.tell() - start), _INFLATE_PIECE) if cap is not None else _INFLATE_PIECE
                    buf.write(inflater.decompress(data, room))  # at most `room` bytes
                    if cap is not None and buf.tell() - start > cap:
                        raise _inflate_error(path, cap, avail)  # type: ignore[arg-type]
                    data = inflater.unconsumed_tail
    except zlib.error as e:
        raise ImageReadError(f"corrupt DICOM file {path}: its deflated data set cannot be inflated ({e})") from None
    if not inflater.eof:
        raise ImageReadError(f"corrupt DICOM file {path}: its deflated data set is cut short (a truncated copy)")
    buf.seek(0)
    buf.name = str(path)  # type: ignore[attr-defined]
    force = bool(kwargs.pop("force", False)) or preamble is None
    try:
        ds = pydicom.dcmread(buf, force=force, **kwargs)
    finally:
        buf.close()  # the elements hold copies of their values: the inflated bytes go now
    if getattr(ds, "buffer", None) is buf:
        ds.buffer = None
    ds.file_meta.TransferSyntaxUID = meta.TransferSyntaxUID
    return ds


def _inflate_error(path: Path, cap: int, limit: int) -> ImageReadError:
    from .limits import ENV_VAR, env_limit_bytes, format_gb

    start = f"{path}: the deflated DICOM data set inflates to more than {format_gb(cap)}, half the {format_gb(limit)} "
    why = "(its pixels are decoded into a second copy)"
    if env_limit_bytes() is not None:
        return ImageReadError(f"{start}{ENV_VAR} allows {why}")
    return ImageReadError(f"{start}of memory available {why}; set {ENV_VAR} to change the limit")


def is_image(ds: Dataset) -> bool:
    """True for datasets with an image (Rows/Columns); DICOMDIR, SR, SEG-less files are not."""
    return "Rows" in ds and "Columns" in ds and ds.get("Modality", "") != "SEG"


def _image_class_name(ds: Dataset) -> str | None:
    """The name of the image storage SOP class (MR Image Storage...) ``ds`` declares in its
    SOPClassUID or, as a file cut short within its first elements keeps only that (or a UID
    cut in two), in its file meta's MediaStorageSOPClassUID; None for any other class."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    for sop in (ds.get("SOPClassUID"), meta.get("MediaStorageSOPClassUID") if meta is not None else None):
        try:
            name = UID(str(sop)).name if sop else ""
        except Exception:  # an unreadable UID value is no evidence either way
            continue
        if "Image Storage" in name:
            return name
    return None


def is_broken_image(ds: Dataset) -> bool:
    """An image's header without its image: an image storage SOP class (MR Image Storage...,
    :func:`_image_class_name`) but no Rows/Columns, as pydicom reads a file cut short (a
    truncated copy)."""
    return _image_class_name(ds) is not None and not is_image(ds) and ds.get("Modality", "") != "SEG"


def broken_image_error(path: Any, ds: Dataset) -> ImageReadError:
    return ImageReadError(f"{path}: truncated or corrupt DICOM file (a {_image_class_name(ds)} header without its image "
                          "attributes); copy it again from the source")


def check_pixel_memory(path: Path, ds: Dataset, n_images: int) -> None:
    """Refuse, before any pixel is decoded, ``n_images`` images of ``ds``'s size (Rows x Columns,
    SamplesPerPixel, BitsAllocated) that would not fit in memory with their float32 copy
    (:func:`medseg.io.limits.check_decoded_size`): a compressed file or a long series may
    declare more than the machine holds."""
    import numpy as np

    from .limits import check_decoded_size

    def count(name: str, default: int) -> int:
        try:
            return max(int(ds.get(name, default) or default), 1)
        except (TypeError, ValueError):
            return default

    bits = count("BitsAllocated", 16)
    nbytes = next((b for b in (1, 2, 4, 8) if 8 * b >= bits), (bits + 7) // 8)
    signed = str(ds.get("PixelRepresentation", 0)).strip() == "1"
    dtype: Any = np.dtype(f"{'i' if signed else 'u'}{nbytes}") if nbytes in (1, 2, 4, 8) else nbytes
    samples = count("SamplesPerPixel", 1)
    shape = (n_images, int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)) + ((samples,) if samples > 1 else ())
    check_decoded_size(path, shape, dtype)


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


def _trigger(value: Any) -> tuple[float | None, str]:
    """(TriggerTime ms, "") of a header value; (None, the value as written) for one that is no
    time (nan, inf): such an image is ordered as one without TriggerTime and the series gets no
    frame times (:func:`medseg.io.dicom_stack._arrange` notes it); (None, "") when absent."""
    ms = _float(value)
    if ms is not None and not math.isfinite(ms):
        return None, str(value).strip()
    return ms, ""


def frames_from_classic(ds: Dataset, path: Path) -> list[FrameInfo]:
    """One :class:`FrameInfo` for a classic single-frame image file."""
    trigger = _trigger(ds.get("TriggerTime"))
    return [
        FrameInfo(
            path=path,
            frame=None,
            ipp=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
            iop=_floats(ds.get("ImageOrientationPatient"), 6),
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
            thickness=_float(ds.get("SliceThickness")),
            trigger_ms=trigger[0],
            trigger_invalid=trigger[1],
            order=(_int(ds.get("InstanceNumber")), str(path)),
            rows=int(ds.Rows),
            cols=int(ds.Columns),
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            series_description=str(ds.get("SeriesDescription", "") or ""),
            slope=_float(ds.get("RescaleSlope")) or 1.0,
            intercept=_float(ds.get("RescaleIntercept")) or 0.0,
            sop_uid=str(ds.get("SOPInstanceUID", "")),
            image_type=_joined(ds.get("ImageType")),
            component=mr_component(_joined(ds.get("ImageType"))) if str(ds.get("Modality", "") or "").upper() == "MR" else "",
            acquired_s=image_datetimes_s(ds),
        )
    ]


#: ImageType values (the third on) that say an MR image is a magnitude or a phase image: Siemens'
#: ORIGINAL\\PRIMARY\\M\\ND and ...\\P\\ND, Philips' M_FFE / P_PCA, the enhanced
#: ComplexImageComponent's MAGNITUDE / PHASE
_MAGNITUDE_VALUES = frozenset({"M", "MAGNITUDE"})
_PHASE_VALUES = frozenset({"P", "PHASE", "PHASE MAP", "VELOCITY", "VELOCITY MAP"})


def mr_component(image_type: str, complex_component: str | None = None) -> str:
    """"M" for a magnitude image, "P" for a phase (velocity) image, "" when the ImageType (values
    from the third on, ``\\``-joined) or an enhanced frame's ComplexImageComponent say neither or
    both (a REAL or IMAGINARY image, a vendor's own values)."""
    cc = str(complex_component or "").strip().upper()
    if cc in ("MAGNITUDE", "PHASE"):
        return cc[0]
    found = set()
    for v in (x.strip().upper() for x in image_type.split("\\")[2:]):
        if v in _MAGNITUDE_VALUES or v.startswith("M_"):
            found.add("M")
        elif v in _PHASE_VALUES or v.startswith("P_"):
            found.add("P")
    return found.pop() if len(found) == 1 else ""


def _joined(value: Any) -> str:
    """A multi-valued code string (ImageType) as DICOM writes it: ``ORIGINAL\\PRIMARY\\M\\ND``."""
    if value is None:
        return ""
    items = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    return "\\".join(str(v).strip() for v in items)


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
        raise ImageReadError(f"{path}: {len(per_frame)} per-frame functional groups for NumberOfFrames {n_frames(ds)}: "
                             + ("the file was cut short (copy it again from the source) or its NumberOfFrames is wrong"
                                if len(per_frame) < n_frames(ds) else "the header contradicts itself; export the series again"))
    out = []
    for i, fg in enumerate(per_frame):
        groups = [fg, shared]
        slope = _float(_group_value(groups, "PixelValueTransformationSequence", "RescaleSlope"))
        intercept = _float(_group_value(groups, "PixelValueTransformationSequence", "RescaleIntercept"))
        trigger = _trigger(_first(_group_value(groups, "CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),
                                  converted_value(ds, "TriggerTime", fg)))
        image_type = _joined(_first(_group_value(groups, "MRImageFrameTypeSequence", "FrameType"),
                                    _group_value(groups, "CTImageFrameTypeSequence", "FrameType"), ds.get("ImageType")))
        out.append(
            FrameInfo(
                path=path,
                frame=i,
                ipp=_floats(_group_value(groups, "PlanePositionSequence", "ImagePositionPatient"), 3),  # type: ignore[arg-type]
                iop=_floats(_group_value(groups, "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                pixel_spacing=_floats(_group_value(groups, "PixelMeasuresSequence", "PixelSpacing"), 2),  # type: ignore[arg-type]
                thickness=_float(_group_value(groups, "PixelMeasuresSequence", "SliceThickness")),
                trigger_ms=trigger[0],
                trigger_invalid=trigger[1],
                order=(_int(_group_value(groups, "FrameContentSequence", "TemporalPositionIndex")), i, str(path)),
                rows=int(ds.Rows),
                cols=int(ds.Columns),
                series_uid=str(ds.get("SeriesInstanceUID", "")),
                series_description=str(ds.get("SeriesDescription", "") or ""),
                slope=slope if slope is not None else (_float(ds.get("RescaleSlope")) or 1.0),
                intercept=intercept if intercept is not None else (_float(ds.get("RescaleIntercept")) or 0.0),
                sop_uid=str(ds.get("SOPInstanceUID", "")),
                image_type=image_type,
                component=mr_component(image_type, _first(_group_value(groups, "MRImageFrameTypeSequence", "ComplexImageComponent"),
                                                            ds.get("ComplexImageComponent")))
                if str(ds.get("Modality", "") or "").upper() == "MR" else "",
                acquired_s=frame_datetimes_s(next(iter(fg.get("FrameContentSequence") or []), None)),
            )
        )
    return out


#: how far from unit length, and from perpendicular (|row . column|), ImageOrientationPatient's
#: direction cosines may be: the stacking tolerance (:data:`medseg.io.geometry.ORIENTATION_ATOL`,
#: 1e-3). Scanners write 6-8 decimals (Sunnybrook: 6.5e-7 and 2.7e-5 at most; 4 decimals stay
#: within 2e-4); [2, 0, 0, 0, 2, 0] or a 45 degree skew is no orientation
ORIENTATION_UNIT_TOL = ORIENTATION_ATOL


def require_geometry(frames: list[FrameInfo]) -> None:
    """Raise :class:`GeometryError` naming the first image without position/orientation/spacing,
    with a position that is not finite, or with an orientation whose row and column direction
    cosines are not unit vectors at right angles (within :data:`ORIENTATION_UNIT_TOL`)."""
    for f in frames:
        where = f.path.name + (f" frame {f.frame + 1}" if f.frame is not None else "")  # DICOM's frame numbers start at 1
        if f.pixel_spacing is None:
            raise GeometryError(f"missing spacing: {where} has no valid PixelSpacing")
        lo, hi = VOXEL_MM
        if not all(math.isfinite(v) and lo <= v <= hi for v in f.pixel_spacing):  # NaN passed a test of <= 0
            raise GeometryError(f"invalid spacing: {where} has PixelSpacing {_plain(f.pixel_spacing)}; "
                                f"allowed: two positive finite numbers, {lo:g} to {hi:g} (mm)")
        if f.iop is None:
            raise GeometryError(f"missing orientation: {where} has no ImageOrientationPatient")
        if f.ipp is None:
            raise GeometryError(f"missing position: {where} has no ImagePositionPatient")
        if not all(math.isfinite(v) for v in f.ipp):
            raise GeometryError(f"invalid position: {where} has ImagePositionPatient {_plain(f.ipp)}; "
                                "allowed: three finite numbers (mm)")
        why = orientation_problem(f.iop)
        if why:
            raise GeometryError(f"invalid orientation: {where} has ImageOrientationPatient {_plain(f.iop)}, {why}; allowed: "
                                f"two unit vectors at right angles (within {ORIENTATION_UNIT_TOL:g}), e.g. [1, 0, 0, 0, 1, 0]")


def orientation_problem(iop: tuple[float, ...]) -> str | None:
    """What is wrong with ImageOrientationPatient ``iop`` (6 direction cosines, LPS), or None
    when its row and column directions are unit vectors at right angles within
    :data:`ORIENTATION_UNIT_TOL`."""
    if not all(math.isfinite(v) for v in iop):
        return "which is not finite"
    row, col = iop[:3], iop[3:]
    norms = [math.sqrt(sum(v * v for v in d)) for d in (row, col)]
    if any(abs(n - 1.0) > ORIENTATION_UNIT_TOL for n in norms):
        return f"whose row and column directions have lengths {norms[0]:.4g} and {norms[1]:.4g}, not 1"
    dot = sum(a * b for a, b in zip(row, col))
    if abs(dot) > ORIENTATION_UNIT_TOL:
        return f"whose row and column directions are not perpendicular (cosine of their angle {dot:.4g})"
    return None


def _plain(values: tuple[float, ...]) -> str:
    """Numbers as a header shows them: ``[1, 0, 0, 0.5, 0.5, 0]``, ``[nan, 0, 0]``."""
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"

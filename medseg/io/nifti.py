"""NIfTI-1/2 reading and label writing (nibabel).

nibabel stores arrays as ``[x, y, z, t]`` with a RAS affine; medseg's ``(T, Z, Y, X)`` is the
reversed axis order (:func:`medseg.io.geometry.nifti_to_medseg`), the affine is used as is.
2-D files give ``(1, 1, Y, X)``; the 4th dimension is time; trailing singleton dimensions
beyond the 4th are squeezed; other 5-D+ arrays are rejected.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener
from nibabel.volumeutils import apply_read_scaling

from .._files import atomic_path
from ..errors import GeometryError, ImageReadError
from .geometry import medseg_to_nifti, nifti_to_medseg, pixel_axes_angle
from .limits import check_decoded_size
from .nifti_itk import planes_qform
from .volume import Volume, luminance

#: NIfTI xyzt_units time codes -> factor to seconds.
_TIME_UNITS_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
#: NIfTI xyzt_units space codes -> factor to millimetres (no unit: millimetres, as ITK reads it).
_SPACE_UNITS_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3}
#: NIfTI-1's xyzt_units codes (nifti1.h): the spatial unit is bits 0-2, the time unit bits 3-5
_SPACE_CODES = {0: "unknown", 1: "meter", 2: "mm", 3: "micron"}
_TIME_CODES = {0: "unknown", 8: "sec", 16: "msec", 24: "usec", 32: "hz", 40: "ppm", 48: "rads"}


def read_nifti(path: Path) -> Volume:
    """Read a ``.nii``/``.nii.gz`` file into a :class:`Volume` (native dtype kept).

    Frame times come from ``pixdim[4]`` when it is > 0 and the header states a time unit
    (s, ms or us); otherwise ``frame_times_s`` is None. Modality is "MR" only if the header's
    ``descrip`` says so, else "OT" (NIfTI does not record it).
    """
    try:
        with _quiet_nibabel():
            img = nib.load(str(path))
            header = img.header
            # nibabel silently "fixes" pixdim 0 to 1 on load; keep the raw values for the check
            with ImageOpener(str(path)) as f:
                raw_pixdim = type(header).from_fileobj(f, check=False)["pixdim"]
            shape, dtype = img.shape, _array_dtype(img)
    except nib.filebasedimages.ImageFileError:
        raise ImageReadError(f"cannot read NIfTI file {path}: {_misnamed(path) or 'not a NIfTI file (header not recognised)'}") from None
    except Exception as e:  # nibabel raises many types for corrupt headers
        raise ImageReadError(f"cannot read NIfTI file {path}: {_misnamed(path) or _short(e)}") from None
    check_decoded_size(path, shape, dtype)  # before the (gzip) data is read: a small .nii.gz may declare GBs
    try:
        with _quiet_nibabel():
            data = _scaled_data(img, dtype)
    except Exception as e:  # nibabel/gzip/zlib raise many types for corrupt files
        raise ImageReadError(f"cannot read NIfTI file {path}: {_cut_short(e) or _short(e)}") from None
    _check_gzip_stream(path)
    data = _squeeze_trailing(_as_grey(data, header, path), path)
    n_spatial = min(data.ndim, 3)
    zooms = tuple(abs(float(z)) for z in raw_pixdim[1 : 1 + n_spatial])
    if any(not np.isfinite(z) or z == 0 for z in zooms):
        raise GeometryError(f"{path}: voxel spacing is zero or missing (pixdim {list(zooms)} mm)")
    space_unit, t_unit, unit_note = _xyzt_units(header)
    frame_times, time_note = _frame_times(header, data, t_unit)
    # a header in metres or microns (xyzt_units) is scaled to medseg's millimetres, as ITK does
    to_mm = _SPACE_UNITS_MM.get(space_unit, 1.0)
    zooms = tuple(z * to_mm for z in zooms)
    affine = np.asarray(img.affine, dtype=np.float64).copy()
    _check_finite_affine(affine, header, path)
    affine[:3, :] *= to_mm
    affine, note = _consistent_affine(affine, zooms)
    sign_note, signed_pixdim = _pixdim_signs(raw_pixdim, n_spatial)
    xform_note = "; ".join(n for n in (_xform_note(header, data.shape, to_mm), sign_note, _oblique_pixels_note(affine)) if n) or None
    meta = {
        "format": "nifti",
        "path": str(path),
        "source_ndim": data.ndim,
        "nifti_header": header.copy(),
        "sform_code": int(header["sform_code"]),
        "qform_code": int(header["qform_code"]),
    }
    if signed_pixdim:  # nibabel fixed them in nifti_header: the labels get them back (write_nifti_labels)
        meta["nifti_raw_pixdim"] = signed_pixdim
    if time_note:
        meta["time_note"] = time_note
    if note:
        # unit axis lengths (ACDC's sform) hold no voxel size at all; other lengths are a second one
        meta["geometry_conflict"] = not np.allclose(np.linalg.norm(img.affine[:3, :3], axis=0), 1.0, atol=1e-4)
    if unit_note:  # the voxel size depends on the unit assumed: measure says so
        meta["geometry_conflict"] = True
    if note or xform_note or unit_note:
        meta["geometry_note"] = "; ".join(n for n in (unit_note, note, xform_note) if n)
    return Volume(
        array=nifti_to_medseg(data),
        affine=affine,
        frame_times_s=frame_times,
        modality=_modality(header),
        spacing_known=True,
        meta=meta,
    )


#: the first 4 bytes of a NIfTI-1 / NIfTI-2 header (sizeof_hdr 348 / 540), either byte order
_NIFTI_STARTS = {v.to_bytes(4, order) for v in (348, 540) for order in ("little", "big")}


def _misnamed(path: Path) -> str | None:
    """What to do when ``path`` is a NIfTI file whose name says the wrong compression (nibabel
    chooses gzip by the name alone, and both read as "header not recognised"): a gzip-compressed
    one named ``.nii``, a plain one named ``.nii.gz``; None for any other file."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:2] == b"\x1f\x8b":
                f.seek(0)
                with gzip.open(f) as g:
                    inner = g.read(4)
            else:
                inner = b""
    except (OSError, EOFError, zlib.error):
        return None
    gz = str(path).lower().endswith(".gz")
    if not gz and inner in _NIFTI_STARTS:
        return f"the file is gzip-compressed NIfTI but named {Path(path).name!r}: rename it to end in .nii.gz"
    if gz and head in _NIFTI_STARTS:
        return f"the file is uncompressed NIfTI but named {Path(path).name!r}: rename it to end in .nii (without .gz)"
    return None


def _check_gzip_stream(path: Path) -> None:
    """Read a ``.nii.gz`` to the end of its gzip stream, where its CRC is checked: nibabel stops
    at the last voxel, so flipped bytes in the data (a bad disk, an interrupted copy) read as
    wrong voxels, and labels measured 862 g of myocardium for 201. About 30 ms for an ACDC cine.

    Raises:
        ImageReadError: the stream is corrupt (CRC or length mismatch, bad deflate data) or cut short.
    """
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as e:
        raise ImageReadError(f"cannot read NIfTI file {path}: the gzip data is corrupt or cut short ({_short(e)})") from None


def _scaled_data(img: nib.Nifti1Image, dtype: np.dtype) -> np.ndarray:
    """``np.asanyarray(img.dataobj)``, with scl_slope / scl_inter applied slab by slab (nibabel's
    own :func:`apply_read_scaling` on each slab of the last axis) into one array of ``dtype``
    (:func:`_array_dtype`): nibabel scales the whole array as ``arr * slope + inter``, two
    scaled copies beside the stored one (18 bytes a voxel for int16 scaled to float64, more than
    the 12 :func:`medseg.io.limits.check_decoded_size` counts); this holds the stored array and
    the result. The same values and dtype."""
    proxy = img.dataobj
    slope, inter = np.asanyarray(getattr(proxy, "slope", 1.0)), np.asanyarray(getattr(proxy, "inter", 0.0))
    if not hasattr(proxy, "get_unscaled") or (slope.size == inter.size == 1 and (float(slope), float(inter)) == (1.0, 0.0)):
        return np.asanyarray(proxy)  # nothing to scale (a memory map of a .nii stays one)
    if np.can_cast(inter, slope.dtype):  # as nibabel's ArrayProxy._get_scaled with no dtype asked
        inter = inter.astype(slope.dtype)
    raw = np.asanyarray(proxy.get_unscaled())
    if raw.ndim < 2 or raw.shape[-1] == 0:
        return apply_read_scaling(raw, slope, inter)
    first = apply_read_scaling(raw[..., 0], slope, inter)
    if first.dtype != dtype:  # not the type expected: nibabel's way, whole
        return apply_read_scaling(raw, slope, inter)
    out = np.empty(raw.shape, dtype=dtype, order="F")  # the file's order: each slab is contiguous
    out[..., 0] = first
    for k in range(1, raw.shape[-1]):
        out[..., k] = apply_read_scaling(raw[..., k], slope, inter)
    return out


def _array_dtype(img: nib.Nifti1Image) -> np.dtype:
    """The dtype ``np.asanyarray(img.dataobj)`` will have: the stored one, or the float type
    nibabel scales it to when scl_slope / scl_inter apply (as ``ArrayProxy._get_scaled``)."""
    proxy = img.dataobj
    stored = np.dtype(proxy.dtype if getattr(proxy, "dtype", None) is not None else img.get_data_dtype())
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    try:
        slope, inter = np.asanyarray(slope), np.asanyarray(inter)
        if np.can_cast(inter, slope.dtype):
            inter = inter.astype(slope.dtype)
        return apply_read_scaling(np.zeros(0, dtype=stored), slope, inter).dtype
    except Exception:  # scale factors of a type numpy cannot combine: the widest float it could be
        return np.dtype(np.float64)


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Keep nibabel's header-fix log messages off the user's terminal during one read."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # its header checks log at ERROR ("data code 1 not supported"); medseg says what failed
    try:
        yield
    finally:
        logger.setLevel(level)


def _cut_short(e: BaseException) -> str | None:
    """What a read of the voxel data that ran out of bytes says, in words (Python's "EOFError:
    Compressed file ended before the end-of-stream marker was reached", nibabel's "OSError:
    Expected 301056 bytes, got 150352 bytes"); None for another failure."""
    found = re.match(r"Expected (\d+) bytes, got (\d+) bytes", str(e)) if isinstance(e, OSError) else None
    if found:
        return f"the file is cut short: it holds {found[2]} of the {found[1]} bytes of voxel data its header declares (an interrupted copy or download?)"
    if isinstance(e, EOFError):
        return "the file is cut short: its compressed data ends before the voxels its header declares (an interrupted copy or download?)"
    return None


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:200] if msg else type(e).__name__


#: NIFTI_INTENT_VECTOR: the 5th dimension holds the components of each voxel (ITK's vector images)
_INTENT_VECTOR = 1007


def _as_grey(data: np.ndarray, header: nib.Nifti1Header, path: Path) -> np.ndarray:
    """Colour NIfTI as grey, as the other readers do: RGB24/RGBA32 voxels and vector images
    (intent 1007) of 3 or 4 components -> float32 luminance (ITU-R BT.601); other vector
    images (2 components: complex as two channels) are refused in words."""
    if data.dtype.names:
        if not {"R", "G", "B"} <= set(data.dtype.names):
            raise ImageReadError(f"{path}: NIfTI voxels of fields {', '.join(data.dtype.names)} are not an image medseg reads (grey or RGB)")
        return luminance(np.stack([data["R"], data["G"], data["B"]], axis=-1))
    if data.ndim == 5 and int(header.get("intent_code", 0)) == _INTENT_VECTOR:
        if data.shape[4] not in (3, 4):
            raise ImageReadError(f"{path}: {data.shape[4]} values per voxel (a vector NIfTI); medseg reads grey images and colour "
                                 "(RGB/RGBA) ones: save the magnitude, or one channel")
        return luminance(data)
    return data


def _squeeze_trailing(data: np.ndarray, path: Path) -> np.ndarray:
    if data.size == 0:  # nibabel may also drop the header's dims after a zero one
        raise ImageReadError(f"{path}: the NIfTI array is empty (a dimension of size 0: shape {data.shape})")
    while data.ndim > 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 4:
        raise ImageReadError(
            f"{path}: {data.ndim}-D NIfTI array {data.shape} is not supported (at most 4-D: x, y, z, time)"
        )
    if data.ndim < 2:
        raise ImageReadError(f"{path}: {data.ndim}-D NIfTI array {data.shape} is not an image")
    return data


def _consistent_affine(affine: np.ndarray, zooms: tuple) -> tuple[np.ndarray, str | None]:
    """nibabel's affine, with its axis lengths replaced by pixdim when the two disagree.

    Some files (e.g. ACDC) carry an sform with unit scales while pixdim holds the true voxel
    size; like ITK, medseg then keeps the sform's directions and origin and takes the spacing
    from pixdim. Returns (affine, note or None).
    """
    n = len(zooms)
    norms = np.linalg.norm(affine[:3, :n], axis=0)
    z = np.asarray(zooms, dtype=np.float64)
    if np.allclose(norms, z, rtol=1e-3, atol=1e-5) or np.any(norms < 1e-9):
        return affine, None
    fixed = affine.copy()
    fixed[:3, :n] = affine[:3, :n] / norms * z
    note = (f"sform/qform axis lengths {[round(float(v), 5) for v in norms]} disagree with pixdim "
            f"{[round(float(v), 5) for v in z]} mm; "
            "spacing taken from pixdim, directions and origin from the header (as ITK does)")
    if not np.allclose(norms, 1.0, atol=1e-4):  # a second voxel size, not unit axes (ACDC's): how much the choice weighs
        ratio = float(np.prod(z) / np.prod(norms))
        note += f"; {'volumes (mL)' if n >= 3 else 'areas (mm2)'} are {ratio:.3g} times those the sform's voxel size would give"
    return fixed, note


def _oblique_pixels_note(affine: np.ndarray) -> str | None:
    """A note when the row and column axes of the header's transform are not at right angles
    (only an sform can say so): the pixels are parallelograms, which no scanner writes. medseg
    measures them as they are (a pixel's area is its two sides times the sine of their angle);
    .mha / .nrrd cannot hold such a grid (labels are refused there: :func:`medseg.io.writers.check_format`)."""
    angle = pixel_axes_angle(affine)
    if angle is None:
        return None
    return (f"the row and column axes of the header's transform are {angle:.2f} degrees apart, not 90 (pixels are parallelograms; "
            f"each counts its true area, {abs(np.sin(np.radians(angle))):.4f} of a square one's): a header written by hand or "
            "by a resampling tool? Write its labels as NIfTI (.mha / .nrrd hold only right angles)")


def _pixdim_signs(raw_pixdim: np.ndarray, n_spatial: int) -> tuple[str | None, list[float] | None]:
    """A note, and the header's pixdim[0..3] as the file holds them, when they carry a sign that
    tools read differently (else None, None): nifti1.h gives the voxel widths pixdim[1..3] as
    positive and qfac (pixdim[0]) as 1 or -1. nibabel, and so medseg, takes a negative width's
    size and the header's transform as they are, and a negative qfac other than -1 as 1; ITK
    (SimpleITK, and 3D Slicer and ITK-SNAP, which read NIfTI with it) reverses that axis (for qfac
    the slice axis), sform or not: the image lies mirrored there. nibabel fixes these values on
    load; :func:`write_nifti_labels` writes them back, so the labels lie on the image in ITK too."""
    raw = [float(v) for v in raw_pixdim[:4]]
    axes = [i for i in range(1, 1 + n_spatial) if raw[i] < 0]
    odd_qfac = raw[0] < 0 and raw[0] != -1
    if not axes and not odd_qfac:
        return None, None
    said = [f"pixdim[{i}] = {raw[i]:g}" for i in axes] + ([f"qfac pixdim[0] = {raw[0]:g}"] if odd_qfac else [])
    mirrored = " and ".join(["xyz"[i - 1] for i in axes] + (["z (qfac)"] if odd_qfac else []))
    return (f"the header holds {', '.join(said)} (NIfTI voxel widths are positive, qfac 1 or -1): medseg takes the widths' sizes"
            f"{' and qfac 1' if odd_qfac else ''} as nibabel does, ITK-based tools (SimpleITK, 3D Slicer, ITK-SNAP) mirror the image in "
            f"{mirrored}: keep the labels as NIfTI (which keeps the image's header) to see them on the image in every tool"), raw


_QFORM_FIELDS = ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")


def _check_finite_affine(affine: np.ndarray, header: nib.Nifti1Header, path: Path) -> None:
    """A GeometryError naming the header fields that put NaN or inf into nibabel's affine (its
    sform when sform_code > 0, else its qform when qform_code > 0): the Volume's own check could
    say only that the affine is not finite."""
    if np.all(np.isfinite(affine)):
        return
    if int(header["sform_code"]) > 0:
        bad = [f"srow_{'xyz'[r]}[{c}]" for r, c in zip(*np.nonzero(~np.isfinite(affine[:3])), strict=True)]
        which = f"sform (code {int(header['sform_code'])})"
    elif int(header["qform_code"]) > 0:
        bad = [name for name in _QFORM_FIELDS if not np.isfinite(float(header[name]))]
        which = f"qform (code {int(header['qform_code'])})"
    else:
        bad, which = [], "voxel size"
    raise GeometryError(f"{path}: the header's {which} holds NaN or infinite values"
                        f"{' (' + ', '.join(bad) + ')' if bad else ''}; allowed: finite numbers")


def _xform_note(header: nib.Nifti1Header, shape: tuple[int, ...], to_mm: float) -> str | None:
    """A note when tools can place this grid in different places: the header sets neither
    transform (codes 0), or its sform and qform (both set) disagree by more than 0.1 mm at a
    corner of the grid (a sheared sform, which a qform cannot hold, is one case). medseg takes
    nibabel's choice (the sform; a centred default without either); ITK-based tools may take
    the qform or a default of their own, so labels written as .mha / .nrrd for such an image
    lie elsewhere in them. NIfTI labels keep both transforms as the image has them."""
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    keep = "keep the labels as NIfTI (which keeps the image's header) to see them on the image in every tool"
    if qcode == 0 and scode == 0:
        return ("the header sets neither a qform nor an sform (codes 0): where the grid lies in the scanner is unknown; "
                f"medseg places it as nibabel does, ITK-based tools elsewhere: {keep}")
    if qcode == 0 or scode == 0:
        return None
    dims = [(0, n - 1) for n in (tuple(shape[:3]) + (1, 1, 1))[:3]]
    corners = np.array([[i, j, k, 1.0] for i in dims[0] for j in dims[1] for k in dims[2]]).T
    apart = float(np.linalg.norm((header.get_sform() - header.get_qform()) @ corners, axis=0).max()) * to_mm
    if not apart > 0.1:
        return None
    planes = planes_qform(header.get_sform())
    if planes is not None and np.allclose(planes, header.get_qform(), atol=1e-3):  # medseg's labels of a sheared stack
        return (f"the header's sform (code {scode}) is sheared (a gantry tilt: the slices step along the table, the planes lean); "
                f"its qform (code {qcode}), up to {apart:.1f} mm from it, is the grid ITK's DICOM series reader builds of "
                "such images: medseg takes the sform, as nibabel does, ITK-based tools the qform")
    return (f"the header's sform (code {scode}) and qform (code {qcode}) place the grid up to {apart:.1f} mm apart: "
            f"medseg takes the sform, as nibabel does; ITK-based tools (SimpleITK, 3D Slicer) may take the qform: {keep}")


#: frame intervals (s) a cardiac cine or clip can have: a 1000 Hz echo to 2 frames of a 30 bpm cycle
FRAME_INTERVAL_S = (5e-4, 2.5)


def _xyzt_units(header: nib.Nifti1Header) -> tuple[str, str, str | None]:
    """(spatial unit, time unit, note) of the header's ``xyzt_units``, decoded as nifti1.h does
    (spatial code = bits 0-2, time code = bits 3-5). A spatial code NIfTI does not define (4-7;
    nibabel's ``get_xyzt_units`` raised KeyError) is read as millimetres, as ITK reads it and as
    medseg reads "no unit", with a note; an undefined time code gives no frame times."""
    code = int(header["xyzt_units"])
    space, time = _SPACE_CODES.get(code & 0x07), _TIME_CODES.get(code & 0x38)
    note = None
    if space is None:
        note = (f"xyzt_units {code} holds spatial unit code {code & 0x07}, which NIfTI does not define "
                f"(allowed: {', '.join(f'{k} {v}' for k, v in _SPACE_CODES.items())}): read as millimetres, as ITK does")
    return space or "unknown", time or f"code {code & 0x38}", note


def _frame_times(header: nib.Nifti1Header, data: np.ndarray, t_unit: str) -> tuple[np.ndarray | None, str | None]:
    """Frame times (s) from pixdim[4] and its unit (:func:`_xyzt_units`), and a note when the
    header's interval is left out as impossible for a heart (pixdim[4] = 1e6 s gave times of
    months on the plots) or its time unit code is none NIfTI defines."""
    if data.ndim != 4:
        return None, None
    dt = float(header["pixdim"][4])
    if not (dt > 0 and np.isfinite(dt)):
        return None, None
    if t_unit.startswith("code "):
        return None, (f"xyzt_units time {t_unit} is none NIfTI defines "
                      f"(allowed: {', '.join(f'{k} {v}' for k, v in _TIME_CODES.items())}): frame times left out")
    if t_unit not in _TIME_UNITS_S:
        return None, None
    step = dt * _TIME_UNITS_S[t_unit]
    if not FRAME_INTERVAL_S[0] <= step <= FRAME_INTERVAL_S[1]:
        return None, (f"frame interval pixdim[4] = {dt:g} {t_unit} is no cardiac frame interval "
                      f"({FRAME_INTERVAL_S[0] * 1000:g} ms to {FRAME_INTERVAL_S[1]:g} s): frame times left out")
    return np.arange(data.shape[3], dtype=np.float64) * step, None


def _modality(header: nib.Nifti1Header) -> str:
    """"MR" or "CT" when the header's ``descrip`` has that word, else "OT"."""
    try:
        descrip = bytes(header["descrip"]).decode("ascii", "ignore").upper()
    except Exception:
        return "OT"
    words = set(re.split(r"[^A-Z]+", descrip))
    return next((mod for mod in ("MR", "CT") if mod in words), "OT")


def write_nifti_labels(labels: np.ndarray, like: Volume, path: Path) -> Path:
    """Write integer ``labels`` ((Z, Y, X) or (T, Z, Y, X), already checked against ``like``)
    as NIfTI in ``like``'s grid, atomically.

    The number of axes follows the source: a NIfTI source keeps its 2-/3-/4-D layout (3-D for
    one frame of a 4-D source) and its header, including the sform/qform matrices and codes
    verbatim (a negative pixdim or qfac too, :func:`_with_raw_pixdim`), so every tool (nibabel, ITK, medseg) sees the label file on the same grid as the
    image file (less what only describes the image: its intent, display window, auxiliary file,
    header extensions, Analyze ``db_name`` / ``data_type`` and description, which reads "medseg labels"). Other sources give 3-D (4-D for several
    frames; 2-D for a 2-D PNG source) with ``like.affine`` as sform and qform, code 1 (scanner).
    """
    ndim = _output_ndim(labels, like)
    data = np.ascontiguousarray(medseg_to_nifti(labels, ndim))
    src = like.meta.get("nifti_header") if like.meta.get("format") == "nifti" else None
    if src is not None:
        cls = nib.Nifti2Image if isinstance(src, nib.Nifti2Header) else nib.Nifti1Image
        img = cls(data, like.affine, header=src.copy())
        # the source's own matrices and codes, so nibabel's best affine is exactly like.affine
        img.set_qform(src.get_qform(coded=False), int(src["qform_code"]))
        img.set_sform(src.get_sform(coded=False), int(src["sform_code"]))
        # the image's own meaning does not describe its labels: a vector intent, a display window
        # (cal_min/max: labels 1-3 black in a 0-4000 window) or a "MR cine" description
        img.header.set_intent("none", (), "")
        img.header["cal_min"] = img.header["cal_max"] = 0
        img.header["aux_file"] = b""
        # nor do its header extensions (a converter's copy of the DICOM header, dcmstack's DcmMeta, AFNI's
        # history: PatientName, local paths) or the text fields NIfTI-1 left over from Analyze
        img.header.extensions.clear()
        for key in ("db_name", "data_type"):
            if key in img.header:
                img.header[key] = b""
    else:
        img = nib.Nifti1Image(data, like.affine)
        cols = like.affine[:3, :3] / np.linalg.norm(like.affine[:3, :3], axis=0)
        if np.allclose(cols.T @ cols, np.eye(3), atol=1e-4):
            img.set_qform(like.affine, 1)
            img.set_sform(like.affine, 1)
        else:  # a sheared grid (gantry tilt, a stack whose positions drift in-plane): :func:`medseg.io.nifti_itk.planes_qform`
            qform = planes_qform(like.affine)
            img.set_qform(like.affine if qform is None else qform, 0 if qform is None else 1)
            img.set_sform(like.affine, 1)
        if ndim == 4 and like.frame_times_s is not None and len(like.frame_times_s) > 1:
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = float(np.mean(np.diff(like.frame_times_s)))
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["descrip"] = b"medseg labels"
    if src is not None and like.meta.get("nifti_raw_pixdim"):
        img = _with_raw_pixdim(img, like.meta["nifti_raw_pixdim"])
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def _with_raw_pixdim(img: nib.Nifti1Image, raw: list[float]) -> nib.Nifti1Image:
    """``img`` with the source image's pixdim[0..3] as its file holds them (a negative voxel width
    or qfac, which nibabel fixed on load: :func:`_pixdim_signs`), so that ITK reads the labels
    mirrored as it reads the image, not 2 x their distance from the axis away; built without an
    affine, so that saving writes the header as it is (nibabel would check the values against one)."""
    out = type(img)(np.asanyarray(img.dataobj), None, header=img.header)  # the constructor fixes a header given to it: set after
    out.header["pixdim"][: len(raw)] = raw
    return out


def _output_ndim(labels: np.ndarray, like: Volume) -> int:
    src_ndim = int(like.meta.get("source_ndim", 3))
    if labels.ndim == 4 and (labels.shape[0] > 1 or src_ndim == 4):
        return 4
    if src_ndim == 2 and like.n_slices == 1:
        return 2
    return 3

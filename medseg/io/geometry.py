"""All geometry conversions of medseg, in one place.

medseg's convention (see :mod:`medseg.io.volume`): arrays are ``(T, Z, Y, X)``; the 4x4
affine maps a voxel index ``(x, y, z, 1)`` = (column, row, slice) to world **RAS+** mm.

DICOM and ITK (SimpleITK, MHA/MHD/NRRD) use **LPS+** world coordinates; RAS = LPS with the
first two world axes negated. nibabel uses RAS and stores arrays as ``[x, y, z, t]``. Every
LPS<->RAS flip and every axis transpose between those libraries and medseg lives here.

This module imports only numpy (a labels' medseg sidecar is read, lazily, by
:func:`recorded_pixel_spacing`); the SimpleITK image passed to :func:`affine_from_sitk` is used
through its methods only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import GeometryError
from .volume import Volume, require_volume

#: 4x4 matrix that flips world LPS <-> RAS (it is its own inverse).
LPS_RAS_FLIP: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])

#: DICOM orientations (direction cosines) closer than this stack into one grid
ORIENTATION_ATOL = 1e-3


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """(..., 3) world points in LPS mm -> RAS mm (negate x and y)."""
    p = np.array(points, dtype=np.float64, copy=True)
    p[..., :2] *= -1.0
    return p


ras_to_lps = lps_to_ras  # the flip is an involution


def affine_lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """A voxel->LPS affine (4, 4) -> the voxel->RAS affine."""
    return LPS_RAS_FLIP @ np.asarray(affine_lps, dtype=np.float64)


def affine_ras_to_lps(affine_ras: np.ndarray) -> np.ndarray:
    """A voxel->RAS affine (4, 4) -> the voxel->LPS affine."""
    return LPS_RAS_FLIP @ np.asarray(affine_ras, dtype=np.float64)


#: voxel (column, row, slice) -> RAS mm of a 2-D raster image (PNG, JPEG, BMP, TIFF: no geometry
#: in the file): where ITK (SimpleITK, 3D Slicer, ITK-SNAP) places it, origin 0, 1 mm pixels,
#: identity direction in LPS (columns run to the left, rows to posterior). Labels written for it
#: as NIfTI, MHA or NRRD then overlay it there. Earlier medseg placed it at RAS identity, that
#: mirrored in x and y: :func:`same_placement` (so :func:`check_same_grid`) still takes that.
RASTER_AFFINE: np.ndarray = affine_lps_to_ras(np.eye(4))


# -- DICOM ------------------------------------------------------------------------------
def dicom_directions(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageOrientationPatient (6 values, LPS) -> unit (row_dir, col_dir, normal) in LPS.

    ``row_dir`` is the direction of increasing column index (x), ``col_dir`` of increasing row
    index (y), ``normal = row_dir x col_dir``.
    """
    v = np.asarray(iop, dtype=np.float64).reshape(2, 3)
    norms = np.linalg.norm(v, axis=1)
    if np.any(norms < 1e-6) or not np.all(np.isfinite(v)):
        raise GeometryError(f"ImageOrientationPatient [{', '.join(f'{x:.6g}' for x in v.ravel())}] is not two direction vectors")
    row_dir, col_dir = v[0] / norms[0], v[1] / norms[1]
    normal = np.cross(row_dir, col_dir)
    if np.linalg.norm(normal) < 1e-3:
        raise GeometryError("ImageOrientationPatient row and column directions are parallel")
    return row_dir, col_dir, normal / np.linalg.norm(normal)


def affine_from_dicom(
    ipp_first: Sequence[float],
    iop: Sequence[float],
    pixel_spacing: Sequence[float],
    slice_step_vector: Sequence[float],
) -> np.ndarray:
    """Voxel (x, y, z) -> world RAS affine of a DICOM stack.

    Args:
        ipp_first: ImagePositionPatient (LPS mm) of slice index 0 (centre of its first pixel).
        iop: ImageOrientationPatient (6 values, LPS).
        pixel_spacing: DICOM PixelSpacing = (row spacing, column spacing) = (dy, dx) mm.
        slice_step_vector: LPS mm vector from slice k's IPP to slice k+1's IPP.

    Returns:
        (4, 4) float64 affine in RAS.
    """
    row_dir, col_dir, _ = dicom_directions(iop)
    dy, dx = (float(s) for s in pixel_spacing)
    if not (dx > 0 and dy > 0):
        raise GeometryError(f"PixelSpacing {list(pixel_spacing)} is zero or negative")
    aff = np.eye(4)
    aff[:3, 0] = row_dir * dx
    aff[:3, 1] = col_dir * dy
    aff[:3, 2] = np.asarray(slice_step_vector, dtype=np.float64)
    aff[:3, 3] = np.asarray(ipp_first, dtype=np.float64)
    return affine_lps_to_ras(aff)


def dicom_position_along_normal(ipp: Sequence[float], iop: Sequence[float]) -> float:
    """Signed position (mm) of a DICOM slice along its normal: dot(IPP, row_dir x col_dir)."""
    return float(np.dot(np.asarray(ipp, dtype=np.float64), dicom_directions(iop)[2]))


# -- ITK / SimpleITK --------------------------------------------------------------------
def affine_from_itk(origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float]) -> np.ndarray:
    """ITK geometry (LPS; 2-, 3- or 4-D, only the first 3 axes used) -> (4, 4) RAS affine.

    ``direction`` is ITK's row-major flattened D x D matrix whose *columns* are the axis
    directions. A 2-D image gets a unit third axis along the normal of its plane.
    """
    dim = len(origin)
    d = np.asarray(direction, dtype=np.float64).reshape(dim, dim)
    sp = np.asarray(spacing, dtype=np.float64)
    if np.any(~np.isfinite(sp)) or np.any(sp[: min(dim, 3)] <= 0):
        raise GeometryError(f"voxel spacing {_plain(sp)} is zero or missing")
    problem = itk_direction_problem(direction, dim)
    if problem:
        raise GeometryError(problem)
    n = min(dim, 3)
    aff = np.eye(4)
    aff[:n, :n] = d[:n, :n] * sp[:n]
    aff[:n, 3] = np.asarray(origin, dtype=np.float64)[:n]
    if dim == 2:
        aff[:3, 2] = np.cross(aff[:3, 0], aff[:3, 1]) / (sp[0] * sp[1])
    return affine_lps_to_ras(aff)


def itk_direction_problem(direction: Sequence[float], dim: int, atol: float = ORIENTATION_ATOL) -> str | None:
    """What is wrong with an ITK direction matrix (row-major D x D, columns = axis directions;
    the first 3 axes, or 2), or None when its axes are unit vectors, the in-plane two at right
    angles (within ``atol``: 1e-3, as DICOM orientations; SimpleITK's own files are within 1e-7).

    A column longer or shorter than 1 (TransformMatrix 2 0 0 0 2 0 0 0 2) puts a second voxel size
    into the matrix: SimpleITK reports the spacing alone, its physical points scale by both.
    Row and column axes not at right angles make pixels parallelograms, which no scanner writes.
    The slice axis may lean (a stack whose positions drift in-plane, gantry tilt: medseg's own
    .mha / .nrrd labels of such a DICOM stack), as a NIfTI sform may.
    """
    n = min(dim, 3)
    d = np.asarray(direction, dtype=np.float64).reshape(dim, dim)[:n, :n]
    shown = "(" + "; ".join(" ".join(f"{v:.6g}" for v in row) for row in d) + ")"
    what = f"the direction matrix {shown} (TransformMatrix / space directions)"
    if not np.all(np.isfinite(d)):
        return f"{what} holds NaN or infinite values; allowed: finite numbers"
    norms = np.linalg.norm(d, axis=0)
    if np.any(norms < 1e-6) or abs(np.linalg.det(d)) < 1e-9:
        return f"{what} is singular (its axes are not independent); allowed: unit axes at right angles"
    if np.any(np.abs(norms - 1.0) > atol):
        return (f"{what} has axes of length {_plain(norms)}, not 1: the voxel size would be counted twice "
                "(allowed: unit axis directions, the voxel size in the spacing)")
    angle = _axes_angle(d[:, 0], d[:, 1], atol)
    if angle is not None:
        return f"{what} has row and column axes {angle:.2f} degrees apart (pixels would be parallelograms); allowed: 90 degrees"
    return None


def pixel_axes_angle(affine: np.ndarray, atol: float = ORIENTATION_ATOL) -> float | None:
    """The angle (degrees) between a grid's row and column axes (an affine's first two columns)
    when it is not 90 (within ``atol``, as :func:`itk_direction_problem`), else None."""
    aff = np.asarray(affine, dtype=np.float64)
    return _axes_angle(aff[:3, 0], aff[:3, 1], atol)


def _axes_angle(a: np.ndarray, b: np.ndarray, atol: float) -> float | None:
    """Degrees between two axis vectors when their cosine is beyond ``atol``; None when they are
    at right angles (or one has no length: reported as singular elsewhere)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-9 or nb < 1e-9:
        return None
    cos = float(np.dot(a, b) / (na * nb))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))) if abs(cos) > atol else None


def _plain(values: Any) -> str:
    """Numbers as a plain list (no numpy reprs in messages): [1.5625, 1.5625, 10]."""
    return "[" + ", ".join(f"{float(v):.6g}" for v in np.ravel(values)) + "]"


def affine_from_sitk(image: Any) -> np.ndarray:
    """A SimpleITK image -> (4, 4) voxel (x, y, z) -> world RAS affine."""
    return affine_from_itk(image.GetOrigin(), image.GetSpacing(), image.GetDirection())


def sitk_geometry_from_affine(affine: np.ndarray, ndim: int = 3) -> tuple[tuple, tuple, tuple]:
    """(4, 4) RAS affine -> ITK ``(origin, spacing, direction)`` in LPS for an ``ndim`` image.

    ``ndim`` is 2, 3 or 4; a 4th (time) axis gets spacing 1 and an identity direction row.
    Returns tuples ready for ``SetOrigin``/``SetSpacing``/``SetDirection``.
    """
    lps = affine_ras_to_lps(affine)
    m = lps[:3, :3]
    sp = np.linalg.norm(m, axis=0)
    if np.any(sp <= 1e-9):
        raise GeometryError(f"affine has a zero-length axis (spacing {_plain(sp)})")
    d3 = m / sp
    if ndim == 2:
        return tuple(lps[:2, 3]), tuple(sp[:2]), tuple(d3[:2, :2].ravel())
    d = np.eye(ndim)
    d[:3, :3] = d3
    origin = list(lps[:3, 3]) + [0.0] * (ndim - 3)
    spacing = list(sp) + [1.0] * (ndim - 3)
    return tuple(float(v) for v in origin), tuple(float(v) for v in spacing), tuple(d.ravel().tolist())


# -- nibabel axis order ------------------------------------------------------------------
def nifti_to_medseg(data: np.ndarray) -> np.ndarray:
    """nibabel array ``[x, y]``, ``[x, y, z]`` or ``[x, y, z, t]`` -> medseg ``(T, Z, Y, X)``.

    A view (transpose), not a copy.
    """
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4:
        raise GeometryError(f"expected a 2-, 3- or 4-D array, got shape {data.shape}")
    return data.transpose(3, 2, 1, 0)


def medseg_to_nifti(array: np.ndarray, ndim: int) -> np.ndarray:
    """medseg ``(T, Z, Y, X)`` or ``(Z, Y, X)`` -> nibabel ``[x, y(, z(, t))]`` with ``ndim`` axes.

    ``ndim`` 2 requires T = Z = 1, ``ndim`` 3 requires T = 1.
    """
    a = array if array.ndim == 4 else array[None]
    t, z = a.shape[:2]
    if (ndim <= 3 and t != 1) or (ndim == 2 and z != 1):
        raise GeometryError(f"cannot store shape {array.shape} as a {ndim}-D NIfTI array")
    out = a.transpose(3, 2, 1, 0)
    return out.reshape(out.shape[:ndim]) if ndim < 4 else out


# -- measurements and comparisons --------------------------------------------------------
def slice_normal(affine: np.ndarray) -> np.ndarray:
    """Unit RAS normal of the (x, y) image plane: column0 x column1 of the affine, normalised."""
    a = np.asarray(affine, dtype=np.float64)
    n = np.cross(a[:3, 0], a[:3, 1])
    return n / np.linalg.norm(n)


#: a slice normal within this angle of a world axis names the plane (axial, coronal, sagittal)
PLANE_TOLERANCE_DEG = 10.0


def orientation(affine: np.ndarray) -> dict[str, Any]:
    """What ``medseg info`` says of an affine's orientation: ``axcodes``, the RAS letters the
    voxel axes (x = column, y = row, z = slice) point towards (nibabel's ``aff2axcodes``: "LPS"
    for a DICOM axial CT read in medseg's order), ``plane`` ("axial", "coronal", "sagittal":
    the slice normal within :data:`PLANE_TOLERANCE_DEG` of S, A or R; else "oblique"), and,
    where the slice axis leans from the normal (a gantry tilt, a stack whose positions drift
    in-plane), ``slice_tilt_deg`` and ``slice_distance_mm``, the distance between slice planes
    along their normal (what volumes use; ``spacing_mm[0]`` is the centre-to-centre step)."""
    from nibabel.orientations import aff2axcodes

    a = np.asarray(affine, dtype=np.float64)
    n = slice_normal(a)
    axis = int(np.argmax(np.abs(n)))
    off = float(np.degrees(np.arccos(min(1.0, abs(n[axis])))))
    out: dict[str, Any] = {"axcodes": "".join(aff2axcodes(a)),
                           "plane": ("sagittal", "coronal", "axial")[axis] if off <= PLANE_TOLERANCE_DEG else "oblique"}
    step = a[:3, 2]
    along = abs(float(step @ n))
    tilt = float(np.degrees(np.arccos(min(1.0, along / float(np.linalg.norm(step))))))
    if tilt > 0.01:
        out.update(slice_tilt_deg=round(tilt, 2), slice_distance_mm=round(along, 6))
    return out


def slice_positions_mm(volume: Volume) -> np.ndarray:
    """(Z,) signed position (mm) of each slice centre along the slice normal (RAS).

    Positions increase with the slice index when the slice axis points along the normal
    (the usual case); differences give the centre-to-centre slice distance.
    """
    n = slice_normal(volume.affine)
    z = np.arange(volume.n_slices, dtype=np.float64)
    origins = volume.affine[:3, 3][None, :] + z[:, None] * volume.affine[:3, 2][None, :]
    return origins @ n


def check_same_grid(image: Volume, labels: Volume, what: str, atol_mm: float = 1e-3, rtol: float = 1e-4) -> None:
    """Raise :class:`GeometryError` unless ``labels`` lies on ``image``'s voxel grid.

    Compares the (Z, Y, X) shapes and the affines (``atol_mm`` mm absolute, ``rtol`` relative;
    for an image without geometry of its own, a PNG or a clip, :func:`same_placement` also takes
    the x/y mirror earlier medseg placed it at). An image without pixel spacing (PNG, video,
    DICOM without PixelSpacing) is compared as the labels were segmented from it: with the pixel
    spacing ``medseg segment`` / ``batch`` was given for them (:func:`with_labels_spacing`).
    ``labels`` may have one frame (T = 1) for a multi-frame image, or the same T.
    ``what`` names the label input in the message (e.g. a file name); with equal shapes it says
    what differs (spacing, origin, direction: :func:`grid_difference`).
    """
    image, labels = require_volume(image, "image"), require_volume(labels, what)
    if not _same_grid(image, labels, atol_mm, rtol):
        image = with_labels_spacing(image, labels)
    if not _same_grid(image, labels, atol_mm, rtol):
        hint = ("; the labels hold the same grid with their axes flipped or reordered: save them on the image's voxel order"
                if _same_world_box(image, labels, atol_mm) else _placed_since_hint(image, labels))
        if image.grid_shape != labels.grid_shape:
            diff = float(np.max(np.abs(labels.affine - image.affine)))
            said = (f"labels (Z,Y,X) {labels.grid_shape} spacing {_fmt(labels.spacing)} mm vs image {image.grid_shape} spacing "
                    f"{_fmt(image.spacing)} mm (max affine difference {diff:.4g} mm)")
        else:
            said = f"same (Z,Y,X) {labels.grid_shape}, but {grid_difference(image, labels, atol_mm, rtol)}"
        raise GeometryError(f"{what}: grid does not match the image: {said}{hint}")
    if labels.n_frames not in (1, image.n_frames):
        do = ("give the cine they segment as the image, or the labels of this frame alone" if image.n_frames == 1
              else f"allowed: 1 or {image.n_frames}; give the labels of this image's frames, or of one frame")
        raise GeometryError(f"{what}: labels have {labels.n_frames} frames but the image has {image.n_frames} ({do})")
    if labels.meta.get("format") == "dicom-seg" and image.n_frames > 1:
        # one-frame labels stand for every frame of a cine; a SEG segments one phase's images
        raise GeometryError(
            f"{what}: a DICOM SEG holds one cardiac phase and the image has {image.n_frames} frames; "
            "pair the SEG with that phase's images (a series or file of that phase alone)"
        )


def _same_grid(image: Volume, labels: Volume, atol_mm: float, rtol: float) -> bool:
    return image.grid_shape == labels.grid_shape and same_placement(image, labels, atol_mm, rtol)


def grid_difference(image: Volume, labels: Volume, atol_mm: float = 1e-3, rtol: float = 1e-4) -> str:
    """What differs between the grids of ``labels`` and ``image``, with the values, for a one-line
    error: "(Z,Y,X) (7, 224, 224) vs image (1, 224, 224)"; for equal shapes, each of "spacing (1,
    0.3, 0.3) mm vs image (1, 1, 1) mm (the image records none ...)", "origin [..] vs image [..]
    mm (RAS)" and "direction (..) vs image (..)" that differs."""
    if image.grid_shape != labels.grid_shape:
        return f"(Z,Y,X) {labels.grid_shape} vs image {image.grid_shape}"
    a, b = np.asarray(labels.affine, dtype=np.float64), np.asarray(image.affine, dtype=np.float64)
    out = []
    if not np.allclose(labels.spacing, image.spacing, atol=1e-6, rtol=rtol):
        none = ("" if image.spacing_known else " (the image records none, and no medseg sidecar beside the labels says "
                "segment was given --pixel-spacing for it)")
        out.append(f"spacing {_fmt(labels.spacing)} mm vs image {_fmt(image.spacing)} mm{none}")
    if not np.allclose(a[:3, 3], b[:3, 3], atol=atol_mm, rtol=rtol):
        out.append(f"origin {_plain(a[:3, 3])} vs image {_plain(b[:3, 3])} mm (RAS)")
    da, db = a[:3, :3] / np.linalg.norm(a[:3, :3], axis=0), b[:3, :3] / np.linalg.norm(b[:3, :3], axis=0)
    if not np.allclose(da, db, atol=ORIENTATION_ATOL):
        out.append(f"direction {_matrix(da)} vs image {_matrix(db)} (RAS axis directions, columns x y z)")
    return "; ".join(out) or f"affines differ by up to {float(np.max(np.abs(a - b))):.4g} mm"


def _matrix(m: np.ndarray) -> str:
    """A 3 x 3 direction matrix row by row, 3 digits: "(-1 0 0; 0 -1 0; 0 0 1)" (no "-0")."""
    return "(" + "; ".join(" ".join(f"{v:.3g}" for v in row) for row in np.round(np.asarray(m, dtype=np.float64), 3) + 0.0) + ")"


def given_pixel_spacing(labels: Volume) -> tuple[float, float] | None:
    """The (row, column) mm pixel spacing a user gave medseg for the image ``labels`` segment:
    ``--pixel-spacing`` in this run (``meta["spacing_from"]``,
    :func:`medseg.io.volume.with_pixel_spacing`), or when ``medseg segment`` / ``batch`` wrote
    them (their sidecar: :func:`recorded_pixel_spacing`, the file's own spacing too); None for
    any other (a spacing of the file's own, none)."""
    from .volume import GIVEN_SPACING

    if not labels.spacing_known:
        return None
    row_col = (float(labels.spacing[1]), float(labels.spacing[2]))
    if labels.meta.get("spacing_from") == GIVEN_SPACING:
        return row_col
    recorded = recorded_pixel_spacing(labels.meta.get("path"))
    return row_col if recorded is not None and np.allclose(recorded, row_col, rtol=1e-4, atol=1e-9) else None


def recorded_pixel_spacing(path: Any) -> tuple[float, float] | None:
    """The (row, column) mm pixel spacing the medseg sidecar of the label file ``path`` records
    ``segment`` / ``batch`` was given (``provenance.spacing_from`` "--pixel-spacing",
    ``pixel_spacing_mm``); None without one (no path, no sidecar, another spacing source)."""
    if not path:
        return None
    from .volume import GIVEN_SPACING
    from .writers import read_sidecar

    prov = (read_sidecar(path) or {}).get("provenance")
    mm = prov.get("pixel_spacing_mm") if isinstance(prov, dict) and prov.get("spacing_from") == GIVEN_SPACING else None
    if not (isinstance(mm, list) and len(mm) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mm)):
        return None
    return (float(mm[0]), float(mm[1])) if all(np.isfinite(v) and v > 0 for v in mm) else None


def with_labels_spacing(image: Volume, labels: Volume, what: str = "image") -> Volume:
    """``image`` as ``labels`` were segmented from it: one without pixel spacing (PNG, video,
    DICOM without PixelSpacing; one slice) given the spacing that ``--pixel-spacing`` gave
    them (:func:`given_pixel_spacing`); any other image as it is."""
    if image.spacing_known or image.n_slices != 1:
        return image
    row_col = given_pixel_spacing(labels)
    if row_col is None:
        return image
    from .volume import with_pixel_spacing

    return with_pixel_spacing(image, row_col, what)


def _placed_since_hint(image: Volume, labels: Volume) -> str:
    """Why labels at origin 0, axis-aligned, do not pair with a single DICOM image that medseg
    now places by its position and orientation although it has no PixelSpacing
    (:mod:`medseg.io.dicom_single`; earlier releases put it at origin 0): "" otherwise."""
    m = labels.affine[:3, :3]
    if not (image.meta.get("format") == "dicom" and image.meta.get("placed_without_spacing")
            and not np.any(labels.affine[:3, 3]) and not np.any(m - np.diag(np.diag(m)))):
        return ""
    return ("; the labels lie at origin 0, where medseg before 2026-12-07 put this image (position and orientation but no "
            "PixelSpacing); it is now placed by its position and orientation, as ITK places it: segment it again (docs/io.md)")


def same_placement(a: Volume, b: Volume, atol_mm: float = 1e-3, rtol: float = 1e-4) -> bool:
    """Whether two grids' affines agree (``atol_mm`` mm, ``rtol`` relative). A 2-D image without
    geometry in its file (PNG, JPEG, BMP, TIFF; an AVI/MP4 clip; a DICOM image without position
    and orientation: an ultrasound clip, a secondary capture) also agrees with the x and y mirror
    of its affine, where earlier medseg placed it (RAS identity, not :data:`RASTER_AFFINE`):
    labels written so, or such an image at RAS identity beside PNG labels."""
    if np.allclose(b.affine, a.affine, atol=atol_mm, rtol=rtol):
        return True

    def unplaced(v: Volume) -> bool:
        fmt = v.meta.get("format")
        if fmt in ("raster", "video"):
            return True
        # a DICOM image or clip without ImagePositionPatient / ImageOrientationPatient (dicom_single.single_image_geometry):
        # axis-aligned at origin 0; a legacy multi-frame clip placed by them ("positioned" False too) keeps its mirror refused
        m = v.affine[:3, :3]
        return (fmt == "dicom" and v.meta.get("positioned") is False and not np.any(v.affine[:3, 3])
                and not np.any(m - np.diag(np.diag(m))))

    return (unplaced(a) or unplaced(b)) and bool(np.allclose(b.affine, LPS_RAS_FLIP @ a.affine, atol=atol_mm, rtol=rtol))


def _grid_corners(volume: Volume) -> np.ndarray:
    """(8, 3) world RAS mm of the centres of a grid's 8 corner voxels."""
    z, y, x = (n - 1 for n in volume.grid_shape)
    idx = np.array([[i, j, k, 1.0] for i in (0, x) for j in (0, y) for k in (0, z)])
    return (volume.affine @ idx.T).T[:, :3]


def _same_world_box(image: Volume, labels: Volume, atol_mm: float) -> bool:
    """True when the two grids hold as many voxels along the same axes (in some order) and their
    corner voxels lie on the same 8 world points (within ``atol_mm``): the same grid stored with
    its voxel axes flipped or reordered (nibabel's ``as_closest_canonical``, a reorienting tool)."""
    if sorted(image.grid_shape) != sorted(labels.grid_shape):
        return False
    a, b = _grid_corners(image), _grid_corners(labels)
    dist = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    return bool(np.all(dist.min(axis=1) <= atol_mm) and np.all(dist.min(axis=0) <= atol_mm))


def _fmt(spacing: Sequence[float]) -> str:
    return "(" + ", ".join(f"{s:.4g}" for s in spacing) + ")"

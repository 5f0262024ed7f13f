"""The one image type that flows through medseg.

Axis order and geometry convention (the only one in medseg):

* ``Volume.array`` is always 4-D, ``(T, Z, Y, X)`` = (frame, slice, row, column). A 2-D image
  is ``(1, 1, Y, X)``, a 3-D stack ``(1, Z, Y, X)``, a cine stack ``(T, Z, Y, X)``, an echo clip
  ``(T, 1, Y, X)``. This is SimpleITK's array order with time in front.
* ``Volume.affine`` (4x4) maps a voxel index written as ``(x, y, z, 1)`` = (column, row, slice)
  to world coordinates in millimetres, **RAS+** (nibabel's convention). DICOM/ITK LPS is
  converted in :mod:`medseg.io.geometry` and nowhere else.
* Spacing is derived from the affine (column norms); it is never stored separately.
  ``spacing`` is given in array order ``(dz, dy, dx)`` mm. For a short-axis stack ``dz`` is the
  centre-to-centre slice distance, not the SliceThickness tag.
* Images with no physical spacing (PNG, video) have ``spacing_known = False`` and an identity
  in-plane scale (1 mm per pixel). Measurements that need millimetres refuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import GeometryError, ImageReadError, MedsegError

AXES: tuple[str, str, str, str] = ("t", "z", "y", "x")

MODALITIES = ("MR", "CT", "US", "OT")


#: the voxel sizes (mm) an image may have: 1 um (a micro-CT's; an echo's 0.3 mm pixels stored
#: in metres read 0.0003) to 1 km (no image's, but still measured, and flagged as implausible)
VOXEL_MM = (1e-3, 1e6)
#: the least |det| of the affine's direction cosines (the volume of the unit cell spanned by the
#: axes): below it the axes are not independent, whatever the voxel size
MIN_AXES_VOLUME = 1e-6


def check_voxel_size(aff: np.ndarray) -> None:
    """Refuse a (finite) 4x4 affine whose voxel sizes (column norms) lie outside :data:`VOXEL_MM`
    or whose axes are not independent, in words naming the sizes. The independence test is
    scale free (the determinant over the product of the axis lengths): an echo's 0.0003 mm
    pixels were called "singular" by the absolute ``det < 1e-9`` it replaced."""
    sp = np.linalg.norm(aff[:3, :3], axis=0)
    sizes = f"x, y, z = {', '.join(f'{float(v):.6g}' for v in sp)} mm"
    if np.any(sp <= 1e-6):
        raise GeometryError(f"voxel spacing is zero or missing ({sizes}; allowed: above 1e-6 mm)")
    lo, hi = VOXEL_MM
    if np.any(sp < lo):
        raise GeometryError(f"voxel size {float(sp.min()):.6g} mm is smaller than any scanner's ({sizes}; allowed: {lo:g} to {hi:g} mm): "
                            "a spacing in metres? Save it in mm (or as NIfTI with xyzt_units 'meter')")
    if np.any(sp > hi):
        raise GeometryError(f"voxel size {float(sp.max()):.6g} mm is larger than any image's ({sizes}; allowed: {lo:g} to {hi:g} mm): "
                            "check the file's pixel spacing (DICOM PixelSpacing, NIfTI pixdim / sform)")
    if abs(np.linalg.det(aff[:3, :3])) / float(np.prod(sp)) < MIN_AXES_VOLUME:
        raise GeometryError(f"affine is singular (the image axes are not independent; {sizes})")


@dataclass(frozen=True, eq=False)
class Volume:
    """An image with its geometry.

    Attributes:
        array: (T, Z, Y, X) numeric array.
        affine: (4, 4) voxel (x, y, z) -> world RAS mm.
        frame_times_s: (T,) frame times in seconds, or None when unknown (DICOM: TriggerTime,
            the time since the R wave; NIfTI: frame index x pixdim[4]; video: index / fps).
        modality: "MR", "CT", "US" or "OT" (other / unknown).
        spacing_known: False for PNG/video inputs without physical pixel size.
        meta: source information needed to write results back in the same geometry
            (``format``, ``path``, and format-specific entries such as the NIfTI header or the
            DICOM file list per (t, z)). Never used for geometry decisions.
    """

    array: np.ndarray
    affine: np.ndarray
    frame_times_s: np.ndarray | None = None
    modality: str = "OT"
    spacing_known: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 4:
            raise ImageReadError(f"Volume array must be 4-D (T, Z, Y, X), got {arr.ndim}-D shape {arr.shape}")
        if min(arr.shape) < 1:
            raise ImageReadError(f"image has an empty axis: shape {arr.shape}")
        if arr.shape[2] < 2 or arr.shape[3] < 2:
            raise ImageReadError(f"image is too small to segment: {arr.shape[2]}x{arr.shape[3]} pixels per slice")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise ImageReadError(f"image data type {arr.dtype} is not a real number type")
        aff = np.asarray(self.affine, dtype=np.float64)
        if aff.shape != (4, 4):
            raise GeometryError(f"affine must be a 4x4 matrix, got shape {aff.shape}")
        if not np.all(np.isfinite(aff)):
            at = ", ".join(f"[{r}, {c}]" for r, c in zip(*np.nonzero(~np.isfinite(aff)), strict=True))
            raise GeometryError(f"affine holds NaN or infinite values (at row, column {at}); allowed: finite numbers")
        check_voxel_size(aff)
        if self.modality not in MODALITIES:
            raise ImageReadError(f"unknown modality {self.modality!r}; allowed: {', '.join(MODALITIES)}")
        if self.frame_times_s is not None:
            ft = np.asarray(self.frame_times_s, dtype=np.float64)
            if ft.shape != (arr.shape[0],):
                raise ImageReadError(f"frame_times_s has {ft.shape} entries for {arr.shape[0]} frames")
            object.__setattr__(self, "frame_times_s", ft)
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", aff)

    def __repr__(self) -> str:
        """One line a notebook can print: shape, type, spacing, modality and source, not the
        voxels and the reader's meta (a DICOM Volume's repr ran to kilobytes)."""
        sp = ", ".join(f"{v:.4g}" for v in self.spacing) if self.spacing_known else "unknown"
        times = "" if self.frame_times_s is None else f", frame_times_s=[{float(self.frame_times_s[0]):.4g} .. {float(self.frame_times_s[-1]):.4g}]"
        src = self.meta.get("path")
        return (f"Volume(shape={self.shape} (T, Z, Y, X), dtype={self.array.dtype}, spacing_mm=({sp}), "
                f"modality={self.modality!r}{times}" + (f", path={str(src)!r}" if src else "") + ")")

    # -- shape ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def n_frames(self) -> int:
        return int(self.array.shape[0])

    @property
    def n_slices(self) -> int:
        return int(self.array.shape[1])

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """(Z, Y, X) of one frame."""
        return tuple(self.array.shape[1:])  # type: ignore[return-value]

    # -- geometry ---------------------------------------------------------------------
    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing in mm in array order (dz, dy, dx), from the affine's column norms."""
        sx, sy, sz = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(sz), float(sy), float(sx))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def index_to_world(self, zyx: np.ndarray) -> np.ndarray:
        """(N, 3) voxel indices in (z, y, x) order -> (N, 3) world RAS mm."""
        zyx = np.atleast_2d(np.asarray(zyx, dtype=np.float64))
        xyz1 = np.c_[zyx[:, ::-1], np.ones(len(zyx))]
        return (self.affine @ xyz1.T).T[:, :3]

    def world_to_index(self, ras: np.ndarray) -> np.ndarray:
        """(N, 3) world RAS mm -> (N, 3) fractional voxel indices in (z, y, x) order."""
        ras = np.atleast_2d(np.asarray(ras, dtype=np.float64))
        xyz = (np.linalg.inv(self.affine) @ np.c_[ras, np.ones(len(ras))].T).T[:, :3]
        return xyz[:, ::-1]

    def same_grid(self, other: Volume, atol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same (Z, Y, X) shape and affine (within ``atol_mm``)."""
        return self.grid_shape == other.grid_shape and bool(np.allclose(self.affine, other.affine, atol=atol_mm))

    # -- views ------------------------------------------------------------------------
    def frame(self, t: int) -> np.ndarray:
        """(Z, Y, X) array of frame ``t``."""
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} is outside 0..{self.n_frames - 1}")
        return self.array[t]

    def phase(self, t: int) -> Volume:
        """Frame ``t`` alone as a one-frame Volume (a DICOM source's per-frame file lists cut to it)."""
        arr = self.frame(t)[None]
        per_frame = ("files", "frame_numbers", "trigger_times_ms", "sop_instance_uids")
        meta = {k: ([v[t]] if k in per_frame and isinstance(v, list) and len(v) == self.n_frames else v) for k, v in self.meta.items()}
        return replace(self, array=arr, frame_times_s=None, meta={**meta, "cine_frames": self.n_frames, "frame_of_cine": t})

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """A new Volume on the same geometry with another array (e.g. labels)."""
        return replace(self, array=array, **changes)

    def describe(self) -> dict[str, Any]:
        """The facts ``medseg info --json`` prints."""
        sz, sy, sx = self.spacing
        d: dict[str, Any] = {
            "shape": list(self.shape),
            "axes": list(AXES),
            "spacing_mm": [round(sz, 6), round(sy, 6), round(sx, 6)],
            "spacing_known": self.spacing_known,
            "modality": self.modality,
            "n_frames": self.n_frames,
            "n_slices": self.n_slices,
            "dtype": str(self.array.dtype),
            "format": self.meta.get("format"),
            "affine_ras": np.round(self.affine, 6).tolist(),
        }
        if self.spacing_known and self.meta.get("positioned") is not False:  # a PNG's, a video's or an echo DICOM's affine: no orientation
            from .geometry import orientation

            d.update(orientation(self.affine))
        if self.array.size:  # Hounsfield units for CT (after the rescale, padding as read)
            d["value_range"] = [_plain_number(self.array.min()), _plain_number(self.array.max())]
        if self.frame_times_s is not None:
            d["frame_times_s"] = np.round(self.frame_times_s, 6).tolist()
        for key in ("series_description", "series_instance_uid", "path", "geometry_note", "time_note", "cardiac_timing_note", "frame_of_reference_note"):
            if self.meta.get(key) is not None:
                d[key] = self.meta[key]
        if len(self.meta.get("series_instance_uids") or ()) > 1:  # e.g. a cine saved one series per slice
            d["series_merged"] = len(self.meta["series_instance_uids"])
        for key in ("us_region", "us_region_note"):  # an echo screen's 2-D image region: zero-click looks only there (us_region.py)
            if self.meta.get(key) is not None:
                d[key] = self.meta[key]
        return d


def _plain_number(value: Any) -> int | float:
    """A numpy scalar as JSON's int (integer arrays) or float (6 significant digits)."""
    return int(value) if np.issubdtype(np.asarray(value).dtype, np.integer) else float(f"{float(value):.6g}")


def require_volume(obj: Any, what: str = "image") -> Volume:
    """``obj`` when it is a :class:`Volume`; else a one-line :class:`~medseg.errors.MedsegError`
    naming what was given and how to make one (a library caller passing a numpy array or a path
    got an AttributeError from deep inside)."""
    if isinstance(obj, Volume):
        return obj
    got = f"a numpy array of shape {obj.shape}" if isinstance(obj, np.ndarray) else f"{type(obj).__name__} {obj!r:.80}"
    raise MedsegError(f"{what} must be a medseg.io.Volume (medseg.io.read_volume(path), or Volume(array (T, Z, Y, X), "
                      f"affine 4x4 voxel (x, y, z) -> RAS mm)), got {got}")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(..., 3 or 4) RGB(A) -> (...) float32 luminance (ITU-R BT.601): how every reader turns a
    colour image into the grey one medseg segments."""
    a = np.asarray(rgb).astype(np.float32, copy=False)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


#: ``meta["spacing_from"]`` of a Volume whose pixel spacing the user gave (``--pixel-spacing``)
GIVEN_SPACING = "--pixel-spacing"


def with_pixel_spacing(vol: Volume, row_col_mm: tuple[float, float], what: str = "image") -> Volume:
    """``vol`` with the in-plane pixel spacing a user gives, in DICOM PixelSpacing order: (row
    spacing = dy, column spacing = dx) mm; its affine's column and row axes scaled to it
    (directions and origin kept), ``spacing_known`` True, ``meta["spacing_from"]``
    :data:`GIVEN_SPACING`. A file that records its own spacing keeps it: the same (within
    1e-4 relative) passes unchanged, another is a :class:`GeometryError`, as is a stack of
    several slices that records none (its slice distance is unknown too)."""
    dy, dx = (float(v) for v in row_col_mm)
    if vol.spacing_known:
        if np.allclose((dy, dx), vol.spacing[1:], rtol=1e-4, atol=1e-9):
            return vol
        raise GeometryError(f"{what} records a pixel spacing of {vol.spacing[1]:.6g} x {vol.spacing[2]:.6g} mm (row x column), "
                            f"--pixel-spacing gives {dy:.6g} x {dx:.6g}: leave --pixel-spacing out (the file's is used) or fix the file")
    if vol.n_slices > 1:
        raise GeometryError(f"{what} is a stack of {vol.n_slices} slices that records no spacing: --pixel-spacing gives the pixel size, "
                            "not the slice distance; save it with its spacing (NIfTI, MHA, NRRD)")
    aff = vol.affine.copy()
    for col, mm in ((0, dx), (1, dy)):
        aff[:3, col] *= mm / np.linalg.norm(aff[:3, col])
    return replace(vol, affine=aff, spacing_known=True, meta={**vol.meta, "spacing_from": GIVEN_SPACING})


def parse_pixel_spacing(text: str | None, option: str = "--pixel-spacing") -> tuple[float, float] | None:
    """``--pixel-spacing ROW_MM[,COL_MM]`` as (row spacing, column spacing) = (dy, dx) mm, one
    number for both; None when not given. One line for anything but 1 or 2 positive finite numbers."""
    import math

    from ..errors import MedsegError

    if text is None:
        return None
    parts = [s.strip() for s in text.split(",")]
    try:
        values = [float(s) for s in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(math.isfinite(v) and v > 0 for v in values):
        raise MedsegError(f"{option} must be one or two positive numbers in mm (ROW_MM[,COL_MM], e.g. 0.3 or 0.7,0.5), got {text!r}")
    lo, hi = VOXEL_MM
    if not all(lo <= v <= hi for v in values):  # 0.0003: metres typed for millimetres
        raise MedsegError(f"{option} {text}: a pixel size is in mm, {lo:g} to {hi:g} (e.g. 0.3 for a 0.3 mm pixel; "
                          "0.0003 would be metres)")
    return (values[0], values[-1])


def spacing_source(vol: Volume) -> str | None:
    """Where ``vol``'s pixel spacing came from, as reports say it (``inputs.spacing_from``):
    ``--pixel-spacing`` (given by the user), ``file``, ``file (segment --pixel-spacing)`` (labels
    medseg wrote with a given one: their sidecar says so), or None (none recorded)."""
    if vol.meta.get("spacing_from") == GIVEN_SPACING:
        return GIVEN_SPACING
    if not vol.spacing_known:
        return None
    from . import read_sidecar

    prov = (read_sidecar(vol.meta["path"]) or {}).get("provenance") if vol.meta.get("path") else None
    return f"file (segment {GIVEN_SPACING})" if isinstance(prov, dict) and prov.get("spacing_from") == GIVEN_SPACING else "file"


def spacing_facts(vol: Volume) -> dict[str, Any]:
    """For a provenance sidecar: ``spacing_from`` and ``pixel_spacing_mm`` [row, column] of an
    image whose pixel spacing the user gave (:func:`with_pixel_spacing`); {} for any other."""
    if vol.meta.get("spacing_from") != GIVEN_SPACING:
        return {}
    return {"spacing_from": GIVEN_SPACING, "pixel_spacing_mm": [round(v, 6) for v in vol.spacing[1:]]}


def affine_from_spacing(spacing_zyx: tuple[float, float, float], origin_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """A diagonal RAS affine for spacing (dz, dy, dx) mm: handy for phantoms and tests."""
    dz, dy, dx = spacing_zyx
    aff = np.diag([dx, dy, dz, 1.0]).astype(np.float64)
    aff[:3, 3] = origin_xyz
    return aff

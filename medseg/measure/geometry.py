"""Stack geometry for measurements: slice positions, slice weights, in-plane millimetres.

Conventions (see docs/measurement.md):

* Label arrays are ``(Z, Y, X)`` (one phase) or ``(T, Z, Y, X)`` (cine), as in
  :class:`medseg.io.volume.Volume`; ``Z`` is the short-axis slice axis.
* The affine maps a voxel index ``(x, y, z) = (col, row, slice)`` to world RAS mm.
* The slice normal ``n`` is the unit normal of the slice plane, oriented so that slice
  positions increase with the slice index. Slice positions are the slice centres projected
  on ``n`` (mm); the through-plane weight of slice ``i`` is the centre-to-centre distance
  ``(z[i+1] - z[i-1]) / 2`` (end slices: the nearest gap), never a slice-thickness tag.
* In-plane points are expressed in an orthonormal basis ``(e1, e2)`` of the slice plane with
  ``e1 x e2 = n``; :attr:`StackGeometry.inplane` maps ``(row, col)`` offsets to ``(u, v)`` mm,
  which honours anisotropic and sheared in-plane spacing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GeometryError, MedsegError


class MeasurementError(MedsegError):
    """Labels cannot be measured (empty, single slice, non-integer values, wrong shape)."""


@dataclass(frozen=True)
class StackGeometry:
    """Geometry of one ``(Z, Y, X)`` short-axis stack.

    Attributes:
        affine: (4, 4) voxel (x, y, z) -> world RAS mm.
        shape: (Z, Y, X).
        normal: (3,) unit slice normal; positions increase with slice index along it.
        positions_mm: (Z,) slice-centre positions along ``normal`` (mm).
        weights_mm: (Z,) through-plane extent assigned to each slice (mm).
        pixel_area_mm2: in-plane pixel area (mm^2).
        inplane: (2, 2) matrix mapping (row, col) index offsets to (u, v) mm in the
            orthonormal plane basis (e1, e2), e1 x e2 = normal.
        spacing_mm: (dz, dy, dx) column norms of the affine (mm), as reported.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    normal: np.ndarray
    positions_mm: np.ndarray
    weights_mm: np.ndarray
    pixel_area_mm2: float
    inplane: np.ndarray
    spacing_mm: tuple[float, float, float]

    @property
    def n_slices(self) -> int:
        return int(self.shape[0])

    @property
    def slice_volumes_ml(self) -> np.ndarray:
        """(Z,) volume of one voxel of each slice in mL (pixel area x slice weight / 1000)."""
        return self.pixel_area_mm2 * self.weights_mm / 1000.0

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """(dy, dx) in-plane pixel size (mm)."""
        return (float(self.spacing_mm[1]), float(self.spacing_mm[2]))

    def scaled(self, k: float) -> StackGeometry:
        """The same stack with every length multiplied by ``k`` (for tests and unit changes)."""
        aff = self.affine.copy()
        aff[:3, :3] *= k
        return stack_geometry(aff, self.shape, self.positions_mm * k)

    def to_inplane_mm(self, rc: np.ndarray) -> np.ndarray:
        """(N, 2) (row, col) pixel coordinates -> (N, 2) (u, v) mm in the slice plane."""
        return np.asarray(rc, dtype=np.float64) @ self.inplane.T

    def to_index(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) (u, v) mm -> (N, 2) fractional (row, col) indices."""
        return np.asarray(uv, dtype=np.float64) @ np.linalg.inv(self.inplane).T


def stack_geometry(
    affine: np.ndarray,
    shape: Sequence[int],
    slice_positions_mm: Sequence[float] | None = None,
) -> StackGeometry:
    """Build the :class:`StackGeometry` of a ``(Z, Y, X)`` grid.

    Args:
        affine: (4, 4) voxel (x, y, z) -> world RAS mm.
        shape: (Z, Y, X) grid shape.
        slice_positions_mm: optional (Z,) slice-centre positions along the stack (mm), e.g.
            from DICOM ImagePositionPatient when slices are unevenly spaced (a decreasing
            sequence is negated: only the gaps matter). Default: from the affine (uniform,
            centre-to-centre step = the affine's through-plane step).

    Raises:
        GeometryError: non-finite / singular affine, or positions that are not strictly
            monotonic or do not match the number of slices.
    """
    aff = _affine_array(affine)
    if aff.shape != (4, 4):
        raise GeometryError(f"affine must be a finite 4x4 matrix, got shape {aff.shape}")
    if not np.all(np.isfinite(aff)):
        raise GeometryError("affine holds NaN or infinite values; allowed: finite numbers")
    cols = aff[:3, :3]
    norms = np.linalg.norm(cols, axis=0)
    if np.any(norms <= 1e-6):
        raise GeometryError(f"voxel spacing is zero or missing (x, y, z = {', '.join(f'{float(v):.6g}' for v in norms)} mm)")
    from ..io.volume import check_voxel_size

    check_voxel_size(aff)  # sizes out of any image's range, axes not independent (scale free): as a Volume refuses them
    z_n, y_n, x_n = (int(s) for s in shape)
    cross = np.cross(cols[:, 0], cols[:, 1])
    pixel_area = float(np.linalg.norm(cross))
    normal = cross / pixel_area
    step = float(cols[:, 2] @ normal)
    if step < 0:
        normal, step = -normal, -step
    if slice_positions_mm is None:
        positions = float(aff[:3, 3] @ normal) + step * np.arange(z_n, dtype=np.float64)
    else:
        positions = _check_positions(slice_positions_mm, z_n)
    weights = slice_weights(positions, default_mm=step)
    e1 = cols[:, 0] / norms[0]
    e2 = np.cross(normal, e1)
    inplane = np.array([[e1 @ cols[:, 1], e1 @ cols[:, 0]], [e2 @ cols[:, 1], e2 @ cols[:, 0]]])
    return StackGeometry(
        affine=aff,
        shape=(z_n, y_n, x_n),
        normal=normal,
        positions_mm=positions,
        weights_mm=weights,
        pixel_area_mm2=pixel_area,
        inplane=inplane,
        spacing_mm=(float(norms[2]), float(norms[1]), float(norms[0])),
    )


def slice_weights(positions_mm: np.ndarray, default_mm: float) -> np.ndarray:
    """Through-plane weight (mm) of each slice from centre positions.

    Interior slice i: ``(z[i+1] - z[i-1]) / 2``; end slices: the nearest gap. A single slice
    gets ``default_mm`` (the affine's step).
    """
    z = np.abs(np.asarray(positions_mm, dtype=np.float64) - positions_mm[0])
    n = len(z)
    if n == 1:
        return np.array([abs(default_mm)])
    w = np.empty(n)
    w[1:-1] = (z[2:] - z[:-2]) / 2.0
    w[0] = z[1] - z[0]
    w[-1] = z[-1] - z[-2]
    return np.abs(w)


def _check_positions(positions: Sequence[float], n: int) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    if pos.shape != (n,) or not np.all(np.isfinite(pos)):
        raise GeometryError(f"slice_positions_mm must hold {n} finite values, got {pos.shape[0]}")
    d = np.diff(pos)
    if n > 1 and not (np.all(d > 0) or np.all(d < 0)):
        raise GeometryError("slice_positions_mm must be strictly increasing or decreasing")
    # Only differences matter (weights); the affine fixes the direction of the normal.
    return pos if n < 2 or d[0] > 0 else -pos


def as_label_array(labels: Any, ndim: int) -> np.ndarray:
    """Integer label array from an array or Volume; ``ndim`` 3 = (Z, Y, X), 4 = (T, Z, Y, X).

    A Volume (always 4-D) with one frame is accepted for ``ndim=3``. Float arrays must hold
    whole numbers. Raises :class:`MeasurementError` otherwise.
    """
    if isinstance(labels, (str, bytes, os.PathLike)):
        raise MeasurementError(f"labels must be a label array or a label Volume, got the path {os.fsdecode(labels)!r}: "
                               "read it with medseg.io.read_label_volume(path)")
    arr = np.asarray(getattr(labels, "array", labels))
    if ndim == 3 and arr.ndim == 4:
        if arr.shape[0] != 1:
            raise MeasurementError(f"expected one phase (Z, Y, X) but got {arr.shape[0]} frames; use measure_cine")
        arr = arr[0]
    if arr.ndim != ndim:
        want = "(Z, Y, X)" if ndim == 3 else "(T, Z, Y, X)"
        raise MeasurementError(f"labels must be {ndim}-D {want}, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int16)
    if not np.issubdtype(arr.dtype, np.number):
        raise MeasurementError(f"labels have a non-numeric type {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)):
            raise MeasurementError("labels contain NaN or infinite values")
        rounded = np.rint(arr)
        if not np.allclose(arr, rounded, atol=1e-3):
            raise MeasurementError("labels must be whole numbers (got fractional values; is this an image, not labels?)")
        arr = rounded.astype(np.int32)
    return arr


def _affine_array(affine: Any) -> np.ndarray:
    """``affine`` as a float64 array; GeometryError for a string or ragged lists (numpy's
    ValueError named no affine)."""
    try:
        return np.asarray(affine, dtype=np.float64)
    except (TypeError, ValueError):
        raise GeometryError(f"affine must be a 4x4 matrix of numbers, got {type(affine).__name__} {str(affine)[:60]!r}") from None


def resolve_affine(labels: Any, affine: np.ndarray | None) -> np.ndarray:
    """The affine of ``labels`` (a Volume) or the explicit ``affine``; refuses unknown spacing."""
    if affine is not None:
        return _affine_array(getattr(affine, "affine", affine))
    if hasattr(labels, "affine"):
        if getattr(labels, "spacing_known", True) is False:
            raise GeometryError("labels have no physical pixel spacing; volumes, mass and thickness need millimetres")
        return np.asarray(labels.affine, dtype=np.float64)
    raise GeometryError("an affine (or a Volume) is needed to measure in millimetres")


@dataclass(frozen=True)
class BaseEnd:
    """Which end of the stack is the LV base (the end nearer the atria).

    Attributes:
        base_at_high_index: True when the base is at the high slice indices.
        base_to_apex: (3,) unit vector along the stack normal pointing from base to apex.
        method: the cue that decided: "atria", "apex_cap", "cross_section" or "none".
        confident: False when the cues were missing or disagreed (a flag is raised).
    """

    base_at_high_index: bool
    base_to_apex: np.ndarray
    method: str
    confident: bool

    def order_from_base(self, n_slices: int) -> np.ndarray:
        """Slice indices ordered from the base to the apex."""
        idx = np.arange(n_slices)
        return idx[::-1] if self.base_at_high_index else idx


BASE_ENDS = ("low_index", "high_index")


def given_base(end: str, geom: StackGeometry) -> BaseEnd:
    """A user-given base end: "low_index" (slice 0 is basal) or "high_index"."""
    if end not in BASE_ENDS:
        raise MeasurementError(f"unknown base end {end!r}; allowed: {', '.join(BASE_ENDS)}")
    return _base(end == "high_index", geom, "given", True)


def detect_base(masks: dict[str, np.ndarray], geom: StackGeometry) -> BaseEnd:
    """Decide which end of a stack is the base, from anatomy only.

    ``masks`` are (Z, ...) boolean arrays: one phase (Z, Y, X), or several phases stacked on
    a trailing axis (Z, Y, X, T) so that a whole study votes once (the base is a property of
    the stack, not of a phase).

    Cues, strongest first: (1) atria (``la``/``ra`` voxels): the base is the LV end nearer
    their centroid; (2) apex cap: slices with myocardium but no cavity at exactly one end
    mark the apex; (3) cross-section: the LV + RV blood-pool area is concentrated towards the
    base, so the base is the end on the side of the area centroid. Cues 2 and 3 must agree to
    be ``confident``; a world-z sign is never used.
    """
    pos = geom.positions_mm
    z_n = geom.n_slices
    lv = _slice_counts(masks.get("lv"), z_n)
    myo = _slice_counts(masks.get("myo"), z_n)
    heart = np.flatnonzero((lv + myo) > 0)
    if heart.size == 0:
        return _base(True, geom, "none", False)
    lo, hi = pos[heart[0]], pos[heart[-1]]
    atria = _slice_counts(masks.get("la"), z_n) + _slice_counts(masks.get("ra"), z_n)
    if atria.sum() > 0:
        c = float((atria * pos).sum() / atria.sum())
        return _base(abs(c - hi) < abs(c - lo), geom, "atria", True)
    cap_vote = _apex_cap_vote(lv, myo, heart)
    area = (lv + _slice_counts(masks.get("rv"), z_n)).astype(np.float64)
    area_vote = 0
    if area.sum() > 0 and hi > lo:
        offset = ((area * pos).sum() / area.sum() - (lo + hi) / 2) / (hi - lo)
        area_vote = int(np.sign(offset)) if abs(offset) > 0.01 else 0
    if cap_vote and area_vote:
        return _base(cap_vote > 0 if cap_vote == area_vote else area_vote > 0, geom,
                     "apex_cap" if cap_vote == area_vote else "cross_section", cap_vote == area_vote)
    if cap_vote:
        return _base(cap_vote > 0, geom, "apex_cap", True)
    if area_vote:
        return _base(area_vote > 0, geom, "cross_section", True)
    return _base(False, geom, "none", False)


def _slice_counts(mask: np.ndarray | None, z_n: int) -> np.ndarray:
    if mask is None:
        return np.zeros(z_n, dtype=np.int64)
    return np.count_nonzero(mask.reshape(z_n, -1), axis=1)


def _apex_cap_vote(lv: np.ndarray, myo: np.ndarray, heart: np.ndarray) -> int:
    """+1: base at the high end (cap at the low end); -1: the reverse; 0: no clear cap."""
    cap = (myo > 0) & (lv == 0)
    low_cap, high_cap = bool(cap[heart[0]]), bool(cap[heart[-1]])
    if low_cap == high_cap or not (lv > 0).any():
        return 0
    return 1 if low_cap else -1


def _base(high: bool, geom: StackGeometry, method: str, confident: bool) -> BaseEnd:
    b2a = -geom.normal if high else geom.normal
    return BaseEnd(base_at_high_index=high, base_to_apex=b2a.copy(), method=method, confident=confident)

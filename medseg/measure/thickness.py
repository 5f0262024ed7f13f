"""Per-slice wall thickness on sub-pixel contours, and RV insertion points.

Method (docs/measurement.md): the endocardial contour is the outer boundary of the
(hole-filled) LV cavity, the epicardial contour the outer boundary of cavity + myocardium.
Both are iso-0.5 contours (skimage.measure.find_contours) of the mask lightly smoothed with a
Gaussian of 1 pixel (removes the staircase bias of the nearest-point distance), mapped to millimetres through the affine (anisotropic and sheared
pixels honoured), and the endocardium is resampled at a uniform arc-length step (0.2 pixel) so that plain
means are arc-length means. The thickness at an endocardial point is its distance to the
nearest epicardial point. Centroid rays are not used (biased on elliptical LVs).

Angles are in degrees in the slice basis (e1, e2) of :class:`StackGeometry`,
counter-clockwise about the slice normal, measured around the cavity centroid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .geometry import StackGeometry

SMOOTH_SIGMA_PX = 1.0
ENDO_STEP_PX = 0.2  # endocardial sample step, in pixels (scale-invariant)
EPI_STEP_PX = 0.03  # epicardial resampling for the nearest-point search, in pixels
CONTACT_FALLBACK_MM = 3.0  # contact distance when the RV never lies within one pixel of the LV


@dataclass(frozen=True)
class SliceThickness:
    """Thickness samples of one short-axis slice.

    Attributes:
        slice: slice index.
        centre_uv: (2,) cavity centroid (mm, slice basis).
        angles_deg: (N,) angle of each endocardial sample about the centroid.
        thickness_mm: (N,) distance to the nearest epicardial point (mm).
        valid: (N,) True where myocardium lies outside the sample (thickness >= half a pixel).
        epi_uv: (M, 2) epicardial contour (mm), used for the RV contact arc.
    """

    slice: int
    centre_uv: np.ndarray
    angles_deg: np.ndarray
    thickness_mm: np.ndarray
    valid: np.ndarray
    epi_uv: np.ndarray


def outer_contour_mm(mask: np.ndarray, geom: StackGeometry, step_mm: float | None = None) -> np.ndarray:
    """Closed outer sub-pixel contour (N, 2) in (u, v) mm of the largest part of a 2-D mask.

    Holes are filled first. With ``step_mm`` the contour is resampled at that arc-length step.
    Empty mask -> (0, 2) array.
    """
    from skimage.measure import find_contours

    if not mask.any():
        return np.zeros((0, 2))
    lab, n = ndimage.label(mask)
    if n > 1:
        lab = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    filled = ndimage.binary_fill_holes(lab > 0)
    pad = 3
    img = np.pad(filled.astype(np.float64), pad)
    img = ndimage.gaussian_filter(img, SMOOTH_SIGMA_PX, mode="constant")
    contours = find_contours(img, 0.5)
    if not contours:
        return np.zeros((0, 2))
    rc = max(contours, key=len) - pad
    uv = geom.to_inplane_mm(rc)
    if step_mm is not None:
        uv = resample_closed(uv, step_mm)
    return uv


def resample_closed(poly: np.ndarray, step_mm: float) -> np.ndarray:
    """Resample a closed polyline (N, 2) at a uniform arc-length step (mm)."""
    closed = np.vstack([poly, poly[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    if total <= 0:
        return poly[:1].copy()
    n = max(int(np.ceil(total / step_mm)), 8)
    t = np.linspace(0.0, total, n, endpoint=False)
    return np.stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])], axis=1)


def slice_thickness(cavity: np.ndarray, myo: np.ndarray, geom: StackGeometry, z: int) -> SliceThickness | None:
    """Wall thickness samples of one slice; None when cavity or myocardium is empty.

    Args:
        cavity, myo: (Y, X) boolean masks of slice ``z``.
    """
    if not cavity.any() or not myo.any():
        return None
    px = min(geom.pixel_mm)
    endo = outer_contour_mm(cavity, geom, step_mm=ENDO_STEP_PX * px)
    epi = outer_contour_mm(cavity | myo, geom)
    if len(endo) < 3 or len(epi) < 3:
        return None
    dense_epi = resample_closed(epi, EPI_STEP_PX * px)
    dist, _ = cKDTree(dense_epi).query(endo)
    centre = geom.to_inplane_mm(np.argwhere(ndimage.binary_fill_holes(cavity)).astype(np.float64)).mean(axis=0)
    d = endo - centre
    angles = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 360.0
    valid = dist >= 0.5 * min(geom.pixel_mm)
    return SliceThickness(slice=z, centre_uv=centre, angles_deg=angles, thickness_mm=dist, valid=valid, epi_uv=epi)


def rv_contact_arc(st: SliceThickness, rv: np.ndarray, geom: StackGeometry, contact_mm: float | None = None) -> tuple[float, float] | None:
    """The RV-LV epicardial contact arc of one slice as (start_deg, length_deg).

    The arc runs counter-clockwise (about the slice normal) from ``start_deg``; its two ends
    are the RV insertion points. Epicardial points whose distance to the RV blood pool is
    <= ``contact_mm`` are in contact (default: one pixel, i.e. labels that touch; if that
    finds no arc of 20 degrees, 3 mm, for label sets that leave a gap); the longest circular
    run of contact (1-degree bins, gaps under 6 degrees closed) is the arc. None when the RV
    does not touch the LV.
    """
    if not rv.any() or len(st.epi_uv) == 0:
        return None
    dist = ndimage.distance_transform_edt(~rv, sampling=geom.pixel_mm)
    d = ndimage.map_coordinates(dist, geom.to_index(st.epi_uv).T, order=1, mode="nearest")
    if contact_mm is not None:
        return _arc(st, _within(d, contact_mm))
    arc = _arc(st, _within(d, max(geom.pixel_mm)))
    if arc is None or arc[1] < 20.0:
        wide = _arc(st, _within(d, max(CONTACT_FALLBACK_MM, 2.0 * max(geom.pixel_mm))))
        arc = wide if wide is not None else arc
    return arc


#: relative slack of the contact distance: epicardial points on the pixel grid lie at exactly one
#: pixel from the RV, which a float32 affine's pixel size (NIfTI's) puts 1e-7 beyond it; the
#: septum of one Sunnybrook slice read 73 degrees from the DICOM and 29 from the NIfTI labels
CONTACT_RTOL = 1e-4


def _within(d: np.ndarray, limit_mm: float) -> np.ndarray:
    return d <= limit_mm * (1.0 + CONTACT_RTOL)


def _arc(st: SliceThickness, contact: np.ndarray) -> tuple[float, float] | None:
    """Longest circular contact run (start_deg, length_deg) of the epicardial points."""
    rel = st.epi_uv - st.centre_uv
    ang = np.degrees(np.arctan2(rel[:, 1], rel[:, 0])) % 360.0
    bins = np.floor(ang).astype(int) % 360
    touch = np.zeros(360, dtype=bool)
    seen = np.zeros(360, dtype=bool)
    np.logical_or.at(touch, bins, contact)
    seen[bins] = True
    if not touch.any():
        return None
    touch = _fill_unseen(touch, seen)
    touch = _close_circular(touch, 6)
    if touch.all():
        return None
    start, length = _longest_circular_run(touch)
    return float(start), float(length)


def _fill_unseen(touch: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Bins with no contour point take the value of the nearest bin that has one."""
    if seen.all():
        return touch
    idx = np.flatnonzero(seen)
    out = touch.copy()
    for b in np.flatnonzero(~seen):
        circ = np.minimum(np.abs(idx - b), 360 - np.abs(idx - b))
        out[b] = touch[idx[np.argmin(circ)]]
    return out


def _close_circular(x: np.ndarray, gap: int) -> np.ndarray:
    """Binary closing on a circular 1-D array (fills False runs shorter than ``gap``)."""
    tiled = np.concatenate([x, x, x])
    closed = ndimage.binary_closing(tiled, structure=np.ones(gap, dtype=bool))
    return closed[len(x):2 * len(x)] | x


def _longest_circular_run(x: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in a circular boolean array (not all True)."""
    n = len(x)
    shift = int(np.flatnonzero(~x)[0])
    rolled = np.roll(x, -shift)
    best = (0, 0)
    run_start, run_len = 0, 0
    for i, v in enumerate(np.append(rolled, False)):
        if v:
            if run_len == 0:
                run_start = i
            run_len += 1
        else:
            if run_len > best[1]:
                best = (run_start, run_len)
            run_len = 0
    return (best[0] + shift) % n, best[1]

"""Analytic phantoms for the measurement tests, defined in world millimetres and sampled at
voxel centres through an affine (so any spacing, rotation, permutation or flip can be tested)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def affine(spacing_zyx: tuple[float, float, float], rotation: np.ndarray | None = None,
           origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 affine: columns (x, y, z) = rotation @ diag(dx, dy, dz); origin is voxel (0, 0, 0)."""
    dz, dy, dx = spacing_zyx
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([dx, dy, dz])
    aff[:3, 3] = origin
    return aff


def centred_affine(spacing_zyx, shape_zyx, rotation=None, shift_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Affine whose grid centre maps to world ``shift_mm``."""
    aff = affine(spacing_zyx, rotation)
    centre_idx = (np.array(shape_zyx[::-1], dtype=np.float64) - 1) / 2.0
    aff[:3, 3] = np.asarray(shift_mm) - aff[:3, :3] @ centre_idx
    return aff


def world_grid(aff: np.ndarray, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """(Z, Y, X, 3) world coordinates of voxel centres."""
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape_zyx], indexing="ij")
    ijk = np.stack([x, y, z], axis=-1)
    return ijk @ aff[:3, :3].T + aff[:3, 3]


def rasterise(fn: Callable[[np.ndarray], np.ndarray], aff: np.ndarray, shape_zyx) -> np.ndarray:
    """Label array (Z, Y, X) int16 from ``fn(world (..., 3)) -> labels``."""
    return fn(world_grid(aff, shape_zyx)).astype(np.int16)


def ellipsoid(semi_axes_xyz, centre=(0.0, 0.0, 0.0), label: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    a = np.asarray(semi_axes_xyz, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64)

    def fn(p: np.ndarray) -> np.ndarray:
        return np.where((((p - c) / a) ** 2).sum(axis=-1) <= 1.0, label, 0)
    return fn


def ellipsoid_volume_ml(a: float, b: float, c: float) -> float:
    return 4.0 / 3.0 * np.pi * a * b * c / 1000.0


def rotation_about(axis: np.ndarray, deg: float) -> np.ndarray:
    """Right-handed rotation matrix about ``axis`` by ``deg`` degrees (Rodrigues)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    t = np.radians(deg)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


class LVPhantom:
    """Cylindrical LV with angle-dependent wall, an apex cap and an RV crescent on the septum.

    Anatomical frame: ``b`` (apex -> base), septum direction ``s``; anterior = b x s.
    theta = angle about b from s (degrees, counter-clockwise about b). The RV touches the
    epicardium for |theta| <= septum_half_deg, so the anterior insertion point is at
    theta = +septum_half_deg and psi (from the anterior IP towards the septum) = half - theta.
    Labels: lv=1, myo=2, rv=3.
    """

    def __init__(self, b=(0.0, 0.0, 1.0), s=(1.0, 0.0, 0.0), centre=(0.0, 0.0, 0.0), r_cav=22.0,
                 thickness: Callable[[np.ndarray], np.ndarray] | None = None, base_h=30.0, apex_h=-30.0,
                 cap_mm=10.0, septum_half_deg=60.0, rv_depth_mm=18.0, rv_apex_h=-10.0):
        self.b = np.asarray(b, float) / np.linalg.norm(b)
        s = np.asarray(s, float)
        s = s - (s @ self.b) * self.b
        self.s = s / np.linalg.norm(s)
        self.a = np.cross(self.b, self.s)
        self.c = np.asarray(centre, float)
        self.r_cav, self.base_h, self.apex_h, self.cap = r_cav, base_h, apex_h, cap_mm
        self.T = thickness if thickness is not None else (lambda th: np.full_like(th, 8.0))
        self.half, self.rv_depth, self.rv_apex_h = septum_half_deg, rv_depth_mm, rv_apex_h

    def coords(self, p: np.ndarray):
        d = p - self.c
        h = d @ self.b
        x, y = d @ self.s, d @ self.a
        return h, np.hypot(x, y), np.degrees(np.arctan2(y, x))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        h, r, th = self.coords(p)
        t = self.T(th)
        out = np.zeros(h.shape, dtype=np.int16)
        in_len = (h <= self.base_h) & (h >= self.apex_h)
        out[in_len & (r <= self.r_cav + t)] = 2
        out[in_len & (r <= self.r_cav)] = 1
        cap = (h < self.apex_h) & (h >= self.apex_h - self.cap) & (r <= self.r_cav + t)
        out[cap] = 2
        rv = (h <= self.base_h) & (h >= self.rv_apex_h) & (np.abs(th) <= self.half) & (r > self.r_cav + t) \
            & (r <= self.r_cav + t + self.rv_depth)
        out[rv] = 3
        return out


def echo_view(half_width, length, with_la, px=0.3, tilt_deg=0.0, shape=None, wall_mm=0.0):
    """A4C/A2C label image: LV half-ellipse (1) with its base on a pixel boundary; LA (3) above;
    with ``wall_mm`` a myocardium (2) of that thickness around the LV, open at the base.

    The long axis points down the image, optionally tilted by ``tilt_deg``; ``shape`` (h, w)
    fixes the canvas (frames of one clip), else it fits the ventricle.
    """
    h, w = shape or (int((length + 50) / px), int((2 * half_width + 60) / px))
    r = (np.arange(h) + 0.5) * px
    x = (np.arange(w) + 0.5) * px - w * px / 2 + 0.13
    rr, xx = np.meshgrid(r, x, indexing="ij")
    t = math.radians(tilt_deg)
    s = (rr - 20.1) * math.cos(t) + xx * math.sin(t)  # along the axis, from the base plane (20.1 = 67 px)
    q = -(rr - 20.1) * math.sin(t) + xx * math.cos(t)
    lab = np.zeros((h, w), np.int16)
    if wall_mm:
        lab[(s >= 0) & ((q / (half_width + wall_mm)) ** 2 + (s / (length + wall_mm)) ** 2 <= 1)] = 2
    lab[(s >= 0) & ((q / half_width) ** 2 + (s / length) ** 2 <= 1)] = 1
    if with_la:
        lab[(s < 0) & ((q / (0.9 * half_width)) ** 2 + (s / 15.0) ** 2 <= 1)] = 3
    return lab


def sax_section(r_cavity_mm=22.0, wall_mm=8.0, px=1.0, size=120):
    """One short-axis section: LV disc (1) inside a myocardium ring (2), RV crescent (3)."""
    yy, xx = (np.mgrid[:size, :size] + 0.5 - size / 2) * px
    r = np.hypot(yy, xx)
    lab = np.zeros((size, size), np.int16)
    lab[(np.hypot(yy, xx + r_cavity_mm + wall_mm) <= r_cavity_mm) & (r > r_cavity_mm + wall_mm)] = 3
    lab[r <= r_cavity_mm + wall_mm] = 2
    lab[r <= r_cavity_mm] = 1
    return lab

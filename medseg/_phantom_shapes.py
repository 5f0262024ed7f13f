"""Building blocks for :mod:`medseg.phantoms` (private).

Tissue classes and their contrast per modality, smooth random fields, MR (Rician) and
ultrasound (Rayleigh speckle) noise, the cardiac cycle, closed-form volumes and areas of
truncated ellipsoids, and the ellipsoidal LV model shared by every phantom. Pure numpy/scipy,
no side effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Tissue classes painted before the contrast lookup (values index the contrast tables)."""

    AIR = 0
    SOFT = 1  # chest wall, mediastinum, skeletal muscle
    LUNG = 2
    FAT = 3
    MYO = 4  # LV myocardium
    WALL = 5  # RV free wall, atrial walls, septa (unlabelled muscle)
    BLOOD = 6  # left heart and aorta
    BLOOD_R = 7  # right heart, pulmonary artery, venae cavae
    PAPILLARY = 8
    BONE = 9
    LIVER = 10
    PERICARDIUM = 11


# (low, high) intensity per tissue, drawn uniformly per phantom. MR: SSFP relative to blood = 1;
# US: echogenicity before speckle and log compression; CT: Hounsfield units.
_CONTRAST: dict[str, tuple[tuple[float, float], ...]] = {
    "MR": ((0.0, 0.0), (0.25, 0.42), (0.02, 0.07), (0.70, 0.95), (0.20, 0.32), (0.22, 0.35),
           (0.95, 1.05), (0.85, 1.0), (0.22, 0.34), (0.30, 0.55), (0.22, 0.35), (0.03, 0.10)),
    "US": ((0.0, 0.0), (0.035, 0.09), (0.008, 0.02), (0.05, 0.14), (0.10, 0.25), (0.09, 0.22),
           (0.002, 0.006), (0.002, 0.006), (0.10, 0.22), (0.6, 1.0), (0.05, 0.10), (0.2, 0.6)),
    "CT": ((-1000, -1000), (35, 60), (-860, -780), (-110, -80), (105, 145), (95, 135),
           (360, 440), (310, 400), (110, 145), (620, 780), (50, 70), (20, 40)),
}


def draw_contrast(rng: np.random.Generator, modality: str) -> np.ndarray:
    """(len(Tissue),) float32 intensity per tissue class for ``modality`` ("MR", "US", "CT")."""
    table = np.asarray(_CONTRAST[modality], dtype=np.float64)
    return rng.uniform(table[:, 0], table[:, 1]).astype(np.float32)


# -- random fields and noise ---------------------------------------------------------------
def _rbf_matrix(n: int, nodes: int) -> np.ndarray:
    """(n, nodes) row-normalised Gaussian weights of ``nodes`` centres spread over 0..n-1."""
    if nodes <= 1:
        return np.ones((n, 1), dtype=np.float32)
    step = (n - 1) / (nodes - 1) if n > 1 else 1.0
    centres = np.linspace(-0.5 * step, n - 1 + 0.5 * step, nodes)
    d = (np.arange(n)[:, None] - centres[None, :]) / (0.8 * step * (nodes - 1) / nodes + 1e-6)
    w = np.exp(-0.5 * d * d)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], nodes: tuple[int, ...]) -> np.ndarray:
    """Smooth random field of ``shape`` in [-1, 1] (float32) from a coarse Gaussian grid.

    ``nodes`` gives the number of random control values per axis: 1 = constant along that
    axis, 3-4 = a slow bias-like variation, 10+ = tissue texture.
    """
    out = rng.standard_normal(tuple(nodes)).astype(np.float32)
    for n, k in zip(shape, nodes):  # each tensordot consumes axis 0 and appends the new one
        out = np.tensordot(out, _rbf_matrix(n, k), axes=([0], [1]))
    out -= out.mean()
    return out / (np.abs(out).max() + 1e-6)


def rician(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of ``image`` plus complex Gaussian noise of std ``sigma`` (Rician), float32."""
    n1 = rng.standard_normal(image.shape, dtype=np.float32)
    n2 = rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt((image + sigma * n1) ** 2 + (sigma * n2) ** 2)


def speckle(rng: np.random.Generator, shape: tuple[int, ...], grain_px: tuple[float, float]) -> np.ndarray:
    """Fully developed speckle: Rayleigh-distributed multiplicative noise with mean 1.

    The envelope of a complex Gaussian field low-passed by ``grain_px`` (axial, lateral)
    pixels over the last two axes of ``shape``.
    """
    from scipy.ndimage import gaussian_filter

    sig = (0.0,) * (len(shape) - 2) + tuple(grain_px)
    re = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sig)
    im = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sig)
    env = np.hypot(re, im)
    return env / (env.mean() + 1e-12)


def blur_last2(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur over the last two (Y, X) axes only (in-plane partial-volume effect)."""
    from scipy.ndimage import gaussian_filter

    if sigma_px <= 0:
        return image
    return gaussian_filter(image, (0.0,) * (image.ndim - 2) + (sigma_px, sigma_px))


# -- cardiac cycle -------------------------------------------------------------------------
def cardiac_cycle(n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """Contraction state per frame: 0 at end-diastole (ED), 1 at end-systole (ES).

    Returns ``(v, ed, es)``: v (n_frames,) float in [0, 1]; ED and ES at seeded frames.
    Systole is a cosine ramp over ~35% of the cycle; diastole has rapid filling, diastasis
    and an atrial kick, so every frame other than ED (ES) has strictly less (more) contraction.
    """
    if n_frames == 1:
        return np.zeros(1), 0, 0
    ed = int(rng.integers(n_frames))
    if n_frames == 2:
        v = np.zeros(2)
        v[1 - ed] = 1.0
        return v, ed, 1 - ed
    n_sys = int(np.clip(round(n_frames * rng.uniform(0.3, 0.4)), 1, n_frames - 1))
    k = (np.arange(n_frames) - ed) % n_frames
    tau = (k - n_sys) / (n_frames - n_sys)
    fill = (0.35 * (1 - np.cos(np.pi * np.clip(tau / 0.4, 0, 1))) + 0.1 * np.clip((tau - 0.4) / 0.3, 0, 1)
            + 0.2 * (1 - np.cos(0.5 * np.pi * np.clip((tau - 0.7) / 0.3, 0, 1))))
    v = np.where(k <= n_sys, 0.5 * (1 - np.cos(np.pi * k / n_sys)), 1.0 - fill)
    return v, ed, (ed + n_sys) % n_frames


# -- closed-form geometry ------------------------------------------------------------------
def ellipsoid_slab_volume(a, b, c, zc, z_lo, z_hi):
    """Volume (mm^3) of ellipsoid (semi-axes a, b in-plane, c along z, centre z=zc) between
    the planes z_lo < z < z_hi. Broadcasts over arrays."""
    u1 = np.clip((np.asarray(z_lo, float) - zc) / c, -1, 1)
    u2 = np.clip((np.asarray(z_hi, float) - zc) / c, -1, 1)
    return np.pi * a * b * c * np.maximum((u2 - u1) - (u2 ** 3 - u1 ** 3) / 3, 0.0)


def ellipse_segment_area(a, c, zc, s_lo, s_hi):
    """Area (mm^2) of the ellipse (semi-axes a across, c along s, centre s=zc) between the
    lines s_lo < s < s_hi. Broadcasts over arrays."""
    u1 = np.clip((np.asarray(s_lo, float) - zc) / c, -1, 1)
    u2 = np.clip((np.asarray(s_hi, float) - zc) / c, -1, 1)
    prim = lambda u: u * np.sqrt(1 - u * u) + np.arcsin(u)  # noqa: E731
    return a * c * np.maximum(prim(u2) - prim(u1), 0.0)


@dataclass(frozen=True)
class LVShape:
    """End-diastolic LV: a truncated ellipsoid cavity inside a myocardial shell (mm).

    The base (mitral) plane is z = 0 and the apex points to +z. The cavity has in-plane
    semi-axes ``a`` (lateral-septal) and ``b`` (anterior-inferior) and long semi-axis ``c``,
    centred at z0 = f * c, so the base is slightly narrower than the widest section. The
    epicardium has semi-axes (a + T, b + T, c + apex_ratio * T) about the same centre.
    Contraction keeps the myocardial volume constant, so the wall thickens in systole.
    """

    a: float
    b: float
    c: float
    f: float
    wall: float
    apex_ratio: float
    ef: float
    long_shortening: float

    def phase(self, v: np.ndarray) -> dict[str, np.ndarray]:
        """Geometry at contraction states ``v`` (0 = ED, 1 = ES): arrays a, b, c, z0, T, Ta (mm)."""
        v = np.atleast_1d(np.asarray(v, dtype=np.float64))
        s_l = 1.0 - v * self.long_shortening
        s_r = np.sqrt((1.0 - v * self.ef) / s_l)
        a, b, c = self.a * s_r, self.b * s_r, self.c * s_l
        z0 = self.f * c
        cav = ellipsoid_slab_volume(a, b, c, z0, 0.0, np.inf)
        target = self.myo_volume_mm3()
        lo, hi = np.zeros_like(v), np.full_like(v, 4.0 * self.wall + 10.0)
        for _ in range(48):  # bisection on the wall thickness that conserves myocardium
            t = 0.5 * (lo + hi)
            epi = ellipsoid_slab_volume(a + t, b + t, c + self.apex_ratio * t, z0, 0.0, np.inf)
            big = epi - cav > target
            hi, lo = np.where(big, t, hi), np.where(big, lo, t)
        t = 0.5 * (lo + hi)
        return {"a": a, "b": b, "c": c, "z0": z0, "T": t, "Ta": self.apex_ratio * t}

    def myo_volume_mm3(self) -> float:
        z0 = self.f * self.c
        epi = ellipsoid_slab_volume(self.a + self.wall, self.b + self.wall, self.c + self.apex_ratio * self.wall, z0, 0.0, np.inf)
        return float(epi - ellipsoid_slab_volume(self.a, self.b, self.c, z0, 0.0, np.inf))

    def volumes_ml(self, v: np.ndarray, z_lo: float = 0.0, z_hi: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
        """Analytic (cavity, myocardium) volumes in mL at states ``v`` between z_lo and z_hi."""
        p = self.phase(v)
        cav = ellipsoid_slab_volume(p["a"], p["b"], p["c"], p["z0"], max(z_lo, 0.0), z_hi)
        epi = ellipsoid_slab_volume(p["a"] + p["T"], p["b"] + p["T"], p["c"] + p["Ta"], p["z0"], max(z_lo, 0.0), z_hi)
        return cav / 1000.0, (epi - cav) / 1000.0


def draw_lv(rng: np.random.Generator, ef: float, scale: float = 1.0) -> LVShape:
    """A plausible adult LV (EDV ~120-170 mL at scale 1) with ejection fraction ``ef``."""
    a = rng.uniform(23.5, 27.5)
    return LVShape(
        a=scale * a,
        b=scale * a * rng.uniform(1.0, 1.08),
        c=scale * rng.uniform(62.0, 72.0),
        f=rng.uniform(0.2, 0.3),
        wall=scale * rng.uniform(7.5, 9.5),
        apex_ratio=rng.uniform(0.65, 0.8),
        ef=float(ef),
        long_shortening=rng.uniform(0.12, 0.18) * min(1.0, ef / 0.6),
    )


# -- implicit shapes -----------------------------------------------------------------------
def ellipse_q(x: np.ndarray, y: np.ndarray, cx, cy, rx, ry) -> np.ndarray:
    """((x - cx) / rx)^2 + ((y - cy) / ry)^2: <= 1 inside the ellipse. Broadcasts."""
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def capsule_dist2(p: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Squared distance (mm^2) from points ``p`` (..., 3) to the segment p0-p1 (a tube of
    radius r is ``capsule_dist2 <= r**2``)."""
    d = (p1 - p0).astype(p.dtype)
    v = p - p0.astype(p.dtype)
    t = np.clip((v @ d) / float(d @ d), 0.0, 1.0)
    v -= t[..., None] * d
    return np.einsum("...i,...i->...", v, v)


def paint(tissue: np.ndarray, labels: np.ndarray, mask: np.ndarray, cls: int, lab: int | None = None) -> None:
    """In place: set ``tissue`` to ``cls`` (and ``labels`` to ``lab``; None clears them) where
    ``mask`` (broadcastable to their shape) is True."""
    np.copyto(tissue, np.uint8(cls), where=mask)
    np.copyto(labels, np.uint8(0 if lab is None else lab), where=mask)

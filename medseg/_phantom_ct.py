"""Analytic thorax for the CT-like phantom (private to :mod:`medseg.phantoms`).

A contrast-enhanced chest: torso, lungs, spine, ribs, sternum, liver dome, mediastinal fat and
a heart with an oblique long axis (base right-posterior-superior, apex left-anterior-inferior)
holding LV, myocardium, RV, LA, RA, aorta (root, ascending, arch, descending) and pulmonary
artery. :func:`render_ct` rasterises it at any set of world points, so the same scene gives a
3-D volume or an arbitrary 2-D plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._phantom_anatomy import LA, LV, MYO, RA, RV, Heart, draw_heart, rv_scale, rv_section
from ._phantom_shapes import Tissue, capsule_dist2, ellipse_q, paint
from .labels import DEFAULT_LABEL_MAP

AORTA, PA = DEFAULT_LABEL_MAP["aorta"], DEFAULT_LABEL_MAP["pa"]
_TORSO = (165.0, 120.0)  # adult torso semi-axes (x, y), mm at scale 1


@dataclass(frozen=True)
class CTScene:
    """Seeded thorax. ``k`` scales adult anatomy so the torso fits the field of view; positions
    are world RAS mm relative to the volume centre (+x right, +y anterior, +z superior)."""

    heart: Heart
    k: float  # thorax scale
    hk: float  # heart scale
    base: np.ndarray  # (3,) LV base (mitral plane) centre
    axes: np.ndarray  # (3, 3) rows: septal (towards RV), e_s x e_l, long axis (base -> apex)
    phase: float  # contraction state of the reconstructed phase (0 = ED)
    ribs: float  # rib pattern phase

    def at(self, *offset: float) -> np.ndarray:
        """World point ``base + hk * offset`` (offset in adult mm, world axes)."""
        return self.base + self.hk * np.asarray(offset, dtype=np.float64)


def draw_ct_scene(rng: np.random.Generator, fov_mm: tuple[float, float, float]) -> CTScene:
    """Random thorax fitting a field of view (z, y, x) in mm (torso fully inside in-plane)."""
    fz, fy, fx = fov_mm
    k = float(min(0.96 * fx / (2 * _TORSO[0]), 0.96 * fy / (2 * _TORSO[1]), 1.3))
    hk = k * rng.uniform(1.05, 1.25)
    heart = draw_heart(rng, ef=rng.uniform(0.5, 0.7), scale=hk)
    az, el = np.deg2rad(rng.uniform(35, 55)), np.deg2rad(rng.uniform(25, 40))
    e_l = np.array([-np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), -np.sin(el)])
    e_s = np.cross(e_l, [0.0, 0.0, 1.0])
    e_s = -e_s / np.linalg.norm(e_s)  # horizontal, right-anterior: the septum faces the RV
    axes = np.stack([e_s, np.cross(e_l, e_s), e_l])
    centre = np.array([k * (-22.0 + rng.uniform(-6, 6)), k * (12.0 + rng.uniform(-6, 6)), rng.uniform(-0.08, 0.08) * fz])
    base = centre - 0.45 * heart.lv_length * e_l
    return CTScene(heart=heart, k=k, hk=hk, base=base, axes=axes, phase=float(rng.uniform(0.1, 0.3)), ribs=float(rng.uniform(0, 2 * np.pi)))


def _ell3(p: np.ndarray, c: np.ndarray, r: tuple[float, float, float]) -> np.ndarray:
    """Axis-aligned ellipsoid value: <= 1 inside."""
    return ((p[..., 0] - c[0]) / r[0]) ** 2 + ((p[..., 1] - c[1]) / r[1]) ** 2 + ((p[..., 2] - c[2]) / r[2]) ** 2


def _thorax(sc: CTScene, p: np.ndarray, tissue: np.ndarray, labels: np.ndarray) -> None:
    """Paint body, fat, lungs, liver and bones at world points ``p``."""
    k, x, y, z = sc.k, p[..., 0], p[..., 1], p[..., 2]
    q = ellipse_q(x, y, 0.0, 0.0, k * _TORSO[0], k * _TORSO[1])
    paint(tissue, labels, q > 1, Tissue.AIR)
    paint(tissue, labels, (q <= 1) & (ellipse_q(x, y, 0, 0, k * (_TORSO[0] - 12), k * (_TORSO[1] - 12)) > 1), Tissue.FAT)
    dome = float(sc.base[2] + sc.heart.lv_length * sc.axes[2, 2]) - 25 * sc.hk  # liver dome centre, below the apex
    shrink = np.clip(1 - (dome - z) / (70 * k), 0.35, 1.0)  # lung bases retreat below the dome
    lungs = (ellipse_q(x, y, -88 * k, -8 * k - 30 * k * (1 - shrink), 64 * k * shrink, 92 * k * shrink) <= 1)
    lungs |= ellipse_q(x, y, 88 * k, -8 * k - 30 * k * (1 - shrink), 66 * k * shrink, 92 * k * shrink) <= 1
    paint(tissue, labels, lungs, Tissue.LUNG)
    paint(tissue, labels, ellipse_q(x, y, 0, 60 * k, 30 * k, 40 * k) <= 1, Tissue.FAT)  # anterior mediastinum
    liver_xy = ellipse_q(x, y, 60 * k, 5 * k, 88 * k, 80 * k)
    paint(tissue, labels, (liver_xy + ((z - dome) / (45 * k)) ** 2 <= 1) | ((liver_xy <= 1) & (z < dome)), Tissue.LIVER)
    theta = np.arctan2(y / _TORSO[1], x / _TORSO[0])
    ribs = (q > 0.86 ** 2) & (q < 0.92 ** 2) & (np.cos(11 * theta + z / (18 * k) + sc.ribs) > 0.55) & (y < 80 * k)
    paint(tissue, labels, ribs, Tissue.BONE)
    paint(tissue, labels, ellipse_q(x, y, 0, 112 * k, 14 * k, 6 * k) <= 1, Tissue.BONE)  # sternum
    paint(tissue, labels, ellipse_q(x, y, 0, -80 * k, 17 * k, 16 * k) <= 1, Tissue.BONE)  # vertebral body
    paint(tissue, labels, ellipse_q(x, y, 0, -110 * k, 5 * k, 9 * k) <= 1, Tissue.BONE)  # spinous process
    paint(tissue, labels, ellipse_q(x, y, 0, -101 * k, 7 * k, 6 * k) <= 1, Tissue.SOFT)  # spinal canal


def _vessels(sc: CTScene) -> list[tuple[np.ndarray, np.ndarray, float, int, int | None]]:
    """Great vessels as capsules: (start, end, radius mm, tissue, label) in world mm."""
    k, hk = sc.k, sc.hk
    av, asc = sc.at(12, 10, 8), sc.at(20, 14, 62)
    desc_top = np.array([-22 * k, -56 * k, asc[2] + 10 * hk])
    pa0, pa1 = sc.at(2, 36, 10), sc.at(-12, 8, 45)
    svc = sc.at(*_RA_OFFSET) + hk * np.array([2.0, -2.0, 20.0])
    return [
        (svc, svc + hk * np.array([0.0, -4.0, 90.0]), 9 * hk, Tissue.BLOOD_R, None),
        (av, asc, 14 * hk, Tissue.BLOOD, AORTA),
        (asc, desc_top, 12 * hk, Tissue.BLOOD, AORTA),
        (desc_top, desc_top - np.array([0.0, 0.0, 600.0]), 12 * k, Tissue.BLOOD, AORTA),
        (pa0, pa1, 13 * hk, Tissue.BLOOD_R, PA),
        (pa1, sc.at(-45, -15, 48), 9 * hk, Tissue.BLOOD_R, PA),
        (pa1, sc.at(38, -6, 44), 9 * hk, Tissue.BLOOD_R, PA),
    ]


_LA_OFFSET = (2.0, -18.0, 8.0)  # atrial centres from the mitral plane centre, adult mm (world axes)
_RA_OFFSET = (40.0, -2.0, 6.0)


def _chambers(sc: CTScene, p: np.ndarray, q: np.ndarray) -> list[tuple[np.ndarray, int, int | None]]:
    """(mask, tissue, label) in painting order; ``p`` world and ``q`` local heart coordinates."""
    h, s, a, lax = sc.heart, q[..., 0], q[..., 1], q[..., 2]  # short axes s, a; long axis lax
    ph = {key: float(val[0]) for key, val in h.lv.phase(np.array([sc.phase])).items()}
    ra_, rb, c, z0, t, ta = ph["a"], ph["b"], ph["c"], ph["z0"], ph["T"], ph["Ta"]
    lam_e = 1 - ((lax - z0) / (c + ta)) ** 2
    cav = ((s / ra_) ** 2 + (a / rb) ** 2 <= 1 - ((lax - z0) / c) ** 2) & (lax >= 0)
    epi = ((s / (ra_ + t)) ** 2 + (a / (rb + t)) ** 2 <= lam_e) & (lax >= 0)
    rho = np.sqrt(np.clip(1 - ((lax - z0) / (h.rv_c * c / h.lv.c)) ** 2, 0, None))
    s_rv = float(rv_scale(h, np.array([sc.phase]), np.array([c]))[0])
    off, ru, rw, d = rv_section(h, (ra_ + t) * np.sqrt(np.clip(lam_e, 0, None)), rho, s_rv)
    rv_ok = (lax >= 0) & (d > h.wall_mm)
    g = 1.0 + 0.1 * sc.phase
    (law, las), (raw, ras) = h.la, h.ra
    la_r, ra_r = (1.4 * law * g, law * g, las * g), (raw * g, 1.15 * raw * g, ras * g)
    la_q, ra_q = _ell3(p, sc.at(*_LA_OFFSET), la_r), _ell3(p, sc.at(*_RA_OFFSET), ra_r)
    shell = lambda qq, r, extra=0.0: qq <= (1 + (h.wall_mm + extra) / min(r)) ** 2  # noqa: E731  approximate offset
    fat, wall = h.fat_mm, h.wall_mm
    env = ((s / (ra_ + t + fat)) ** 2 + (a / (rb + t + fat)) ** 2 <= 1 - ((lax - z0) / (c + ta + fat)) ** 2) & (lax >= -fat)
    env |= (ellipse_q(s, a, off + (wall + fat) / 2, h.rv_shift * rw, ru + (wall + fat) / 2, rw + wall + fat) <= 1) & rv_ok
    env |= shell(la_q, la_r, fat) | shell(ra_q, ra_r, fat)
    return [
        (env, Tissue.FAT, None),
        (shell(la_q, la_r) & (lax < wall), Tissue.WALL, None),
        ((la_q <= 1) & (lax < 0), Tissue.BLOOD, LA),
        (shell(ra_q, ra_r) & (lax < h.tv_offset + wall), Tissue.WALL, None),
        ((ra_q <= 1) & (lax < h.tv_offset), Tissue.BLOOD_R, RA),
        ((ellipse_q(s, a, off + wall / 2, h.rv_shift * rw, ru + wall / 2, rw + wall) <= 1) & rv_ok, Tissue.WALL, None),
        ((ellipse_q(s, a, off, h.rv_shift * rw, ru, rw) <= 1) & rv_ok & ~epi, Tissue.BLOOD_R, RV),
        (epi, Tissue.MYO, MYO),
        (cav, Tissue.BLOOD, LV),
    ]


def render_ct(sc: CTScene, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissue classes and labels (lv, myo, rv, la, ra, aorta, pa) at world points ``p`` (..., 3).

    Returns two uint8 arrays of shape ``p.shape[:-1]``.
    """
    p = np.asarray(p, dtype=np.float32)
    tissue = np.full(p.shape[:-1], Tissue.SOFT, np.uint8)
    labels = np.zeros(p.shape[:-1], np.uint8)
    _thorax(sc, p, tissue, labels)
    q = (p - sc.base.astype(np.float32)) @ sc.axes.T.astype(np.float32)
    chambers = _chambers(sc, p, q)
    paint(tissue, labels, chambers[0][0], Tissue.FAT)
    lo, hi = p.reshape(-1, 3).min(axis=0), p.reshape(-1, 3).max(axis=0)
    tubes = [(p0, p1, r, cls, lab) for p0, p1, r, cls, lab in _vessels(sc)  # skip tubes outside the points' box
             if np.all(np.minimum(p0, p1) - r - 5 * sc.hk <= hi) and np.all(np.maximum(p0, p1) + r + 5 * sc.hk >= lo)]
    d2 = [capsule_dist2(p, p0, p1) for p0, p1, *_ in tubes]
    for (_, _, r, _, lab), dd in zip(tubes, d2):
        if lab is not None:  # mediastinal fat around the arteries
            paint(tissue, labels, dd <= (r + 5 * sc.hk) ** 2, Tissue.FAT)
    for mask, cls, lab in chambers[1:5]:
        paint(tissue, labels, mask, cls, lab)
    for (_, _, r, cls, lab), dd in zip(tubes, d2):
        paint(tissue, labels, dd <= r * r, cls, lab)
    for mask, cls, lab in chambers[5:]:
        paint(tissue, labels, mask, cls, lab)
    return tissue, labels

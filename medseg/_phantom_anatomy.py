"""Analytic heart anatomy for the 2-D / cine phantoms (private to :mod:`medseg.phantoms`).

Short-axis stacks (:func:`render_sax`) and long-axis four/two-chamber planes
(:func:`render_4ch`, shared by cine MR and echo) are rasterised from implicit functions on
voxel centres. Each renderer returns ``(tissue, labels)``: uint8 tissue classes
(:class:`~medseg._phantom_shapes.Tissue`) and uint8 labels in ``DEFAULT_LABEL_MAP`` values.
Frames are contraction states ``v`` (0 = end-diastole, 1 = end-systole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._phantom_shapes import LVShape, Tissue, draw_lv, ellipse_q, paint
from .labels import DEFAULT_LABEL_MAP

LV, MYO, RV = DEFAULT_LABEL_MAP["lv"], DEFAULT_LABEL_MAP["myo"], DEFAULT_LABEL_MAP["rv"]
LA, RA = DEFAULT_LABEL_MAP["la"], DEFAULT_LABEL_MAP["ra"]
_WALL_MM = 2.5  # RV free wall / atrial wall thickness at adult scale
_FAT_MM = 3.0  # epicardial fat layer at adult scale


def _col(x, ndim: int) -> np.ndarray:
    """Per-frame values (T,) as a (T, 1, ...) float32 array with ``ndim`` dimensions."""
    return np.asarray(x, dtype=np.float32).reshape((-1,) + (1,) * (ndim - 1))


@dataclass(frozen=True)
class Heart:
    """Seeded anatomy shared by the short- and long-axis renderers (mm, end-diastole)."""

    lv: LVShape
    rv_depth: float  # RV blood-pool thickness at the septal midline (widest level, ED)
    rv_reach: float  # the RV's outer ellipse reaches this fraction of R past the LV axis
    rv_wrap: float  # RV half height / (R + depth / 2): how far the crescent wraps the LV
    rv_c: float  # long semi-axis of the RV (shorter than the LV: the LV forms the apex)
    rv_shift: float  # anterior shift of the RV centre, fraction of its half height (< 0)
    rv_ef: float
    tv_offset: float  # tricuspid annulus apical to the mitral annulus (long axis)
    la: tuple[float, float]  # (half width, half length)
    ra: tuple[float, float]
    papillary: tuple[float, float]  # angles (rad) of the two papillary muscles
    scale: float = 1.0  # anatomy scale (1 = adult)

    @property
    def wall_mm(self) -> float:
        """Thickness of the unlabelled RV free wall and atrial walls (mm)."""
        return _WALL_MM * self.scale

    @property
    def fat_mm(self) -> float:
        return _FAT_MM * self.scale

    @property
    def lv_length(self) -> float:
        """End-diastolic base-to-apex cavity length (mm)."""
        return self.lv.f * self.lv.c + self.lv.c


def draw_heart(rng: np.random.Generator, ef: float, scale: float = 1.0) -> Heart:
    """Random plausible adult heart at ``scale`` (1 = adult size) with LV ejection fraction ``ef``."""
    lv = draw_lv(rng, ef, scale)
    r0 = lv.a + lv.wall
    return Heart(
        lv=lv,
        rv_depth=r0 * rng.uniform(0.5, 0.7),
        rv_reach=rng.uniform(0.0, 0.3),
        rv_wrap=rng.uniform(1.0, 1.2),
        rv_c=lv.c * rng.uniform(0.8, 0.92),
        rv_shift=-rng.uniform(0.05, 0.25),
        rv_ef=float(np.clip(ef - rng.uniform(0.0, 0.08), 0.05, 0.9)),
        tv_offset=scale * rng.uniform(3.0, 8.0),
        la=(scale * rng.uniform(18.0, 23.0), scale * rng.uniform(23.0, 30.0)),
        ra=(scale * rng.uniform(17.0, 22.0), scale * rng.uniform(22.0, 28.0)),
        papillary=(rng.uniform(-0.9, -0.5), rng.uniform(0.6, 1.1)),
        scale=float(scale),
    )


def rv_scale(h: Heart, v: np.ndarray, c_t: np.ndarray) -> np.ndarray:
    """RV thickness scale per frame from its own ejection fraction (same long-axis shortening)."""
    return (1.0 - np.asarray(v) * h.rv_ef) / (c_t / h.lv.c)


def rv_section(h: Heart, r, rho, s_rv) -> tuple:
    """The RV blood pool's outer ellipse in one short-axis section (broadcasts over arrays).

    ``r``: LV epicardial radius towards the RV at this level; ``rho``: RV taper (1 at its
    widest level, 0 at its apex); ``s_rv``: contraction scale. Returns (offset of the centre
    from the LV axis towards the RV, half width, half height, midline depth ``d``) in mm. The
    ellipse spans from R + d (free wall) to -rv_reach * R, so once the LV epicardium is
    removed the RV is a crescent that always touches the septum.
    """
    d = h.rv_depth * s_rv * rho
    ru = 0.5 * (r * (1 + h.rv_reach) + d)
    return r + d - ru, ru + 1e-3, (r + 0.5 * d) * h.rv_wrap + 1e-3, d


# -- short axis ----------------------------------------------------------------------------
def _sax_background(rng: np.random.Generator, h: Heart, u: np.ndarray, w: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(Z, Y, X) tissue around the heart: body, subcutaneous fat, lungs, liver, aorta, spine.

    ``u`` (lateral, image right) and ``w`` (inferior, image down) are heart-centred mm.
    """
    r0, k = h.lv.a + h.lv.wall, h.scale
    zn = (np.asarray(z, np.float32) / h.lv_length).reshape(-1, 1, 1)
    j = rng.uniform(-1, 1, 8) * 6.0 * k
    tissue = np.full((len(z),) + u.shape, Tissue.SOFT, np.uint8)
    dummy = np.zeros_like(tissue)
    bx, by = -15 * k + j[0], 35 * k + j[1]
    body = ellipse_q(u, w, bx, by, 175 * k, 128 * k)
    paint(tissue, dummy, (body > 1)[None], Tissue.AIR)
    paint(tissue, dummy, ((body <= 1) & (ellipse_q(u, w, bx, by, 163 * k, 116 * k) > 1))[None], Tissue.FAT)
    lat = ellipse_q(u, w, r0 + 48 * k + j[2], -12 * k + j[3], 42 * k * (1 - 0.25 * zn), 72 * k)
    sep = ellipse_q(u, w, -(r0 + h.rv_depth + 48 * k) + j[4], -15 * k, 36 * k, 66 * k * (1 - 0.2 * zn))
    paint(tissue, dummy, (lat <= 1) | (sep <= 1), Tissue.LUNG)
    grow = k * (np.clip((zn - 0.4) * 2.5, 0.0, 1.0) + 1e-3)
    paint(tissue, dummy, ellipse_q(u, w, -40 * k + j[5], r0 + 60 * k, 95 * grow, 55 * grow) <= 1, Tissue.LIVER)
    paint(tissue, dummy, (ellipse_q(u, w, 24 * k + j[6], r0 + 34 * k, 11 * k, 11 * k) <= 1)[None], Tissue.BLOOD)
    paint(tissue, dummy, (ellipse_q(u, w, j[7], r0 + 66 * k, 18 * k, 16 * k) <= 1)[None], Tissue.BONE)
    return tissue


def render_sax(rng: np.random.Generator, h: Heart, u: np.ndarray, w: np.ndarray, z: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Short-axis cine: (T, Z, Y, X) tissue and labels (lv, myo, rv).

    ``u``, ``w`` (Y, X): in-plane heart-centred mm (lateral right, inferior down; the RV lies
    at -u, anterior is -w). ``z`` (Z,): slice-centre distance from the base plane, mm.
    ``v`` (T,): contraction state per frame.
    """
    p = h.lv.phase(v)
    a, b, c, z0, t, ta = (_col(p[k], 4) for k in ("a", "b", "c", "z0", "T", "Ta"))
    zz = np.asarray(z, np.float32).reshape(1, -1, 1, 1)
    uu, ww = u[None, None], w[None, None]
    base = zz >= 0
    lam_c = 1 - ((zz - z0) / c) ** 2
    lam_e = 1 - ((zz - z0) / (c + ta)) ** 2
    cav = ((uu / a) ** 2 + (ww / b) ** 2 <= lam_c) & base
    epi = ((uu / (a + t)) ** 2 + (ww / (b + t)) ** 2 <= lam_e) & base
    fat, wall = h.fat_mm, h.wall_mm
    env = ((uu / (a + t + fat)) ** 2 + (ww / (b + t + fat)) ** 2 <= 1 - ((zz - z0) / (c + ta + fat)) ** 2) & base
    rho = np.sqrt(np.clip(1 - ((zz - z0) / (h.rv_c * c / h.lv.c)) ** 2, 0, None))
    off, ru, rw, d = rv_section(h, (a + t) * np.sqrt(np.clip(lam_e, 0, None)), rho, _col(rv_scale(h, v, p["c"]), 4))
    wc, has_rv = h.rv_shift * rw, base & (d > wall)
    rv = (ellipse_q(uu, ww, -off, wc, ru, rw) <= 1) & has_rv
    rv_wall = (ellipse_q(uu, ww, -off - wall / 2, wc, ru + wall / 2, rw + wall) <= 1) & has_rv
    env |= (ellipse_q(uu, ww, -off - (wall + fat) / 2, wc, ru + (wall + fat) / 2, rw + wall + fat) <= 1) & has_rv
    tissue = np.broadcast_to(_sax_background(rng, h, u, w, z)[None], cav.shape).copy()
    labels = np.zeros(cav.shape, np.uint8)
    paint(tissue, labels, dilate_2d(env, 2), Tissue.PERICARDIUM)
    paint(tissue, labels, env, Tissue.FAT)
    paint(tissue, labels, rv_wall, Tissue.WALL)
    paint(tissue, labels, rv & ~epi, Tissue.BLOOD_R, RV)
    paint(tissue, labels, epi, Tissue.MYO, MYO)
    paint(tissue, labels, cav, Tissue.BLOOD, LV)
    lvl = np.sqrt(np.clip(lam_c, 0, None)) * ((zz > 0.3 * (z0 + c)) & (lam_c > 0.25))
    for phi in h.papillary:  # papillary muscles: dark in the image, labelled as blood pool
        pm = ellipse_q(uu, ww, 0.7 * a * lvl * np.cos(phi), 0.7 * b * lvl * np.sin(phi), 0.2 * a * lvl + 1e-3, 0.2 * a * lvl + 1e-3) <= 1
        paint(tissue, labels, pm & cav, Tissue.PAPILLARY, LV)
    return tissue, labels


# -- long axis (four / two chamber) --------------------------------------------------------
def _lax_background(h: Heart, s: np.ndarray, w: np.ndarray, body: bool) -> np.ndarray:
    """(Y, X) tissue around a long-axis heart: lungs, descending aorta, liver, spine, body.

    ``s`` runs from the mitral plane towards the apex, ``w`` towards the LV lateral wall (mm).
    """
    r0, k = h.lv.a + h.lv.wall, h.scale
    tissue = np.full(s.shape, Tissue.SOFT, np.uint8)
    dummy = np.zeros_like(tissue)
    la_s, ra_s = h.la[1], h.ra[1]
    paint(tissue, dummy, ellipse_q(w, s, r0 + 52 * k, 0.4 * h.lv.c, 42 * k, 90 * k) <= 1, Tissue.LUNG)
    paint(tissue, dummy, ellipse_q(w, s, -(r0 + h.rv_depth + 52 * k), 0.5 * h.lv.c, 40 * k, 85 * k) <= 1, Tissue.LUNG)
    paint(tissue, dummy, ellipse_q(w, s, -(r0 + 0.5 * h.rv_depth), -(2 * ra_s + 62 * k), 90 * k, 45 * k) <= 1, Tissue.LIVER)
    paint(tissue, dummy, ellipse_q(w, s, 0.4 * h.lv.a, -(2.1 * la_s + 16 * k), 11 * k, 11 * k) <= 1, Tissue.BLOOD)
    paint(tissue, dummy, ellipse_q(w, s, 0.2 * h.lv.a, -(2.1 * la_s + 48 * k), 17 * k, 15 * k) <= 1, Tissue.BONE)
    if body:
        paint(tissue, dummy, ellipse_q(w, s, -25 * k, -10 * k, 200 * k, 165 * k) > 1, Tissue.AIR)
    return tissue


def render_4ch(h: Heart, s: np.ndarray, w: np.ndarray, v: np.ndarray, view: str = "a4c", body: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Long-axis plane through the LV: (T, Y, X) tissue and labels.

    ``view`` "a4c" (four chamber: lv, myo, rv, la, ra) or "a2c" (two chamber: lv, myo, la).
    ``s``, ``w`` (Y, X): heart-frame mm (s from the mitral plane to the apex, w towards the
    LV lateral wall). ``v`` (T,): contraction state per frame. Atria fill during systole.
    """
    p = h.lv.phase(v)
    width = p["a"] if view == "a4c" else p["b"]
    a, c, z0, t, ta = (_col(x, 3) for x in (width, p["c"], p["z0"], p["T"], p["Ta"]))
    ss, ww = s[None], w[None]
    up = ss >= 0
    cav = (ellipse_q(ww, ss, 0, z0, a, c) <= 1) & up
    epi = (ellipse_q(ww, ss, 0, z0, a + t, c + ta) <= 1) & up
    g = 1.0 + 0.18 * _col(v, 3)
    wall, fat = h.wall_mm, h.fat_mm
    w_ias = -(h.lv.a + 0.5 * h.lv.wall) if view == "a4c" else -1e9
    (law, las), (raw, ras) = h.la, h.ra
    la_c = (0.0 if view == "a2c" else -0.1 * h.lv.a, -0.6 * las * g)
    la_q = ellipse_q(ww, ss, la_c[0], la_c[1], law * g, las * g)
    la_wall = ellipse_q(ww, ss, la_c[0], la_c[1], law * g + wall, las * g + wall) <= 1
    env = (ellipse_q(ww, ss, 0, z0, a + t + fat, c + ta + fat) <= 1) & (ss >= -fat) | la_wall
    parts = [(la_wall & (ss < 0), Tissue.WALL, None), ((la_q <= 1) & (ss < 0) & (ww > w_ias + 0.6 * wall), Tissue.BLOOD, LA)]
    if view == "a4c":
        rho = np.sqrt(np.clip(1 - ((ss - z0) / (h.rv_c * c / h.lv.c)) ** 2, 0, None))
        r_s = (a + t) * np.sqrt(np.clip(1 - ((ss - z0) / (c + ta)) ** 2, 0, None))
        d = h.rv_depth * _col(rv_scale(h, v, p["c"]), 3) * rho
        rv_ok = (d > wall) & (ss >= h.tv_offset)
        rv_wall = rv_ok & (ww >= -(r_s + d + wall)) & (ww < 0)
        rv_in = rv_ok & (ww >= -(r_s + d))
        ra_c = (w_ias - 0.6 * wall - 0.85 * raw * g, h.tv_offset - 0.6 * ras * g)
        ra_q = ellipse_q(ww, ss, ra_c[0], ra_c[1], raw * g, ras * g)
        ra_wall = (ellipse_q(ww, ss, ra_c[0], ra_c[1], raw * g + wall, ras * g + wall) <= 1) & (ss < h.tv_offset)
        env = env | rv_wall | ra_wall
        parts += [(ra_wall, Tissue.WALL, None), ((ra_q <= 1) & (ss < h.tv_offset) & (ww < w_ias - 0.6 * wall), Tissue.BLOOD_R, RA),
                  (rv_wall, Tissue.WALL, None), (rv_in & ~epi & (ww < 0), Tissue.BLOOD_R, RV)]
    shape = np.broadcast_shapes(cav.shape, ss.shape)
    tissue = np.broadcast_to(_lax_background(h, s, w, body)[None], shape).copy()
    labels = np.zeros(shape, np.uint8)
    paint(tissue, labels, dilate_2d(env, 2), Tissue.PERICARDIUM)
    paint(tissue, labels, env, Tissue.FAT)
    for mask, cls, lab in parts:
        paint(tissue, labels, mask, cls, lab)
    paint(tissue, labels, epi, Tissue.MYO, MYO)
    paint(tissue, labels, cav, Tissue.BLOOD, LV)
    return tissue, labels


def dilate_2d(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary dilation over the last two axes (cross structuring element), ``iterations`` px."""
    out = mask.copy()
    for _ in range(iterations):
        grown = out.copy()
        grown[..., 1:, :] |= out[..., :-1, :]
        grown[..., :-1, :] |= out[..., 1:, :]
        grown[..., :, 1:] |= out[..., :, :-1]
        grown[..., :, :-1] |= out[..., :, 1:]
        out = grown
    return out

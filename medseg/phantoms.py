"""Synthetic cardiac images with exact ground truth.

Used by tests, examples, the napari sample-data menu and as extra training data. Every
generator returns a :class:`Phantom`: a float32 :class:`~medseg.io.volume.Volume` (T, Z, Y, X)
on a diagonal RAS affine from :func:`~medseg.io.volume.affine_from_spacing`, uint8 labels of
the same shape in :data:`~medseg.labels.DEFAULT_LABEL_MAP` values (lv=1, myo=2, rv=3, la=4,
ra=5, aorta=6, pa=7) and an ``info`` dict of parameters and analytic truths.

Labels are rasterised from analytic implicit shapes (truncated ellipsoids, ellipses, tubes) at
voxel centres, so they are exact; images add modality-like contrast, partial-volume blur, a
smooth bias field and noise (Rician for MR, Rayleigh speckle for echo, Gaussian HU for CT).
The LV is a truncated ellipsoid (base plane z = 0, apex towards +z) inside a myocardial shell
whose volume is conserved through the cycle, so the wall thickens in systole. Papillary
muscles are drawn darker but labelled as LV blood pool (the UK Biobank / ACDC convention).
Same ``seed`` -> identical phantom; different seeds vary size, pose, timing and contrast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _phantom_shapes as ps
from ._phantom_anatomy import draw_heart, render_4ch, render_sax
from ._phantom_ct import draw_ct_scene, render_ct
from .io.volume import Volume, affine_from_spacing
from .labels import DEFAULT_LABEL_MAP, LabelMap

__all__ = [
    "Phantom", "cine_sax_phantom", "lax_4ch_phantom", "echo_apical_phantom", "ct_phantom",
    "random_training_slice", "phantom_dataset", "sample_data_cine", "sample_data_echo", "KINDS",
]

KINDS: tuple[str, ...] = ("sax", "lax", "echo", "ct")
ECHO_VIEWS: tuple[str, ...] = ("a4c", "a2c")
MR_SCALE = 1000.0  # MR images: arbitrary units with blood ~ 1000


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic image with exact labels.

    Attributes:
        image: float32 Volume (T, Z, Y, X); MR in arbitrary units (blood ~1000), echo 0-255,
            CT in Hounsfield units.
        labels: uint8 (T, Z, Y, X) in ``label_map`` values.
        label_map: the label values (always :data:`DEFAULT_LABEL_MAP`).
        info: parameters and analytic truths (volumes in mL, lengths in mm, frames).
    """

    image: Volume
    labels: np.ndarray
    label_map: LabelMap = DEFAULT_LABEL_MAP
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def label_volume(self) -> Volume:
        """The labels as a Volume on the image's geometry."""
        return self.image.with_array(self.labels)


# -- input checks --------------------------------------------------------------------------
def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _shape2(shape: Any, name: str = "shape") -> tuple[int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"{name} must be (Y, X), two integers >= 16, got {shape!r}")
    return _positive_int(shape[0], f"{name}[0]", 16), _positive_int(shape[1], f"{name}[1]", 16)


def _spacing(spacing: Any, n: int) -> tuple[float, ...]:
    sp = tuple(float(s) for s in np.atleast_1d(spacing))
    if len(sp) != n or not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be {n} positive numbers in mm, got {spacing!r}")
    return sp


def _fraction(value: float, name: str, lo: float, hi: float) -> float:
    if not (lo <= float(value) <= hi):
        raise ValueError(f"{name} must be within [{lo}, {hi}], got {value!r}")
    return float(value)


# -- shared image formation ----------------------------------------------------------------
def _plane(shape: tuple[int, int], sp: tuple[float, float], origin: np.ndarray, e1: np.ndarray, e2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (Y, X) projected on axes e1, e2 (image x-right, y-down mm)."""
    y = (np.arange(shape[0], dtype=np.float32) * sp[0] - origin[1])[:, None]
    x = (np.arange(shape[1], dtype=np.float32) * sp[1] - origin[0])[None, :]
    return (x * e1[0] + y * e1[1]).astype(np.float32), (x * e2[0] + y * e2[1]).astype(np.float32)


def _mr_image(rng: np.random.Generator, tissue: np.ndarray, noise: float, bias: float) -> np.ndarray:
    """SSFP-like float32 image from (T, Z, Y, X) tissue: contrast, texture, blur, bias, Rician."""
    _, nz, ny, nx = tissue.shape
    img = ps.draw_contrast(rng, "MR")[tissue]
    img *= 1.0 + 0.07 * ps.smooth_field(rng, (nz, ny, nx), (max(1, nz // 2), max(2, ny // 10), max(2, nx // 10)))
    img = ps.blur_last2(img, rng.uniform(0.45, 0.8))
    img *= np.exp(bias * ps.smooth_field(rng, (nz, ny, nx), (min(nz, 3), 3, 3)))
    return (ps.rician(rng, img, noise) * MR_SCALE).astype(np.float32)


def _heart_axes(theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(long axis base->apex, lateral) unit vectors for a heart tilted ``theta`` from 'apex up'."""
    t = np.deg2rad(theta_deg)
    return np.array([np.sin(t), -np.cos(t)]), np.array([np.cos(t), np.sin(t)])


def _cycle_info(v: np.ndarray, ed: int, es: int, hr: float) -> dict[str, Any]:
    return {"ed_frame": int(ed), "es_frame": int(es), "contraction": np.round(v, 6).tolist(), "heart_rate_bpm": round(hr, 2)}


def _frame_times(n: int, hr: float) -> np.ndarray:
    return np.arange(n) * (60.0 / hr) / n


# -- short-axis cine -----------------------------------------------------------------------
def cine_sax_phantom(n_frames: int = 20, n_slices: int = 10, shape: tuple[int, int] = (128, 128), spacing: tuple[float, float, float] = (10.0, 1.5, 1.5),
                     seed: int = 0, noise: float = 0.05, bias: float = 0.3, ef: float = 0.6, pose_jitter: bool = True, heart_scale: float | None = None) -> Phantom:
    """Short-axis cine MR (SSFP-like) stack, base at slice 0 and apex towards the last slice.

    Args:
        n_frames, n_slices: T and Z. ``shape``: (Y, X) pixels. ``spacing``: (dz, dy, dx) mm,
            dz the centre-to-centre slice distance (the base plane lies on the top boundary
            of slice 0, world z = -dz / 2).
        seed: geometry, timing (ED/ES frames), pose, contrast and noise all follow it.
        noise: Rician noise std relative to blood. ``bias``: log-amplitude of the smooth
            multiplicative bias field. ``ef``: LV ejection fraction (0.05-0.9).
        pose_jitter: random in-plane rotation (+-30 deg) and shift (+-10 mm) of the heart.
        heart_scale: anatomy scale (1 = adult); default shrinks only for small fields of view.

    Returns a :class:`Phantom` with labels lv, myo, rv. ``info`` holds per-frame analytic
    ``lv_volume_ml`` / ``myo_volume_ml`` (the part inside the stack), ``lv_volume_disc_ml``
    (the same shape summed over slice centres, i.e. what exact voxel counting converges to),
    ``wall_thickness_mm`` (epicardial minus endocardial semi-axis), ``ed_frame``, ``es_frame``,
    ``ef_pct``, ``lv_mass_g`` (1.05 g/mL) and the pose.
    """
    n_frames, n_slices = _positive_int(n_frames, "n_frames"), _positive_int(n_slices, "n_slices")
    (ny, nx), (dz, dy, dx) = _shape2(shape), _spacing(spacing, 3)
    ef, noise, bias = _fraction(ef, "ef", 0.05, 0.9), _fraction(noise, "noise", 0, 1), _fraction(bias, "bias", 0, 2)
    rng = np.random.default_rng(seed)
    scale = heart_scale if heart_scale is not None else float(np.clip(min(ny * dy, nx * dx) / 170.0, 0.1, 1.0))
    h = draw_heart(rng, ef, _fraction(scale, "heart_scale", 0.1, 3.0))
    v, ed, es = ps.cardiac_cycle(n_frames, rng)
    hr = rng.uniform(55, 85)
    angle = rng.uniform(-30, 30) if pose_jitter else 0.0
    shift = rng.uniform(-10, 10, 2) * scale if pose_jitter else np.zeros(2)
    centre = np.array([(nx - 1) * dx / 2 + 0.5 * h.rv_depth, (ny - 1) * dy / 2]) + shift
    lat, inf = _heart_axes(angle + 90.0)[0], _heart_axes(angle + 180.0)[0]
    u, w = _plane((ny, nx), (dy, dx), centre, lat, inf)
    z = (np.arange(n_slices) + 0.5) * dz
    tissue, labels = render_sax(rng, h, u, w, z, v)
    image = _mr_image(rng, tissue, noise, bias)
    vol = Volume(image, affine_from_spacing((dz, dy, dx)), frame_times_s=_frame_times(n_frames, hr), modality="MR", meta={"format": "phantom"})
    return Phantom(vol, labels, info=_sax_info(h, v, ed, es, hr, z, dz, seed, angle, centre))


def _sax_info(h, v, ed, es, hr, z, dz, seed, angle, centre) -> dict[str, Any]:
    """Analytic truths of a short-axis cine (volumes in mL per frame, lengths in mm)."""
    cav, myo = h.lv.volumes_ml(v, 0.0, len(z) * dz)
    p = h.lv.phase(v)
    lam = np.clip(1 - ((z[None, :] - p["z0"][:, None]) / p["c"][:, None]) ** 2, 0, None)
    disc = np.pi * p["a"][:, None] * p["b"][:, None] * lam * dz / 1000.0
    info = {"kind": "sax", "seed": seed, **_cycle_info(v, ed, es, hr),
            "lv_volume_ml": cav.tolist(), "myo_volume_ml": myo.tolist(), "lv_volume_disc_ml": disc.sum(1).tolist(),
            "ef_pct": float(100 * (cav[ed] - cav[es]) / cav[ed]) if cav[ed] > 0 else float("nan"),
            "lv_mass_g": float(1.05 * myo[ed]), "wall_thickness_mm": p["T"].tolist(),
            "wall_thickness_ed_mm": float(p["T"][ed]), "wall_thickness_es_mm": float(p["T"][es]),
            "lv_length_mm": (p["z0"] + p["c"]).tolist(), "apex_covered": bool(h.lv.c * (1 + h.lv.f) + h.lv.apex_ratio * h.lv.wall < len(z) * dz),
            "base_plane_z_mm": -dz / 2, "rotation_deg": float(angle), "lv_centre_xy_mm": [float(c) for c in centre]}
    return info


# -- long axis -----------------------------------------------------------------------------
def _lax(rng: np.random.Generator, shape, sp: float, n_frames: int, view: str, noise: float, bias: float, theta: float):
    """A four-chamber ("a4c") or two-chamber ("a2c") cine MR plane: (image (T, 1, Y, X),
    labels (T, 1, Y, X), heart, contraction v, ED frame, ES frame)."""
    scale = min(1.0, min(shape) * sp / 190.0)
    h = draw_heart(rng, rng.uniform(0.5, 0.7), scale * rng.uniform(0.9, 1.05))
    v, ed, es = ps.cardiac_cycle(n_frames, rng)
    e_l, e_w = _heart_axes(theta)
    centre = np.array([(shape[1] - 1) * sp / 2, (shape[0] - 1) * sp / 2]) + rng.uniform(-8, 8, 2) * scale
    origin = centre - 18 * scale * e_l + (25 * scale if view == "a4c" else 0) * e_w
    s, w = _plane(shape, (sp, sp), origin, e_l, e_w)
    tissue, labels = render_4ch(h, s, w, v, view)
    image = _mr_image(rng, tissue[:, None], noise, bias)
    return image, labels[:, None], h, v, ed, es


def lax_4ch_phantom(shape: tuple[int, int] = (160, 160), spacing: float = 1.5, seed: int = 0, n_frames: int = 1, noise: float = 0.05, bias: float = 0.3) -> Phantom:
    """Four-chamber long-axis cine MR slice: (T, 1, Y, X) with labels lv, myo, rv, la, ra.

    ``spacing``: in-plane pixel size in mm (slice thickness recorded as 8 mm). The apex points
    up (tilted by a seeded angle), LV on the image right, RV left, atria below. ``info`` holds
    ED/ES frames, per-frame analytic in-plane ``lv_area_mm2`` and ``lv_length_mm``.
    """
    (ny, nx), (sp,) = _shape2(shape), _spacing(spacing, 1)
    n_frames = _positive_int(n_frames, "n_frames")
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-35, 20)
    image, labels, h, v, ed, es = _lax(rng, (ny, nx), sp, n_frames, "a4c", _fraction(noise, "noise", 0, 1), _fraction(bias, "bias", 0, 2), theta)
    hr = rng.uniform(55, 85)
    vol = Volume(image, affine_from_spacing((8.0, sp, sp)), frame_times_s=_frame_times(n_frames, hr), modality="MR", meta={"format": "phantom"})
    return Phantom(vol, labels, info={"kind": "lax", "view": "4ch", "seed": seed, **_cycle_info(v, ed, es, hr), **_lv_plane_info(h, v, "a4c"), "tilt_deg": float(theta)})


def _lv_plane_info(h, v: np.ndarray, view: str) -> dict[str, Any]:
    """Analytic LV area in the long-axis plane, length (mitral plane to apex) and 3-D volume."""
    p = h.lv.phase(v)
    half = p["a"] if view == "a4c" else p["b"]
    area = ps.ellipse_segment_area(half, p["c"], p["z0"], 0.0, np.inf)
    cav, _ = h.lv.volumes_ml(v)
    return {"lv_area_mm2": area.tolist(), "lv_length_mm": (p["z0"] + p["c"]).tolist(), "lv_volume_ml": cav.tolist()}


# -- echo ----------------------------------------------------------------------------------
def _fit_in_sector(h, view: str, e_l: np.ndarray, e_w: np.ndarray, apex: np.ndarray, probe: np.ndarray, half: float, step: float) -> np.ndarray:
    """Move the LV apex (mm, image x/y) deeper and towards the beam axis until the whole
    end-diastolic LV epicardium lies inside the sector (angles within 95% of ``half``)."""
    p = {key: float(val[0]) for key, val in h.lv.phase(np.zeros(1)).items()}
    th = np.linspace(-np.pi / 2, np.pi / 2, 90)
    s = p["z0"] + (p["c"] + p["Ta"]) * np.sin(th)
    w = ((p["a"] if view == "a4c" else p["b"]) + p["T"]) * np.cos(th)
    s, w = np.r_[s[s >= 0], 0.0, 0.0], np.r_[w[s >= 0], w.max(), -w.max()]
    for _ in range(40):
        pts = apex - h.lv_length * e_l + s[:, None] * e_l + w[:, None] * e_w
        rel = pts - probe
        if np.all(rel[:, 1] > 0) and np.abs(np.arctan2(rel[:, 0], rel[:, 1])).max() < 0.95 * half:
            break
        apex = apex + np.array([-0.5 * np.sign(apex[0] - probe[0]) * step, step])
    return apex


def _echo(rng: np.random.Generator, shape: tuple[int, int], view: str, n_frames: int, sp: float):
    """Apical echo cine: (image (T, Y, X) 0-255, labels (T, Y, X), heart, v, ed, es, sector)."""
    ny, nx = shape
    half = np.deg2rad(rng.uniform(35.0, 42.0))
    top = 0.03 * ny
    depth = min(0.97 * (ny - top), 0.49 * nx / np.sin(half))  # pixels
    k = depth * sp / 165.0  # adult anatomy fits a 165 mm sector depth
    h = draw_heart(rng, rng.uniform(0.45, 0.7), k * rng.uniform(0.85, 1.0))
    v, ed, es = ps.cardiac_cycle(n_frames, rng)
    beta = rng.uniform(0.0, 12.0) if view == "a4c" else rng.uniform(-6.0, 6.0)
    e_l, e_w = _heart_axes(-beta)
    apex = np.array([(nx - 1) / 2 + depth * (rng.uniform(0.0, 0.04) if view == "a4c" else rng.uniform(-0.03, 0.03)), top + depth * rng.uniform(0.1, 0.15)]) * sp
    apex = _fit_in_sector(h, view, e_l, e_w, apex, np.array([(nx - 1) / 2, top]) * sp, half, 0.01 * depth * sp)
    tissue, labels = render_4ch(h, *_plane(shape, (sp, sp), apex - h.lv_length * e_l, e_l, e_w), v, view, body=False)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    r, phi = np.hypot(xx - (nx - 1) / 2, yy - top), np.arctan2(xx - (nx - 1) / 2, yy - top)
    sector = (r <= depth) & (np.abs(phi) <= half) & (yy >= top)
    labels *= sector
    env = ps.draw_contrast(rng, "US")[tissue] * (1 + 0.3 * ps.smooth_field(rng, shape, (max(2, ny // 16), max(2, nx // 16))))
    env = ps.blur_last2(env, 0.6) * ps.speckle(rng, (1, ny, nx), (rng.uniform(0.5, 0.8), rng.uniform(0.9, 1.5)))
    rn = np.clip(r / depth, 0, 1)
    env = env + rng.uniform(0.003, 0.015) * np.clip(1 - rn / 0.35, 0, None) * ps.speckle(rng, (1, ny, nx), (1.0, 2.0))  # near-field clutter
    env *= rng.uniform(0.7, 1.4) * 10 ** (-rng.uniform(0.0, 0.4) * rn) * (1 - 0.6 * np.clip(np.abs(phi) / half, 0, 1) ** 6)
    dr = rng.uniform(45.0, 60.0)  # displayed dynamic range, dB (0 dB = pericardium level)
    img = np.clip((20 * np.log10(env + 1e-6) + dr) / dr, 0, 1) * 255 * sector
    info = {"apex_yx_px": [float(top), float((nx - 1) / 2)], "half_angle_deg": float(np.rad2deg(half)), "depth_px": float(depth)}
    return np.clip(img, 0, 255).astype(np.float32), labels, h, v, ed, es, sector, info


def echo_apical_phantom(view: str = "a4c", n_frames: int = 1, shape: tuple[int, int] = (224, 224), spacing: float | None = 0.3, seed: int = 0) -> Phantom:
    """Apical echo B-mode (T, 1, Y, X) in a fan-shaped sector, values 0-255, modality "US".

    ``view``: "a4c" (labels lv, myo, rv, la, ra; LV on the image right) or "a2c" (lv, myo,
    la). The transducer sits at the top centre; blood is dark, myocardium and pericardium
    bright, with Rayleigh speckle, depth attenuation and near-field clutter. The anatomy is
    sized to the sector, so ``spacing`` (pixel size in mm) only sets the physical scale;
    ``None`` gives a 1 mm nominal pixel and ``spacing_known=False`` (like echo video).
    Pixels outside the sector are 0 (``info["sector_mask"]``, (Y, X) bool; the only entry of
    ``info`` that is not JSON-ready); the whole LV and its myocardium lie inside it. ``info`` also
    holds ED/ES frames and per-frame analytic ``lv_area_mm2``, ``lv_length_mm`` (mitral plane
    to apex) and ``lv_volume_ml`` (the 3-D truncated ellipsoid shared by the a4c and a2c
    views of the same seed, shape and n_frames).
    """
    if view not in ECHO_VIEWS:
        raise ValueError(f"unknown echo view {view!r}; allowed: {', '.join(ECHO_VIEWS)}")
    shape, n_frames = _shape2(shape), _positive_int(n_frames, "n_frames")
    sp = 1.0 if spacing is None else _spacing(spacing, 1)[0]
    rng = np.random.default_rng(seed)
    img, labels, h, v, ed, es, sector, sinfo = _echo(rng, shape, view, n_frames, sp)
    hr = rng.uniform(55, 85)
    vol = Volume(img[:, None], affine_from_spacing((1.0, sp, sp)), frame_times_s=_frame_times(n_frames, hr), modality="US",
                 spacing_known=spacing is not None, meta={"format": "phantom"})
    info = {"kind": "echo", "view": view, "seed": seed, **_cycle_info(v, ed, es, hr), **_lv_plane_info(h, v, view), **sinfo,
            "spacing_known": spacing is not None, "sector_mask": sector}
    return Phantom(vol, labels[:, None], info=info)


# -- CT ------------------------------------------------------------------------------------
def _ct_image(rng: np.random.Generator, tissue: np.ndarray, noise: float) -> np.ndarray:
    """Hounsfield units from tissue classes: contrast, texture, blur, Gaussian noise (float32)."""
    hu = ps.draw_contrast(rng, "CT")[tissue]
    tex = ps.smooth_field(rng, tissue.shape[-2:], (max(2, tissue.shape[-2] // 12), max(2, tissue.shape[-1] // 12)))
    hu += np.where(tissue == ps.Tissue.LUNG, 40.0, 8.0) * tex
    hu = ps.blur_last2(hu, rng.uniform(0.5, 0.8))
    return (hu + noise * rng.standard_normal(hu.shape, dtype=np.float32)).astype(np.float32)


def ct_phantom(shape: tuple[int, int, int] = (64, 128, 128), spacing: tuple[float, float, float] = (2.0, 1.0, 1.0), seed: int = 0, noise: float = 25.0) -> Phantom:
    """Contrast-enhanced cardiac CT-like volume (1, Z, Y, X) in Hounsfield units.

    ``spacing`` (dz, dy, dx) mm; the world origin is the volume centre (RAS: +x right,
    +y anterior, +z superior). Labels lv, myo, rv, la, ra, aorta, pa with an oblique LV long
    axis (apex left-anterior-inferior). Chambers 300-450 HU, myocardium 105-145, fat ~-100,
    lungs ~-800, air -1000 outside the body, bone ~700; ``noise`` is the HU noise std. The
    anatomy is scaled so the torso fits the in-plane field of view (``info["scale"]``).
    """
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"shape must be (Z, Y, X), three integers, got {shape!r}")
    nz = _positive_int(shape[0], "shape[0]")
    ny, nx = _shape2(tuple(shape[1:]), "shape[1:]")
    dz, dy, dx = _spacing(spacing, 3)
    noise = _fraction(noise, "noise", 0, 200)
    rng = np.random.default_rng(seed)
    sc = draw_ct_scene(rng, (nz * dz, ny * dy, nx * dx))
    origin = (-(nx - 1) * dx / 2, -(ny - 1) * dy / 2, -(nz - 1) * dz / 2)
    zz, yy, xx = np.meshgrid(np.arange(nz) * dz + origin[2], np.arange(ny) * dy + origin[1], np.arange(nx) * dx + origin[0], indexing="ij")
    tissue, labels = render_ct(sc, np.stack([xx, yy, zz], axis=-1).astype(np.float32))
    vol = Volume(_ct_image(rng, tissue, noise)[None], affine_from_spacing((dz, dy, dx), origin), modality="CT", meta={"format": "phantom"})
    vox_ml = dz * dy * dx / 1000.0
    counted = {n: float((labels == val).sum() * vox_ml) for n, val in DEFAULT_LABEL_MAP.values.items()}
    cav, myo = sc.heart.lv.volumes_ml(np.array([sc.phase]))
    info = {"kind": "ct", "seed": seed, "scale": sc.k, "contraction": sc.phase, "lv_long_axis_ras": sc.axes[2].tolist(),
            "lv_base_centre_ras_mm": sc.base.tolist(), "heart_scale": sc.hk, "lv_volume_ml": float(cav[0]), "myo_volume_ml": float(myo[0]),
            "label_volumes_ml": counted}
    return Phantom(vol, labels[None], info=info)


# -- training data and sample data ---------------------------------------------------------
def random_training_slice(rng: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """One random 2-D training slice drawn from the phantom generators.

    ``kind``: "sax" (short-axis cine MR: lv, myo, rv), "lax" (four/two-chamber MR), "echo"
    (apical a4c/a2c), "ct" (axial or oblique CT plane: all seven structures), or None for a
    random one. Geometry, pose, field of view, contraction, contrast, noise and bias are
    randomised from ``rng``. Returns ``(image (Y, X) float32, labels (Y, X) uint8 in
    DEFAULT_LABEL_MAP values, modality "MR" | "US" | "CT")``; pixels are square, Y and X vary.
    """
    from ._phantom_training import training_slice

    return training_slice(rng, kind)


def phantom_dataset(n: int, seed: int = 0, size: int = 256) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` random training slices on a fixed square canvas.

    Each slice is resized (aspect preserved, longest side -> ``size``; bilinear image,
    nearest labels) and zero-padded to (size, size). Images are uint8, normalised per image
    from the 0.5-99.5 percentiles to 0-255 (CT: window [-250, 750] HU -> 0-255). Kinds cycle
    through "sax", "lax", "echo", "ct" in shuffled order, so every kind appears when n >= 4.
    Returns ``(images (n, size, size) uint8, labels (n, size, size) uint8, modalities)``.
    """
    from ._phantom_training import dataset

    return dataset(_positive_int(n, "n"), seed, _positive_int(size, "size", 16))


def sample_data_cine() -> tuple[Volume, np.ndarray]:
    """Napari sample: a 20-frame, 10-slice short-axis cine (Volume, labels (T, Z, Y, X) uint8)."""
    p = cine_sax_phantom(seed=0)
    return p.image, p.labels


def sample_data_echo() -> tuple[Volume, np.ndarray]:
    """Napari sample: a 16-frame apical four-chamber echo (Volume, labels (T, 1, Y, X) uint8)."""
    p = echo_apical_phantom(view="a4c", n_frames=16, seed=0)
    return p.image, p.labels

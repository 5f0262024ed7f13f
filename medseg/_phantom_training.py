"""Random 2-D phantom slices for training (private; public entry points live in
:mod:`medseg.phantoms`: ``random_training_slice`` and ``phantom_dataset``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._phantom_anatomy import draw_heart, render_sax
from ._phantom_ct import draw_ct_scene, render_ct
from .phantoms import KINDS, _ct_image, _echo, _heart_axes, _lax, _mr_image, _plane

Slice = tuple[np.ndarray, np.ndarray, str]
CT_WINDOW_HU = (-250.0, 750.0)


def _random_shape(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    n = int(rng.integers(lo, hi + 1))
    return n, int(np.clip(round(n * rng.uniform(0.8, 1.25)), 96, 320))


def _sax_slice(rng: np.random.Generator) -> Slice:
    shape = _random_shape(rng, 112, 256)
    sp = rng.uniform(160, 380) / max(shape)
    h = draw_heart(rng, rng.uniform(0.2, 0.75), rng.uniform(0.8, 1.15))
    centre = np.array([shape[1] * sp / 2, shape[0] * sp / 2]) + rng.uniform(-25, 25, 2)
    angle = rng.uniform(-60, 60)
    u, w = _plane(shape, (sp, sp), centre, _heart_axes(angle + 90)[0], _heart_axes(angle + 180)[0])
    z = np.array([rng.uniform(0.0, 0.97 * h.lv_length)])
    tissue, labels = render_sax(rng, h, u, w, z, np.array([rng.uniform(0, 1)]))
    image = _mr_image(rng, tissue, rng.uniform(0.02, 0.12), rng.uniform(0.0, 0.5))
    return image[0, 0], labels[0, 0], "MR"


def _lax_slice(rng: np.random.Generator) -> Slice:
    shape = _random_shape(rng, 128, 256)
    sp = rng.uniform(200, 380) / max(shape)
    view = "a4c" if rng.uniform() < 0.65 else "a2c"
    image, labels, *_ = _lax(rng, shape, sp, 1, view, rng.uniform(0.02, 0.12), rng.uniform(0.0, 0.5), rng.uniform(-50, 30))
    return image[0, 0], labels[0, 0], "MR"


def _echo_slice(rng: np.random.Generator) -> Slice:
    n = int(rng.integers(160, 289))
    shape = (n, int(round(n * rng.uniform(0.95, 1.35))))
    view = "a4c" if rng.uniform() < 0.55 else "a2c"
    img, labels, *_ = _echo(rng, shape, view, 1, 1.0)
    return img[0], labels[0], "US"


def _ct_slice(rng: np.random.Generator) -> Slice:
    n = int(rng.integers(128, 257))
    sc = draw_ct_scene(rng, (300.0, *(2 * [rng.uniform(300, 400)])))
    along = sc.base + sc.axes[2] * rng.uniform(-0.35, 1.0) * sc.heart.lv_length
    zoom = rng.uniform() < 0.5  # cardiac field of view (heart centred) or the whole chest
    sp = (rng.uniform(150, 260) if zoom else rng.uniform(0.85, 1.1) * 2 * 165 * sc.k) / n
    centre = np.array([along[0] if zoom else 0.0, along[1] if zoom else 0.0, along[2]])
    e1, e2 = np.eye(3)[0], np.eye(3)[1]
    ang = np.deg2rad(rng.uniform(-30, 30) if rng.uniform() < 0.35 else rng.uniform(-4, 4))
    ax = np.array([np.cos(t := rng.uniform(0, np.pi)), np.sin(t), 0.0])  # tilt about an in-plane axis
    rot = np.cos(ang) * np.eye(3) + np.sin(ang) * np.cross(np.eye(3), ax) + (1 - np.cos(ang)) * np.outer(ax, ax)
    g = (np.arange(n) - (n - 1) / 2) * sp
    pts = centre + g[None, :, None] * (rot @ e1) + g[:, None, None] * (rot @ e2)
    tissue, labels = render_ct(sc, pts.astype(np.float32))
    return _ct_image(rng, tissue, rng.uniform(10.0, 35.0)), labels, "CT"


_MAKERS: dict[str, Callable[[np.random.Generator], Slice]] = {"sax": _sax_slice, "lax": _lax_slice, "echo": _echo_slice, "ct": _ct_slice}


def training_slice(rng: np.random.Generator, kind: str | None = None) -> Slice:
    """See :func:`medseg.phantoms.random_training_slice`."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if kind is None:
        kind = KINDS[int(rng.integers(len(KINDS)))]
    if kind not in _MAKERS:
        raise ValueError(f"unknown phantom kind {kind!r}; allowed: {', '.join(KINDS)}")
    return _MAKERS[kind](rng)


def to_uint8(image: np.ndarray, modality: str) -> np.ndarray:
    """0-255 uint8: CT window [-250, 750] HU; otherwise the 0.5-99.5 percentile range."""
    lo, hi = CT_WINDOW_HU if modality == "CT" else np.percentile(image, [0.5, 99.5])
    scaled = (image.astype(np.float32) - lo) * (255.0 / max(float(hi - lo), 1e-6))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def fit_square(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize (aspect preserved, longest side -> ``size``) and zero-pad to (size, size), centred."""
    from scipy.ndimage import zoom

    h, w = image.shape
    f = size / max(h, w)
    nh, nw = min(size, max(1, round(h * f))), min(size, max(1, round(w * f)))
    img = zoom(image.astype(np.float32), (nh / h, nw / w), order=1, mode="nearest", grid_mode=True)
    lab = zoom(labels, (nh / h, nw / w), order=0, mode="nearest", grid_mode=True)
    out_i, out_l = np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8)
    y0, x0 = (size - img.shape[0]) // 2, (size - img.shape[1]) // 2
    out_i[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    out_l[y0:y0 + lab.shape[0], x0:x0 + lab.shape[1]] = lab
    return out_i, out_l


def dataset(n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """See :func:`medseg.phantoms.phantom_dataset`."""
    rng = np.random.default_rng(seed)
    kinds = rng.permutation(np.resize(np.array(KINDS), n))
    images = np.zeros((n, size, size), np.uint8)
    labels = np.zeros((n, size, size), np.uint8)
    modalities: list[str] = []
    for i, kind in enumerate(kinds):
        img, lab, mod = training_slice(rng, str(kind))
        images[i], labels[i] = fit_square(to_uint8(img, mod), lab, size)
        modalities.append(mod)
    return images, labels, modalities

"""Intensity normalisation and ROI geometry shared by training and inference.

ROI convention: an ROI is a square ``(x0, y0, x1, y1)`` in **continuous** slice coordinates,
where pixel (row r, column c) covers [c, c+1) x [r, r+1). A box with inclusive pixel-index
corners (y0, x0, y1, x1) covers the continuous square [x0, x1+1) x [y0, y1+1).
Model-input coordinates follow segment-anything: pixel *indices* of the S x S model input
(SAM adds 0.5 itself), so a click on pixel i maps to ``(i + 0.5 - r0) * S / side - 0.5``.
A box maps to what training shows the model: the tight index box of the structure's mask
resampled onto the S x S grid, so its edges (not its edge pixels' centres) are what map:
``x0 -> (x0 - r0) * s`` and ``x1 -> (x1 + 1 - r0) * s - 1`` with ``s = S / side``.
"""

from __future__ import annotations

import numpy as np

CT_WINDOW_HU = (-250.0, 750.0)


def normalize_intensity(array: np.ndarray, modality: str = "OT", percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Map intensities to float32 [0, 1].

    CT uses a fixed cardiac window (-250..750 HU); every other modality uses the
    ``percentiles`` of the whole array (robust to outliers, identical for all slices and frames
    of one study). Non-finite values become 0, and so do float64 values beyond float32's range
    (they are inf in float32; :func:`medseg.io.read_volume` refuses files holding either).
    """
    offset = None if modality == "CT" else _large_offset(np.asarray(array), percentiles)
    if offset is not None:
        return offset
    with np.errstate(over="ignore"):  # 1e300 -> inf, then treated as the non-finite values are (no warning leaks)
        a = np.asarray(array, dtype=np.float32)
    finite = np.isfinite(a)
    if modality == "CT":
        lo, hi = CT_WINDOW_HU
    else:
        vals = a[finite]
        if vals.size > 2_000_000:  # subsample big cines for speed; percentiles barely move
            vals = vals[:: int(np.ceil(vals.size / 2_000_000))]
        lo, hi = (np.percentile(vals, percentiles) if vals.size else (0.0, 1.0))
    scale = 1.0 / max(float(hi) - float(lo), 1e-6)
    out = np.clip((a - np.float32(lo)) * np.float32(scale), 0.0, 1.0)
    out[~finite] = 0.0
    return out.astype(np.float32, copy=False)


def _large_offset(a: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray | None:
    """The normalised image of a wide-typed array (float64, 32/64-bit integers) whose values sit
    on an offset so large that float32 would blur its contrast (float64 + 1e9: myocardium Dice
    0.85 -> 0.71; int64 + 2^40 read as having no contrast), computed in float64; None for every
    other image, which takes the float32 path unchanged."""
    if a.dtype.kind not in "iuf" or a.dtype.itemsize < 4 or a.dtype == np.float32:
        return None
    big = float(np.finfo(np.float32).max)
    flat = a.reshape(-1)
    sample = flat[:: int(np.ceil(flat.size / 2_000_000))] if flat.size > 2_000_000 else flat
    with np.errstate(invalid="ignore"):
        sample = sample.astype(np.float64)
        sample = sample[np.isfinite(sample) & (np.abs(sample) <= big)]
    if not sample.size:
        return None
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    contrast = max(hi - lo, 1e-6)
    if max(abs(lo), abs(hi)) * 2.0**-23 <= 1e-4 * contrast:  # float32's step there is a fraction of the contrast: nothing lost
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        a64 = a.astype(np.float64)
        finite = np.isfinite(a64) & (np.abs(a64) <= big)
        out = np.clip((a64 - lo) / contrast, 0.0, 1.0).astype(np.float32)
    out[~finite] = 0.0
    return out


def box_to_continuous(y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    """Inclusive pixel-index box -> continuous XYXY [x0, y0, x1 + 1, y1 + 1]."""
    return np.array([x0, y0, x1 + 1.0, y1 + 1.0], dtype=np.float64)


def roi_from_box(box_xyxy: np.ndarray, margin: float = 0.25, min_side: float = 32.0) -> np.ndarray:
    """Square ROI around a continuous XYXY box: side = longest box side x (1 + 2 margin),
    at least ``min_side`` pixels, centred on the box. Returns float (x0, y0, x1, y1)."""
    b = np.asarray(box_xyxy, dtype=np.float64)
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    side = max(b[2] - b[0], b[3] - b[1]) * (1.0 + 2.0 * margin)
    side = max(side, min_side)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def full_image_roi(height: int, width: int) -> np.ndarray:
    """The square ROI that shows a whole slice: anchored top-left, side = longest side
    (the image is zero-padded on the right/bottom, as the training canvas is)."""
    side = float(max(height, width))
    return np.array([0.0, 0.0, side, side])


def image_to_model(points_yx: np.ndarray, roi: np.ndarray, size: int) -> np.ndarray:
    """(N, 2) pixel indices (y, x) -> (N, 2) model-input indices (x, y) for an ROI."""
    p = np.asarray(points_yx, dtype=np.float64).reshape(-1, 2)
    side = roi[2] - roi[0]
    s = size / side
    x = (p[:, 1] + 0.5 - roi[0]) * s - 0.5
    y = (p[:, 0] + 0.5 - roi[1]) * s - 0.5
    return np.stack([x, y], axis=1)


def box_to_model(box_yxyx: tuple[float, float, float, float], roi: np.ndarray, size: int) -> np.ndarray:
    """Inclusive pixel-index box (y0, x0, y1, x1) -> model XYXY indices (4,).

    Training prompts with the tight box of the target resampled onto the model grid
    (``medseg.training.prompts.tight_boxes``): its first index sits where the box's left edge
    lands, its last one pixel before where the right edge lands. Mapping the edge pixels'
    centres instead gives a box 0.5 x (s - 1) model pixels smaller on every side when the ROI is
    upsampled by s, and the model follows the box: ACDC LV volumes came out 1-2 % smaller.
    """
    y0, x0, y1, x1 = box_yxyx
    s = size / (roi[2] - roi[0])
    return np.array([(x0 - roi[0]) * s, (y0 - roi[1]) * s, (x1 + 1.0 - roi[0]) * s - 1.0, (y1 + 1.0 - roi[1]) * s - 1.0])

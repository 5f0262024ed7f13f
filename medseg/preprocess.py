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


def hounsfield_problem(array: np.ndarray) -> str | None:
    """Why an image read as CT does not hold Hounsfield units, or None: no value below 0 (air is
    -1000 HU, lung -800, fat -100; every CT field of view holds some). A CT stored without its
    rescale (0-4095, RescaleIntercept -1024 left out, or ``--modality CT`` given for such a file)
    lies above the -250..750 HU window, which clipped it: the CT phantom segmented zero-click at
    LV 0.14 and myocardium 0.00, the myocardium with a confidence of 0.96."""
    a = np.asarray(array)
    lo = float(np.nanmin(a)) if a.size else 0.0
    if not lo >= 0:
        return None
    return (f"holds no negative values ({lo:g} .. {float(np.nanmax(a)):g}): not Hounsfield units "
            f"(air -1000, fat -100 HU), and the CT window {CT_WINDOW_HU[0]:g}..{CT_WINDOW_HU[1]:g} HU would clip it; a CT stored "
            "without its rescale (e.g. 0-4095) needs its RescaleIntercept (e.g. -1024) applied, else give --modality MR or OT")


def normalize_intensity(array: np.ndarray, modality: str = "OT", percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Map intensities to float32 [0, 1].

    CT uses a fixed cardiac window (-250..750 HU); every other modality uses the
    ``percentiles`` of the whole array (robust to outliers, identical for all slices and frames
    of one study). Non-finite values become 0, and so do float64 values beyond float32's range
    (they are inf in float32; :func:`medseg.io.read_volume` refuses files holding either).
    The percentile range is taken as it is, however small (a range below 1e-6 in float64), so
    an image scaled by 1e-30 normalises as the image does; a constant image gives 0.
    """
    offset = None if modality == "CT" else _large_offset(np.asarray(array), percentiles)
    if offset is not None:
        return offset
    with np.errstate(over="ignore"):  # 1e300 -> inf, then treated as the non-finite values are (no warning leaks)
        a = np.array(array, dtype=np.float32)  # always a copy of its own: normalised in place below
    finite = np.isfinite(a) if np.asarray(array).dtype.kind not in "iub" else None  # integers are all finite
    if modality == "CT":
        lo, hi = CT_WINDOW_HU
    else:
        vals = a[finite] if finite is not None else a.reshape(-1)
        if vals.size > 2_000_000:  # subsample big cines for speed; percentiles barely move
            vals = vals[:: int(np.ceil(vals.size / 2_000_000))]
        lo, hi = (np.percentile(vals, percentiles) if vals.size else (0.0, 1.0))
        if not float(hi) - float(lo) >= _MIN_RANGE:  # a tiny range (or none): in float64, at its own scale
            tiny = _in_float64(np.asarray(array), percentiles)
            if tiny is not None:
                return tiny
    scale = 1.0 / max(float(hi) - float(lo), _MIN_RANGE)
    # in place, the same float32 operations as clip((a - lo) * scale, 0, 1): the one volume-sized
    # float32 array is the result (the expression held two more and, for an integer image, a
    # needless mask of finite values: 0.75 GB at 320 x 512 x 512)
    np.subtract(a, np.float32(lo), out=a)
    np.multiply(a, np.float32(scale), out=a)
    np.clip(a, 0.0, 1.0, out=a)
    if finite is not None:
        a[~finite] = 0.0
    return a


#: the intensity range below which the float32 path hands over to float64 (it floored the range
#: here: an image of range 1e-27, scl_slope 1e-30, came out flat and lost the RV)
_MIN_RANGE = 1e-6


def _percentiles64(a: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float] | None:
    """The ``percentiles`` of ``a``'s values that are finite and within float32's range, in
    float64 (a sample of 2 million for big arrays); None when there are none."""
    big = float(np.finfo(np.float32).max)
    flat = a.reshape(-1)
    sample = flat[:: int(np.ceil(flat.size / 2_000_000))] if flat.size > 2_000_000 else flat
    with np.errstate(invalid="ignore", over="ignore"):
        sample = sample.astype(np.float64)
        sample = sample[np.isfinite(sample) & (np.abs(sample) <= big)]
    if not sample.size:
        return None
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    return lo, hi


def _in_float64(a: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray | None:
    """The normalised image of an array whose percentile range is below ``_MIN_RANGE``,
    computed in float64 with that range as it is, so normalising is the same at every scale
    (values of 1e-27 as of 1e3); None when the range is 0 or not finite (a constant image, which
    takes the float32 path as before: 0 where finite)."""
    if a.dtype.kind not in "iuf":
        return None
    lohi = _percentiles64(a, percentiles)
    if lohi is None or not (0.0 < lohi[1] - lohi[0] < np.inf):
        return None
    return _normalise64(a, *lohi)


def _normalise64(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float32 [0, 1] of ``(a - lo) / (hi - lo)`` computed in float64; values that are not finite
    or beyond float32's range become 0."""
    big = float(np.finfo(np.float32).max)
    with np.errstate(invalid="ignore", over="ignore"):
        a64 = a.astype(np.float64)
        finite = np.isfinite(a64) & (np.abs(a64) <= big)
        out = np.clip((a64 - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    out[~finite] = 0.0
    return out


def _large_offset(a: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray | None:
    """The normalised image of a wide-typed array (float64, 32/64-bit integers) whose values sit
    on an offset so large that float32 would blur its contrast (float64 + 1e9: myocardium Dice
    0.85 -> 0.71; int64 + 2^40 read as having no contrast), computed in float64; None for every
    other image, which takes the float32 path unchanged."""
    if a.dtype.kind not in "iuf" or a.dtype.itemsize < 4 or a.dtype == np.float32:
        return None
    lohi = _percentiles64(a, percentiles)
    if lohi is None:
        return None
    lo, hi = lohi
    contrast = hi - lo if hi - lo > 0 else _MIN_RANGE  # the real range, however small (a constant image: as before)
    if max(abs(lo), abs(hi)) * 2.0**-23 <= 1e-4 * contrast:  # float32's step there is a fraction of the contrast: nothing lost
        return None
    return _normalise64(a, lo, lo + contrast)


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

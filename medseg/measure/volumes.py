"""Volumes, function and body-size indexing (formulas of docs/measurement.md).

All volumes are in mL, masses in g, BSA in m^2, cardiac output in L/min.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .geometry import MeasurementError, StackGeometry

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
BSA_METHODS = ("mosteller", "dubois")


def slice_areas_mm2(mask: np.ndarray, geom: StackGeometry) -> np.ndarray:
    """(Z,) in-plane area (mm^2) of a (Z, Y, X) mask per slice.

    Boolean masks count voxels; float masks in [0, 1] (probabilities) are summed.
    """
    m = np.asarray(mask)
    per_slice = m.reshape(m.shape[0], -1).sum(axis=1, dtype=np.float64)
    return per_slice * geom.pixel_area_mm2


def volume_ml(mask: np.ndarray, geom: StackGeometry, exclude_slices: Iterable[int] = ()) -> float:
    """Volume (mL) of a (Z, Y, X) mask: sum over slices of area x slice weight / 1000.

    For a uniform stack this equals voxel count x voxel volume / 1000; with uneven slice
    positions each slice carries its centre-to-centre weight. ``exclude_slices`` are left out
    (e.g. basal slices failing the SCMR 50% rule).
    """
    contrib = slice_areas_mm2(mask, geom) * geom.weights_mm / 1000.0
    keep = np.ones(len(contrib), dtype=bool)
    keep[list(exclude_slices)] = False
    return float(contrib[keep].sum())


def lv_mass_g(myo_volume_ml: float) -> float:
    """LV mass (g) = myocardial volume (mL) x 1.05 g/mL."""
    return float(myo_volume_ml) * MYOCARDIAL_DENSITY_G_PER_ML


#: Heights and weights outside these are taken for a unit slip (mm, m, inches; g, lb) and refused.
HEIGHT_RANGE_CM = (30.0, 250.0)
WEIGHT_RANGE_KG = (1.0, 350.0)
HEART_RATE_RANGE_BPM = (20.0, 300.0)


def bsa_m2(height_cm: float | None, weight_kg: float | None, method: str = "mosteller") -> float:
    """Body surface area (m^2); NaN when height or weight is missing.

    Mosteller: sqrt(H x W / 3600); DuBois: 0.007184 x W^0.425 x H^0.725 (H in cm, W in kg).
    180 cm, 80 kg -> 2.000 (Mosteller), 1.996 (DuBois).
    """
    if method not in BSA_METHODS:
        raise MeasurementError(f"unknown BSA method {method!r}; allowed: {', '.join(BSA_METHODS)}")
    if height_cm is None or weight_kg is None:
        return math.nan
    h, w = float(height_cm), float(weight_kg)
    if not (h > 0 and w > 0 and math.isfinite(h) and math.isfinite(w)):
        raise MeasurementError(f"height and weight must be positive, got {h} cm and {w} kg")
    if not HEIGHT_RANGE_CM[0] <= h <= HEIGHT_RANGE_CM[1]:
        raise MeasurementError(f"height {h:g} cm is outside {HEIGHT_RANGE_CM[0]:g}-{HEIGHT_RANGE_CM[1]:g} cm: is it in centimetres?")
    if not WEIGHT_RANGE_KG[0] <= w <= WEIGHT_RANGE_KG[1]:
        raise MeasurementError(f"weight {w:g} kg is outside {WEIGHT_RANGE_KG[0]:g}-{WEIGHT_RANGE_KG[1]:g} kg: is it in kilograms?")
    if method == "mosteller":
        return math.sqrt(h * w / 3600.0)
    return 0.007184 * w**0.425 * h**0.725


def report_bsa(height_cm: float | None, weight_kg: float | None, method: str = "mosteller") -> float:
    """:func:`bsa_m2` for a report: NaN when neither height nor weight is given; a height without
    a weight, or the reverse, is a one-line :class:`MeasurementError` (the report's BSA and
    indexed values would be NaN without a word; ``medseg measure`` refuses it too)."""
    if (height_cm is None) != (weight_kg is None):
        given, other = (f"height ({_shown(height_cm)} cm)", "weight") if weight_kg is None else (f"weight ({_shown(weight_kg)} kg)", "height")
        raise MeasurementError(f"a {given} without a {other}: body surface area needs both (give both, or neither for no BSA)")
    return bsa_m2(height_cm, weight_kg, method)


def _shown(value: Any) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return repr(value)


def function_from_volumes(edv_ml: float, esv_ml: float) -> dict[str, float]:
    """``{"edv_ml", "esv_ml", "sv_ml", "ef_pct"}``; EF is NaN when EDV is 0 or NaN."""
    edv, esv = float(edv_ml), float(esv_ml)
    sv = edv - esv
    ef = 100.0 * sv / edv if (math.isfinite(edv) and edv > 0) else math.nan
    return {"edv_ml": edv, "esv_ml": esv, "sv_ml": sv, "ef_pct": ef}


def atrium(max_ml: float, min_ml: float) -> dict[str, float]:
    """``{"max_ml", "min_ml", "emptying_fraction_pct"}`` of an atrium: its volume at LV ES
    (``max_ml``) and at LV ED (``min_ml``); the total emptying fraction 100 (max - min) / max is
    NaN when the maximum is 0 or NaN (an atrium labelled in one phase only), and when the atrium
    is smaller at LV ES than at LV ED (a clip cut short, a segmentation error: no emptying to
    state; the console, the study page and the CSV said "-6.2 %")."""
    mx, mn = float(max_ml), float(min_ml)
    ef = 100.0 * (mx - mn) / mx if (math.isfinite(mx) and mx > 0 and not mn > mx) else math.nan
    return {"max_ml": mx, "min_ml": mn, "emptying_fraction_pct": ef}


def heart_rate_bpm(heart_rate: float | None = None, nominal_interval_ms: float | None = None) -> float:
    """Heart rate (beats/min) from the user's value or DICOM NominalInterval (60000 / RR ms)."""
    if heart_rate is not None:
        hr = float(heart_rate)
        if not (hr > 0 and math.isfinite(hr)):
            raise MeasurementError(f"heart rate must be positive, got {heart_rate}")
        if not HEART_RATE_RANGE_BPM[0] <= hr <= HEART_RATE_RANGE_BPM[1]:
            raise MeasurementError(f"heart rate {hr:g} is outside {HEART_RATE_RANGE_BPM[0]:g}-{HEART_RATE_RANGE_BPM[1]:g} beats/min")
        return hr
    if nominal_interval_ms is not None:
        rr = float(nominal_interval_ms)
        if not (rr > 0 and math.isfinite(rr)):
            raise MeasurementError(f"the RR interval (NominalInterval) must be positive, got {nominal_interval_ms} ms")
        hr = 60000.0 / rr
        if not HEART_RATE_RANGE_BPM[0] <= hr <= HEART_RATE_RANGE_BPM[1]:
            raise MeasurementError(f"an RR interval of {rr:g} ms is a heart rate of {hr:g} beats/min, outside "
                                   f"{HEART_RATE_RANGE_BPM[0]:g}-{HEART_RATE_RANGE_BPM[1]:g}: is it in milliseconds?")
        return hr
    return math.nan


def cardiac_output_l_min(sv_ml: float, hr_bpm: float) -> float:
    """CO (L/min) = SV (mL) x HR (1/min) / 1000; NaN when either is unknown."""
    return float(sv_ml) * float(hr_bpm) / 1000.0


def detect_ed_es(curve_ml: np.ndarray, exclude: Iterable[int] = ()) -> tuple[int | None, int | None]:
    """(ED, ES) frame indices of a volume curve: ED = maximum, ES = minimum.

    NaN entries (unlabelled frames) and the frames of ``exclude`` (volume outliers,
    :func:`medseg.measure.qc.volume_outlier_frames`) are ignored; ``(None, None)`` when no
    other frame has a positive volume. Never assumes ED = frame 0.
    """
    c = np.asarray(curve_ml, dtype=np.float64)
    valid = np.isfinite(c) & (c > 0)
    valid[[t for t in exclude if 0 <= t < c.size]] = False
    if not valid.any():
        return None, None
    masked_max = np.where(valid, c, -np.inf)
    masked_min = np.where(valid, c, np.inf)
    return int(np.argmax(masked_max)), int(np.argmin(masked_min))


def indexed(values: dict[str, float], bsa: float) -> dict[str, float]:
    """Each value divided by BSA (m^2); keys get a ``_m2`` suffix (e.g. lv_edv_ml_m2)."""
    ok = math.isfinite(bsa) and bsa > 0
    return {f"{k}_m2": (float(v) / bsa if ok else math.nan) for k, v in values.items()}

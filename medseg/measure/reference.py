"""Normal ranges used for reference-range flags (mean +/- 2 SD unless a range is published).

Sources (docs/measurement.md): UK Biobank CMR normals, Petersen et al., JCMR 2017
(papillary muscles in the blood pool): LVEF women 61 +/- 5 %, men 58 +/- 5 %; LV mass index
men 53 +/- 9, women 42 +/- 7 g/m^2; RVEF men 56 +/- 6 %, women 59 +/- 6 %; RV EDV index men
90 +/- 15, women 78 +/- 12 mL/m^2 (the RV values were entered without a copy of the paper at hand:
check them against its table). Echo (Lang et al., JASE 2015): biplane LVEF men 52-72 %,
women 54-74 %; LA volume index 16-34 mL/m^2.
"""

from __future__ import annotations

import math
from typing import Any

from .qc import digits_apart, make_flag

SEXES = ("male", "female")
#: the ranges below are adults' (UK Biobank: 45-74 years; Lang 2015: adults). A body shorter than
#: this (about a 10-year-old's) is taken for a child's and gets no range flag (:func:`adult_ranges_only`)
ADULT_MIN_HEIGHT_CM = 140.0

# key -> (flag stem, unit, {sex: (low, high)}, source)
REFERENCE_RANGES: dict[str, tuple[str, str, dict[str, tuple[float, float]], str]] = {
    "cmr_lvef_pct": ("lvef", "%", {"male": (48.0, 68.0), "female": (51.0, 71.0)}, "UK Biobank CMR adults (Petersen 2017), mean +/- 2 SD"),
    "cmr_lv_mass_index_g_m2": ("lv_mass_index", "g/m^2", {"male": (35.0, 71.0), "female": (28.0, 56.0)}, "UK Biobank CMR adults (Petersen 2017), mean +/- 2 SD"),
    "cmr_rvef_pct": ("rvef", "%", {"male": (44.0, 68.0), "female": (47.0, 71.0)}, "UK Biobank CMR adults (Petersen 2017), mean +/- 2 SD"),
    "cmr_rv_edv_index_ml_m2": ("rv_edv_index", "mL/m^2", {"male": (60.0, 120.0), "female": (54.0, 102.0)}, "UK Biobank CMR adults (Petersen 2017), mean +/- 2 SD"),
    "echo_lvef_pct": ("lvef", "%", {"male": (52.0, 72.0), "female": (54.0, 74.0)}, "ASE/EACVI adults (Lang 2015)"),
    "echo_lavi_ml_m2": ("la_volume_index", "mL/m^2", {"male": (16.0, 34.0), "female": (16.0, 34.0)}, "ASE/EACVI adults (Lang 2015)"),
}


def normal_range(key: str, sex: str | None = None) -> tuple[float, float]:
    """(low, high) of a reference range; unknown sex -> the union of both sexes' ranges."""
    if key not in REFERENCE_RANGES:
        raise KeyError(f"unknown reference range {key!r}; known: {', '.join(REFERENCE_RANGES)}")
    ranges = REFERENCE_RANGES[key][2]
    if sex is not None:
        return ranges[check_sex(sex)]
    return (min(r[0] for r in ranges.values()), max(r[1] for r in ranges.values()))


def check_sex(sex: str | None) -> str | None:
    """Normalise "M"/"F"/"male"/"female" (any case); None stays None."""
    if sex is None:
        return None
    s = str(sex).strip().lower()
    mapped = {"m": "male", "male": "male", "f": "female", "female": "female"}.get(s)
    if mapped is None:
        from .geometry import MeasurementError

        raise MeasurementError(f"unknown sex {sex!r}; allowed: M, F, male, female")
    return mapped


def range_flag(key: str, value: float, sex: str | None = None, **where: Any) -> list[dict]:
    """``<stem>_low`` / ``<stem>_high`` flag when ``value`` is outside the normal range."""
    if value is None or not math.isfinite(float(value)):
        return []
    stem, unit, _, source = REFERENCE_RANGES[key]
    low, high = normal_range(key, sex)
    who = sex if sex else "either sex (sex not given)"
    if value < low:
        side = "low"
    elif value > high:
        side = "high"
    else:
        return []
    d = digits_apart(float(value), low if side == "low" else high, 1)  # 47.96 is not "48.0" below 48
    word = "below" if side == "low" else "above"
    return [make_flag(f"{stem}_{side}", f"{stem.replace('_', ' ')} {value:.{d}f} {unit} is {word} the normal range {low:g}-{high:g} {unit} for {who} ({source})",
                      severity="info", value=round(float(value), max(2, d)), normal_range=[low, high], reference=key, **where)]


def adult_ranges_only(flags: list[dict], height_cm: float | None) -> list[dict]:
    """``flags`` as they are for an adult's height (or none given); for a height below
    :data:`ADULT_MIN_HEIGHT_CM` (a child's) without the reference-range flags, which compare with
    adults' ranges (a 6-year-old's BSA-indexed LV mass and volumes against UK Biobank's), plus one
    info flag ``reference_ranges_not_applied`` saying so: medseg has no paediatric ranges (z-scores
    by BSA and age)."""
    if height_cm is None or not float(height_cm) < ADULT_MIN_HEIGHT_CM:
        return flags
    kept = [f for f in flags if f.get("reference") not in REFERENCE_RANGES]
    left = sorted({f["code"] for f in flags} - {f["code"] for f in kept})
    return kept + [make_flag("reference_ranges_not_applied", f"height {float(height_cm):g} cm is a child's (below {ADULT_MIN_HEIGHT_CM:g} cm): "
                             "medseg's normal ranges are adults' and were not applied"
                             + (f" ({', '.join(left)} left out)" if left else "")
                             + "; paediatric ranges (z-scores by BSA and age) are not in medseg", severity="info", height_cm=float(height_cm))]

"""Fields of a report or cohort row as :mod:`medseg.measure.compare` reads them (a helper module):
flags, measures, scanner, numbers and label maps, each tolerant of what a hand-edited table holds."""

from __future__ import annotations

import math
from typing import Any


def _text_flags(text: str) -> list[dict[str, str]]:
    """cohort.csv's ``flags`` cell (``code(structure=lv,slice=0);code``) as flag dicts."""
    out = []
    for part in filter(None, text.split(";")):
        code, _, where = part.partition("(")
        out.append({"code": code, **dict(kv.split("=", 1) for kv in where.rstrip(")").split(",") if "=" in kv)})
    return out


def _is_qc(flag: dict[str, Any]) -> bool:
    """A QC warning that bears on the compared measures (an absent RV or LA that is only info is not)."""
    from .compare import QC_CODES

    if flag.get("code") not in QC_CODES or flag.get("severity", "warning") != "warning":
        return False
    return flag.get("code") != "absent_structure" or flag.get("structure") in ("lv", "myo", "rv")


def _values(row: dict[str, Any]) -> dict[str, float]:
    from .compare import MEASURES

    out = {}
    for k in MEASURES:
        try:
            v = float(row.get(k))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[k] = v
    return out


def _scanner(record: dict[str, Any]) -> dict[str, str]:
    """The scanner fields of a report's ``inputs.study`` or a cohort row (:data:`medseg.io.dicom_meta.SCANNER_TAGS`),
    as text (a field strength as a number's text: 3.0 in a report and "3" in a cohort row are one)."""
    from ..io.dicom_meta import SCANNER_TAGS

    out = {}
    for k in SCANNER_TAGS:
        v = record.get(k)
        if v not in (None, ""):
            out[k] = f"{t:g}" if k == "field_strength_t" and (t := _number(v)) is not None else str(v).strip()
    return out


def _number(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _floats(v: Any) -> list[float] | None:
    try:
        return [float(x) for x in v] if isinstance(v, (list, tuple)) and v else None
    except (TypeError, ValueError):
        return None


def _int_map(m: dict[str, Any]) -> dict[str, int]:
    out = {}
    for k, v in m.items():
        try:
            out[str(k)] = int(float(v))
        except (TypeError, ValueError):
            continue
    return out

"""Flatten a measurement report into one CSV row (cohort tables: one row per study)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._files import write_text_atomic

_SKIP = {"phases", "volume_curve_ml", "volume_curve_rel", "slices", "lv_coverage_pct", "slice_positions_mm", "frame_times_s", "flags", "notes"}


def report_row(report: dict[str, Any]) -> dict[str, Any]:
    """``{"lv.edv_ml": .., "wall_thickness_mm.segments.1.mean": .., "flags": "code@slice;..."}``.

    Nested dicts become dotted keys; per-slice lists and curves are left out; NaN -> "".
    """
    row: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k not in _SKIP:
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(obj, (list, tuple)):
            row[prefix] = " ".join(str(_cell(v)) for v in obj)
        else:
            row[prefix] = _cell(obj)

    walk("", report)
    flags = report.get("flags", [])
    row["n_flags"] = len(flags)
    row["flags"] = ";".join(_flag_text(f) for f in flags)
    return row


def _flag_text(f: dict[str, Any]) -> str:
    where = [f"{k}={f[k]}" for k in ("structure", "phase", "frame", "slice") if k in f]
    return f["code"] + (f"({','.join(where)})" if where else "")


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else round(v, 4)
    return "" if v is None else v


def write_csv(report: dict[str, Any], path: str | Path) -> Path:
    """Write ``report_row(report)`` as a two-line CSV (header + values), atomically."""
    from .._files import csv_text

    row = report_row(report)
    return write_text_atomic(path, csv_text(list(row), [row]))

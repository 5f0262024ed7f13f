"""Clinical measurements on label maps + geometry: volumes, EF, mass, wall thickness and systolic
thickening (AHA), echo volumes, QC flags, reports and plots. Pure functions; no torch, no GUI/CLI
toolkits.

Main entry points (imported lazily)::

    measure_phase(labels, affine, label_map) -> dict        # one (Z, Y, X) phase
    measure_ed_es(labels_ed, labels_es, affine, label_map, height_cm=.., weight_kg=..) -> dict
    measure_cine(labels, affine, label_map, frame_times_s=..) -> dict  # (T, Z, Y, X)
    measure_echo(a4c_ed, a4c_es, a2c_ed, a2c_es, spacing_a4c_mm=.., spacing_a2c_mm=..) -> dict
    measure_echo_clip(labels_tyx, spacing_mm=..) -> dict      # one apical view over the cycle
    measure_echo_biplane_clips(a4c_tyx, a2c_tyx, spacing_a4c_mm=.., spacing_a2c_mm=..) -> dict  # two views over the cycle

See docs/measurement.md for methods and conventions.
"""

from __future__ import annotations

import typing as _typing  # underscored: dir() lists the API only

if _typing.TYPE_CHECKING:  # what mypy / pyright see of the lazy names below (never imported at run time); keep in step with _LAZY
    from .aha import aha_segment as aha_segment
    from .aha import wall_thickening as wall_thickening
    from .aha import wall_thickness as wall_thickness
    from .echo import measure_echo as measure_echo
    from .echo import measure_echo_clip as measure_echo_clip
    from .echo_clips import measure_echo_biplane_clips as measure_echo_biplane_clips
    from .export import report_row as report_row
    from .export import write_csv as write_csv
    from .geometry import MeasurementError as MeasurementError
    from .geometry import StackGeometry as StackGeometry
    from .geometry import detect_base as detect_base
    from .geometry import stack_geometry as stack_geometry
    from .plots import bullseye_png as bullseye_png
    from .plots import overlay_png as overlay_png
    from .plots import thickening_png as thickening_png
    from .plots import volume_curve_png as volume_curve_png
    from .reference import normal_range as normal_range
    from .report import combine_ed_es as combine_ed_es
    from .report import measure_cine as measure_cine
    from .report import measure_ed_es as measure_ed_es
    from .report import measure_phase as measure_phase
    from .volumes import bsa_m2 as bsa_m2
    from .volumes import detect_ed_es as detect_ed_es
    from .volumes import function_from_volumes as function_from_volumes
    from .volumes import volume_ml as volume_ml

_LAZY = {
    "measure_phase": "report", "measure_ed_es": "report", "measure_cine": "report", "combine_ed_es": "report",
    "measure_echo": "echo", "measure_echo_clip": "echo", "measure_echo_biplane_clips": "echo_clips", "bsa_m2": "volumes", "volume_ml": "volumes", "function_from_volumes": "volumes",
    "detect_ed_es": "volumes", "stack_geometry": "geometry", "StackGeometry": "geometry", "detect_base": "geometry",
    "MeasurementError": "geometry", "aha_segment": "aha", "wall_thickness": "aha", "wall_thickening": "aha", "report_row": "export",
    "write_csv": "export", "volume_curve_png": "plots", "bullseye_png": "plots", "thickening_png": "plots", "overlay_png": "plots",
    "normal_range": "reference",
}

__all__ = sorted(_LAZY)


def __dir__() -> list[str]:  # a notebook's tab completion lists the lazy names too
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

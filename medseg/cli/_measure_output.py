"""What `medseg measure` writes besides the report's numbers: the review's implausibility flags
added to the report (:func:`_add_implausible`), the PNGs of ``--plots`` (overlay on the images
the labels were segmented from or ``--image``, bullseye, thickening, volume curve; of two echo
clips each view's own) and the one-line summary printed at the end. Helpers of
:mod:`medseg.cli.measure_cmd`; numbers come from :mod:`medseg.measure`, and plotting is
imported only when plots are drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import shown
from ..errors import MedsegError
from ..review import add_implausible as _add_implausible  # noqa: F401 (measure_cmd's name, as before)
from ._app import stdout


def _sr_context(path: Path | None, paths: list[Path], outputs: dict[str, Path | None]) -> Any:
    """``--dicom-sr``: its name checked and the labels' DICOM study found (or refused) before any work; None without it."""
    if path is None:
        return None
    from ..io.sr_writer import check_sr_output, sr_context

    check_sr_output(path, outputs, {f"labels {p}": p for p in paths})
    return sr_context(paths)


def _build_sr(report: dict, context: Any, path: Path) -> Any:
    """The SR of ``report``; the report records it (``dicom_sr``: path, UIDs, values without a standard code)."""
    from ..io.sr_writer import build_measurement_sr, sr_record

    sr, left = build_measurement_sr(report, context)
    report["dicom_sr"] = sr_record(sr, path, left)
    return sr


def _all_flags(report: dict) -> list[dict]:
    """The report's flags and its phases' (an ED + ES report keeps each phase's own)."""
    flags = list(report.get("flags") or [])
    for phase in (report.get("phases") or {}).values():
        if isinstance(phase, dict):
            flags += phase.get("flags") or []
    return flags


def _write_plots(report: dict, folder: Path, phases: dict, frames: dict, lmap: Any, vol: Any, image: list[Path] | None) -> None:
    from ..measure import plots as P
    from ..measure.echo import is_echo_report
    from ..measure.source_images import overlay_images

    given = "image" in report["inputs"]
    try:
        images = overlay_images(image, vol, frames) if image else None
    except MedsegError:
        if given:
            raise
        images = None  # the sidecars' images moved or changed: contours alone, as without --image
    folder.mkdir(parents=True, exist_ok=True)
    if images and not given:
        report["inputs"]["overlay_image"] = [str(p[0]) for p in image]  # found through the labels' sidecars
    echo = is_echo_report(report)
    written = {"overlay": P.overlay_png(phases, lmap, folder / "overlay.png", images=images, spacing_yx=tuple(report["spacing_mm"][1:]) if report.get("spacing_mm") else (1.0, 1.0),
                                        frames=frames)}
    if not echo:
        written["bullseye"] = P.bullseye_png(report["wall_thickness_mm"], folder / "bullseye.png")
        if _finite((report.get("wall_thickening_pct") or {}).get("global")):  # ED + ES, both measured
            written["thickening"] = P.thickening_png(report["wall_thickening_pct"], folder / "thickening.png")
    if report.get("volume_curve_ml"):  # a cine, or one apical view over the cycle
        written["volume_curve"] = P.volume_curve_png(report, folder / "volume_curve.png")
    elif echo and report.get("clips"):  # two clips (--a2c): each view's own single-plane curve, relative to its ED
        from ..measure.clip_plots import clip_curves_png, has_clip_curves

        if has_clip_curves(report):
            written["volume_curve"] = clip_curves_png(report, folder / "volume_curve.png")
    elif not echo and "lv" in report and "edv_ml" in report.get("lv", {}):
        written["volume_curve"] = P.volume_curve_png(report, folder / "volumes.png")
    report["plots"] = {k: str(v) for k, v in written.items()}


def _summary(report: dict, output: Path) -> None:
    parts = []
    from ..measure.echo import echo_method_text, is_echo_report

    if is_echo_report(report):
        lv = report["lv"]
        method = echo_method_text(report["method"])
        if report.get("spacing_known"):
            parts.append(f"LV EDV {_v(lv['edv_ml'], ' mL')}, ESV {_v(lv['esv_ml'], ' mL')}, EF {_v(lv['ef_pct'], '%', _ef_bounds(report['flags']))} ({method})")
        else:
            parts.append(f"LV EF {_v(lv['ef_pct'], '%', _ef_bounds(report['flags']))} ({method}; no pixel spacing: volumes not reported; --pixel-spacing ROW_MM[,COL_MM] gives them)")
        if "ed_frame" in report:
            es_frame = report["es_frame"]
            parts.append(f"ED frame {report['ed_frame']}, ES frame {'n/a' if es_frame is None else es_frame}")
        for view, c in (report.get("clips") or {}).items():  # two clips, biplane: each view's own frames
            parts.append(f"{'4' if view == 'a4c' else '2'}-chamber clip ED frame {c['ed_frame']}, ES frame {'n/a' if c['es_frame'] is None else c['es_frame']}")
        parts += _atria_text(report)
        parts.append(_flags_text(report["flags"]))
        stdout.print(f"{'; '.join(parts)} -> {shown(output)}", markup=False, highlight=False, soft_wrap=True)
        return
    if "lv" in report:
        lv = report["lv"]
        parts.append(f"LV EDV {_v(lv['edv_ml'], ' mL')}, ESV {_v(lv['esv_ml'], ' mL')}, EF {_v(lv['ef_pct'], '%', _ef_bounds(report['flags']))}")
        rv = report.get("rv") or {}
        if "rv" in report.get("label_map", {}) and _finite(rv.get("edv_ml")):  # an RV labelled at ED
            rv_frames, lv_frames = (report.get("rv_ed_frame"), report.get("rv_es_frame")), (report.get("ed_frame"), report.get("es_frame"))
            frames = (f" (its own ED frame {rv_frames[0]}, ES frame {rv_frames[1]}; the LV's {lv_frames[0]}, {lv_frames[1]})"
                      if rv_frames[1] is not None and rv_frames != lv_frames else "")  # a cine: the RV on its own curve
            parts.append(f"RV EDV {_v(rv['edv_ml'], ' mL')}, ESV {_v(rv['esv_ml'], ' mL')}, EF {_v(rv['ef_pct'], '%', _ef_bounds(report['flags'], 'rvef_'))}{frames}")
    else:
        parts.append(f"LV {_v(report['volumes_ml'].get('lv'), ' mL')}")
    parts.append(f"mass {_v(report['lv_mass_g'], ' g')}")
    parts += _atria_text(report)
    parts.append(_flags_text(report["flags"]))
    stdout.print(f"{'; '.join(parts)} -> {shown(output)}", markup=False, highlight=False, soft_wrap=True)


def _atria_text(report: dict) -> list[str]:
    """The atria of an ED + ES, cine or echo report for the summary line: the maximum (at LV ES),
    minimum (at LV ED), emptying fraction and the LA's index, each where it is known."""
    out = []
    for name, a in (report.get("atria") or {}).items():
        mx, mn = a.get("max_ml"), a.get("min_ml")
        if _finite(mx) and _finite(mn) and mx < mn:  # a truncated clip: smaller at LV ES than at LV ED, no emptying to state
            said = [f"{_v(mx, ' mL')} at LV ES", f"{_v(mn, ' mL')} at LV ED (smaller at LV ES: no emptying fraction)"]
        else:
            said = [f"max {_v(mx, ' mL')}"] if _finite(mx) else []
            said += [f"min {_v(mn, ' mL')}"] if _finite(mn) and said else []
            said += [f"emptying fraction {_v(a['emptying_fraction_pct'], '%')}"] if _finite(a.get("emptying_fraction_pct")) else []
        index = (report.get("indexed") or {}).get("la_volume_ml_m2" if is_echo(report) else f"{name}_max_ml_m2")
        said += [f"index {_v(index, ' mL/m^2')}"] if _finite(index) else []
        if said:
            out.append(f"{name.upper()} {', '.join(said)}")
    return out


def is_echo(report: dict) -> bool:
    from ..measure.echo import is_echo_report

    return is_echo_report(report)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and np.isfinite(v)


def _v(v: Any, unit: str, bounds: Sequence[float] = ()) -> str:
    """A number and its unit for the summary line; "n/a" where it is undefined (NaN, None).
    One decimal, more where one would print it at a flagged ``bounds`` value (an EF of 47.96
    "48.0%" next to lvef_low)."""
    from ..measure.qc import digits_apart

    return f"{v:.{max([1, *(digits_apart(float(v), b, 1) for b in bounds)])}f}{unit}" if _finite(v) else "n/a"


def _ef_bounds(flags: list, stem: str = "lvef_") -> list[float]:
    """The range limits the EF flags compare it with (lvef_low / lvef_high; ``stem`` "rvef_": the RV's)."""
    return [float(b) for f in flags if str(f.get("code", "")).startswith(stem) for b in f.get("normal_range", [])]


def _flags_text(flags: list) -> str:
    """"7 flags (esv_exceeds_edv x2, incomplete_coverage x4, lvef_low)": what to look at, in one line."""
    from collections import Counter

    counts = Counter(f.get("code", "?") for f in flags)
    codes = ", ".join(f"{c} x{n}" if n > 1 else c for c, n in sorted(counts.items()))
    return f"{len(flags)} flag{'s' if len(flags) != 1 else ''}" + (f" ({codes})" if codes else "")

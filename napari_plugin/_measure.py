"""Qt-free logic of the measurement panel: run :mod:`medseg.measure` on label layers, turn
the report into table rows, draw the volume curve and the AHA bullseye on a matplotlib
``Figure`` (the panel shows it with ``FigureCanvasQTAgg``; the drawing is
:mod:`medseg.measure.plots`', shared with the report PNGs), and export CSV / JSON.

Which measurement runs (:func:`measure_labels`):

* an ES label layer is given: ``measure_ed_es`` (the first layer is ED);
* two or more frames of a cine label layer hold labels: ``measure_cine`` (ED = largest LV
  volume, ES = smallest, over the labelled frames);
* one labelled frame (a 3-D study): ``measure_phase`` (volumes, mass, wall thickness);
* labels with one slice (an apical echo view, a long-axis cine): with an ES layer
  ``measure_echo`` (single-plane disks), or over two or more labelled frames
  ``measure_echo_clip`` (the curve, ED/ES on it); EF even without pixel spacing.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import META_PROVENANCE, as_4d, has_default_rows

SEGMENT_NAMES = {1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
                 5: "basal inferolateral", 6: "basal anterolateral", 7: "mid anterior", 8: "mid anteroseptal",
                 9: "mid inferoseptal", 10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
                 13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral", 17: "apex"}


def _opt(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) and float(v) > 0 else None


def measure_labels(labels: np.ndarray, like: Any, label_map: Any, es_labels: np.ndarray | None = None, *,
                   digest_of: Mapping[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """Measure label layer data on the image geometry ``like`` (a Volume): :func:`_measure_any`'s
    report with ``inputs.label_map``, ``inputs.settings`` (:data:`PANEL_SETTINGS`, the basal rule;
    ``pixel_spacing`` for a pixel size given in the panel) and ``inputs.spacing_from``, as
    ``medseg measure`` reports them (:mod:`medseg_napari._pixel_size`),
    and ``inputs.labels_sha256`` (:func:`labels_digests`) of ``digest_of`` (report key -> the
    layer's labels, as the layer holds them; default: ``labels`` and ``es_labels``)."""
    from medseg.labels import LabelMap

    from ._pixel_size import spacing_inputs

    report = _measure_any(labels, like, label_map, es_labels, **options)
    spacing = spacing_inputs(like)
    report["inputs"] = {**(report.get("inputs") or {}), "label_map": LabelMap.parse(label_map).to_string(), **spacing,
                        "settings": {**PANEL_SETTINGS, "basal_rule": bool(options.get("basal_rule", True)),
                                     "clip": report.get("mode") == "echo_clip", **spacing.get("settings", {})},
                        "labels_sha256": labels_digests(digest_of or ({"labels": labels} if es_labels is None else {"ed": labels, "es": es_labels}))}
    return report


#: ``inputs.settings`` of a panel measurement: ``medseg measure``'s defaults, which the panel
#: measures with (no choice of AHA method, base, interpolation), its basal rule, and ``clip`` for one view over
#: the cycle (``medseg measure --clip`` of the file the panel saves)
PANEL_SETTINGS = {"aha_method": "uniform", "base": "auto", "interpolate_missing": False, "basal_rule": True, "clip": False}


def labels_digests(arrays: Mapping[str, Any]) -> dict[str, str]:
    """The report's ``inputs.labels_sha256``: the digest (:func:`medseg.batch.kept.labels_sha256`,
    of the 4-D labels) of each label array measured, keyed as ``medseg measure`` keys its files
    ("labels", or "ed" and "es"): an export says which labels its numbers are of, and the panel
    refuses to export them once the layers no longer hold those labels (:func:`stale_labels`)."""
    from medseg.batch.kept import labels_sha256

    return {k: labels_sha256(as_4d(np.asarray(a))) for k, a in arrays.items()}


def stale_labels(report: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The keys of ``current`` (report key -> the label array now in its layer) whose labels are
    not those ``report`` was measured from (``inputs.labels_sha256``; a report recording none
    is taken as current)."""
    recorded = (report.get("inputs") or {}).get("labels_sha256")
    if not isinstance(recorded, Mapping):
        return []
    now = labels_digests(current)
    return [k for k in current if recorded.get(k) != now[k]]


def _measure_any(labels: np.ndarray, like: Any, label_map: Any, es_labels: np.ndarray | None = None, *,
                 height_cm: float | None = None, weight_kg: float | None = None, heart_rate: float | None = None,
                 sex: str | None = None, basal_rule: bool = True) -> dict[str, Any]:
    """Measure label layer data on the image geometry ``like`` (a Volume).

    Args:
        labels: (T, Z, Y, X), (Z, Y, X) or (Y, X) label values of ``label_map``.
        es_labels: optional end-systolic labels on the same grid (``labels`` is then ED).
        height_cm, weight_kg: for BSA and indexed values (None or 0 = not given: those a DICOM
            image's header records, if any; ``sex`` likewise).
        heart_rate: beats/min for cardiac output (None: the image's DICOM HeartRate, else its
            NominalInterval, when known).
        basal_rule: the SCMR 50% rule at the base of a short-axis stack; False (axial CT labels,
            whose LV volume is all its voxels) counts every LV slice and adds the info flag
            ``basal_rule_off``, as ``medseg measure --no-basal-rule``.
    Returns:
        The medseg report dict plus ``"mode"`` ("ed_es", "cine", "phase", "echo" or "echo_clip").
    """
    from medseg.measure import measure_cine, measure_ed_es, measure_phase
    from medseg.measure.geometry import MeasurementError
    from medseg.measure.report import check_lv_measured, heart_rate_options

    body = (like.meta or {}).get("patient_body") or {}  # a DICOM image's PatientSize / Weight / Sex
    h, w = _opt(height_cm) or body.get("height_cm"), _opt(weight_kg) or body.get("weight_kg")
    sex = sex or body.get("sex")
    timing = heart_rate_options(like, _opt(heart_rate))  # heart_rate= or nominal_interval_ms=
    arr = as_4d(np.asarray(labels))
    sex = sex or None
    for what, a in (("label layer", arr), ("ES label layer", es_labels)):
        if a is not None and not np.asarray(a).any():
            raise MeasurementError(f"the {what} is empty: segment something first")
    if arr.shape[1] < 2:
        return _measure_apical(arr, like, label_map, es_labels, h, w, sex)
    if not getattr(like, "spacing_known", True):
        raise MeasurementError("this image has no physical pixel size (PNG/video): volumes in mL cannot be measured")
    if es_labels is not None:
        es = as_4d(np.asarray(es_labels))
        rep = measure_ed_es(_one_frame(arr, "ED"), _one_frame(es, "ES"), like.affine, label_map, height_cm=h,
                            weight_kg=w, sex=sex, basal_rule=basal_rule, **timing)
        check_lv_measured(rep, label_map)  # another data set's values (the RV read as the LV): say so
        return {**_basal_rule_said(rep, basal_rule), "mode": "ed_es"}
    labelled = [t for t in range(arr.shape[0]) if arr[t].any()]
    if len(labelled) >= 2:
        rep = measure_cine(arr, like.affine, label_map, frame_times_s=like.frame_times_s, height_cm=h, weight_kg=w,
                           sex=sex, basal_rule=basal_rule, **timing)
        check_lv_measured(rep, label_map)
        return {**_basal_rule_said(rep, basal_rule), "mode": "cine", "labelled_frames": labelled}
    rep = _basal_rule_said(measure_phase(arr[labelled[0]], like.affine, label_map, basal_rule=basal_rule), basal_rule)
    check_lv_measured(rep, label_map)
    rep.update({"mode": "phase", "frame": labelled[0]})
    if h and w:
        from medseg.measure import bsa_m2

        bsa = bsa_m2(h, w)
        rep["bsa_m2"] = bsa
        rep["indexed"] = {"lv_mass_g_m2": rep["lv_mass_g"] / bsa if bsa > 0 else math.nan}
    return rep


def _basal_rule_said(report: dict[str, Any], basal_rule: bool) -> dict[str, Any]:
    """``report`` with the info flag ``basal_rule_off`` when the panel's basal rule was unticked."""
    if not basal_rule:
        from medseg.measure.qc import basal_rule_off_flag

        report.setdefault("flags", []).append(basal_rule_off_flag("basal rule unticked"))
    return report


def _measure_apical(arr: np.ndarray, like: Any, label_map: Any, es_labels: np.ndarray | None, h: float | None,
                    w: float | None, sex: str | None) -> dict[str, Any]:
    """One slice per frame (an apical view): method of disks, single plane."""
    from medseg.measure.echo import measure_echo, measure_echo_clip
    from medseg.measure.geometry import MeasurementError

    spacing = (float(like.spacing[1]), float(like.spacing[2])) if getattr(like, "spacing_known", True) else None
    body = {"label_map": label_map, "height_cm": h, "weight_kg": w, "sex": sex}
    if es_labels is not None:
        es = as_4d(np.asarray(es_labels))
        rep = measure_echo(_one_frame(arr, "ED")[0], _one_frame(es, "ES")[0], spacing_a4c_mm=spacing, **body)
        return {**rep, "mode": "echo"}
    labelled = [t for t in range(arr.shape[0]) if arr[t].any()]
    if len(labelled) < 2:
        raise MeasurementError("these labels are one 2-D view: label the LV on two or more frames (ED and ES, or the "
                               "whole cycle), or give an ES label layer")
    rep = measure_echo_clip(arr[:, 0], spacing_mm=spacing, frame_times_s=like.frame_times_s, **body)
    return {**rep, "mode": "echo_clip", "labelled_frames": labelled}


def echo_names_problem(ed_name: str, es_name: str) -> str | None:
    """Why ED and ES label layers named as apical views (``<study>_<4CH|2CH>_<ED|ES>``, as
    CAMUS names its files, with ``_gt`` or `` labels`` after it) are not one view's ED and ES,
    or None: a 2-chamber ES beside a 4-chamber ED reads as a plausible EF (``medseg measure``
    refuses the same by file name)."""
    from medseg.batch.cases import labels_echo_view

    ed, es = labels_echo_view(ed_name), labels_echo_view(es_name)
    for name, view, phase in ((ed_name, ed, "ED"), (es_name, es, "ES")):
        if view is not None and view[2] != phase:
            return f"{name!r} is named the {view[1][0]}-chamber {view[2]} view, but is measured as {phase}: check the layers chosen"
    if ed is not None and es is not None and ed[1] != es[1]:
        return (f"{ed_name!r} is the {ed[1][0]}-chamber view and {es_name!r} the {es[1][0]}-chamber one: "
                "measure ED and ES of one view (biplane: medseg measure --a2c-ed/--a2c-es)")
    from medseg._nfc import nfc

    if ed is not None and es is not None and nfc(ed[0]) != nfc(es[0]):  # one study's files named on a Mac (NFD) and elsewhere (NFC)
        return f"{ed_name!r} and {es_name!r} are named for different studies ({ed[0]}, {es[0]}): choose one study's layers"
    return None


def _one_frame(arr: np.ndarray, what: str) -> np.ndarray:
    labelled = [t for t in range(arr.shape[0]) if arr[t].any()]
    if len(labelled) > 1:
        from medseg.measure.geometry import MeasurementError

        raise MeasurementError(f"the {what} label layer holds {len(labelled)} labelled frames; give one phase per layer")
    return arr[labelled[0] if labelled else 0]


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "–" if not math.isfinite(f) else f"{f:.{digits}f}"


def summary_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, value, unit) rows for the panel's main table: LV function and mass first."""
    rows: list[tuple[str, str, str]] = []
    idx = report.get("indexed") or {}

    def finite(v: Any) -> bool:
        return v is not None and math.isfinite(v)

    def function(name: str) -> list[tuple[str, str, str]]:
        fn, up = report.get(name), name.upper()
        if not isinstance(fn, Mapping):
            return []
        return [(f"{up} EDV", _fmt(fn.get("edv_ml")), "mL"), (f"{up} ESV", _fmt(fn.get("esv_ml")), "mL"),
                (f"{up} SV", _fmt(fn.get("sv_ml")), "mL"), (f"{up} EF", _fmt(fn.get("ef_pct")), "%")]

    rows += function("lv")
    if str(report.get("mode", "")).startswith("echo"):
        from medseg.measure.echo import echo_method_text

        rows.append(("Method", echo_method_text(report.get("method", "")), ""))
        if finite(report.get("la_volume_ml")):
            rows.append(("LA volume (at LV ES)", _fmt(report["la_volume_ml"]), "mL"))
        if finite(idx.get("la_volume_ml_m2")):
            rows.append(("LA volume index", _fmt(idx["la_volume_ml_m2"]), "mL/m²"))
        rows += atria_rows(report, with_max=False)
        if not report.get("spacing_known"):
            rows.append(("Volumes", "no pixel spacing: EF only", ""))
        elif (report.get("inputs") or {}).get("spacing_from") == "--pixel-spacing":
            rows.append(("Pixel size (given)", " x ".join(f"{v:g}" for v in report["inputs"]["settings"]["pixel_spacing"]), "mm"))
        if report.get("ed_frame") is not None:
            rows.append(("ED / ES frame", f"{report['ed_frame']} / {_frame(report.get('es_frame'))}", ""))
        return rows
    if report.get("mode") == "phase":
        rows += [(f"{n.upper()} volume", _fmt(v), "mL") for n, v in (report.get("volumes_ml") or {}).items() if finite(v)]
    rows.append(("LV mass", _fmt(report.get("lv_mass_g")), "g"))
    if finite(idx.get("lv_mass_g_m2")):
        rows.append(("LV mass index", _fmt(idx["lv_mass_g_m2"]), "g/m²"))
    wt = report.get("wall_thickness_mm") or {}
    rows += [("Wall thickness, mean", _fmt(wt.get("global_mean")), "mm"), ("Wall thickness, max", _fmt(wt.get("global_max")), "mm")]
    if finite((report.get("wall_thickening_pct") or {}).get("global")):
        rows.append(("Wall thickening, ED to ES", _fmt(report["wall_thickening_pct"]["global"]), "%"))
    for name in ("lv", "rv"):
        for key, label in (("edv_ml", "EDV"), ("esv_ml", "ESV")):
            if finite(idx.get(f"{name}_{key}_m2")):
                rows.append((f"{name.upper()} {label} index", _fmt(idx[f"{name}_{key}_m2"]), "mL/m²"))
    rows += function("rv")
    rows += atria_rows(report)
    if finite(report.get("bsa_m2")):
        rows.append(("BSA", _fmt(report["bsa_m2"], 2), "m²"))
    if finite(report.get("co_l_min")):
        rows.append(("Cardiac output", _fmt(report["co_l_min"], 2), "L/min"))
    if report.get("ed_frame") is not None:
        rows.append(("ED / ES frame", f"{report['ed_frame']} / {_frame(report.get('es_frame'))}", ""))
        rv_frames = (report.get("rv_ed_frame"), report.get("rv_es_frame"))
        if rv_frames[0] is not None and rv_frames != (report["ed_frame"], report.get("es_frame")):  # the RV's own curve
            rows.append(("RV ED / ES frame", f"{rv_frames[0]} / {_frame(rv_frames[1])}", ""))
    return rows


def atria_rows(report: Mapping[str, Any], with_max: bool = True) -> list[tuple[str, str, str]]:
    """(quantity, value, unit) rows of the report's ``atria``: maximum (at LV ES), minimum (at
    LV ED), emptying fraction and maximum index, where known (echo: the maximum is its own row)."""
    rows: list[tuple[str, str, str]] = []
    idx = report.get("indexed") or {}
    for name, a in (report.get("atria") or {}).items():
        up = name.upper()
        for key, label, unit in (("max_ml", "max (at LV ES)", "mL"), ("min_ml", "min (at LV ED)", "mL"),
                                 ("emptying_fraction_pct", "emptying fraction", "%")):
            v = a.get(key)
            if (with_max or key != "max_ml") and v is not None and math.isfinite(v):
                rows.append((f"{up} {label}", _fmt(v), unit))
        v = idx.get(f"{name}_max_ml_m2")
        if v is not None and math.isfinite(v):
            rows.append((f"{up} max index", _fmt(v), "mL/m²"))
    return rows


def _frame(t: Any) -> str:
    return "n/a (one frame labelled)" if t is None else str(t)


def segment_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(segment, name, mean mm, max mm, systolic thickening %) for the 17 AHA segments (the
    thickness at ED for ED + ES and cines; thickening "–" for one phase)."""
    segs = (report.get("wall_thickness_mm") or {}).get("segments") or {}
    thick = (report.get("wall_thickening_pct") or {}).get("segments") or {}
    return [(str(k), SEGMENT_NAMES[k], _fmt((segs.get(str(k)) or {}).get("mean")), _fmt((segs.get(str(k)) or {}).get("max")),
             _fmt(thick.get(str(k)))) for k in range(1, 18)]


def flag_lines(report: Mapping[str, Any], unlabelled: Iterable[str] = ()) -> tuple[list[str], int]:
    """(the Flags tab's lines, how many flags they list one by one). The flags about a structure
    of ``unlabelled`` (in the label map, on no frame of the layers: nobody segmented it; a
    session names lv, myo, rv, la, ra) are folded into one last line: their ``absent_structure``
    per phase and RV ``ef_undefined`` were 7 of an LV + MYO cine's 12 flags (the report and its
    export keep them all, as ``medseg measure`` reports them)."""
    out, folded, skip = [], Counter(), set(unlabelled)
    for f in report.get("flags") or []:
        if f.get("structure") in skip:
            folded[f.get("code")] += 1
            continue
        where = ", ".join(f"{k} {f[k]}" for k in ("structure", "phase", "frame", "slice") if k in f)
        out.append(f"{f.get('code')}{f' ({where})' if where else ''}: {f.get('message', '')}")
    n = len(out)
    if folded:
        names = ", ".join(sorted({str(f.get("structure")).upper() for f in report.get("flags") or [] if f.get("structure") in skip}))
        out.append(f"{sum(folded.values())} more about {names}, labelled on no frame (not segmented): "
                   f"{', '.join(f'{c} x{k}' for c, k in folded.items())} (in the export)")
    return out, n


#: the narrowest panel whose text stays readable in the dock (a bullseye's 17 values at 7 pt,
#: its colour bar and title): narrower canvases stack the panels
PANEL_MIN_PX = 240


def plot_panels(report: Mapping[str, Any]) -> int:
    """How many plots :func:`draw_report` draws: the volumes (curve or bars), then the wall
    thickness bullseye and, for ED + ES and cines, the thickening one (apical views: the volumes only)."""
    if str(report.get("mode", "")).startswith("echo"):
        return 1
    return 3 if report.get("wall_thickening_pct") else 2


def plot_layout(report: Mapping[str, Any], width_px: float) -> tuple[int, int]:
    """(columns, height px) of the panel's figure on a canvas ``width_px`` wide: the plots side
    by side when each gets :data:`PANEL_MIN_PX`, else the volumes on top (full width) and the
    bullseyes below, side by side or one per row; the height keeps the bullseyes round and
    their values readable (the dock scrolls when it is shorter)."""
    n = plot_panels(report)
    width = max(float(width_px), 1.0)
    cols = max(1, min(n, int(width // PANEL_MIN_PX)))
    if n == 1:
        return 1, int(np.clip(0.5 * width, 200, 300))
    if cols == n:  # one row
        return cols, int(np.clip(0.85 * width / n + 40, 230, 340))
    bulls = n - 1
    per_row = max(1, min(bulls, cols))
    rows = -(-bulls // per_row)
    row_h = float(np.clip(0.8 * width / per_row + 30, 210, 320))
    return per_row, int(190 + rows * row_h)


def draw_report(fig: Any, report: Mapping[str, Any], columns: int | None = None) -> None:
    """Draw the volume curve (or ED/ES bars, or per-structure volumes) and the AHA bullseye of
    wall thickness, and for ED + ES that of systolic thickening, on a matplotlib Figure
    (cleared first, constrained layout), with the Axes-level functions of
    :mod:`medseg.measure.plots` that also draw the report PNGs (compact style).

    Args:
        columns: plots per row (:func:`plot_layout`); None: from the figure's width. With
            fewer columns than plots the volumes take the first row, the bullseyes the rows below.
    """
    from medseg.measure.plots import as_bullseye_values, draw_bullseye, draw_volumes

    fig.clear()
    fig.set_layout_engine("constrained")
    n = plot_panels(report)
    if columns is None:
        columns = plot_layout(report, fig.get_figwidth() * fig.dpi)[0]
    columns = max(1, min(int(columns), n))
    if columns == n:
        grid, spots = fig.add_gridspec(1, n), [(0, k) for k in range(n)]
    else:
        rows = 1 + -(-(n - 1) // columns)
        grid = fig.add_gridspec(rows, columns, height_ratios=[0.8] + [1.0] * (rows - 1))
        spots = [(0, slice(None))] + [(1 + k // columns, k % columns) for k in range(n - 1)]
    axes = iter(spots)  # each added when drawn: fig.axes = plot, bullseye, its colour bar, ...
    volumes = fig.add_subplot(grid[next(axes)])
    draw_volumes(volumes, _relative_bars(report), compact=True)
    if report.get("mode") == "echo" and not report.get("spacing_known"):
        volumes.set_ylabel("volume (% of EDV)")
    _two_line_ticks(volumes)
    if n == 1:
        return
    wt = report.get("wall_thickness_mm") or {}
    ed = report.get("ed_frame")  # a cine's wall thickness is ED's: say so over an empty bullseye
    draw_bullseye(fig.add_subplot(grid[next(axes)]), wt, compact=True, title=f"Wall thickness (global {_fmt(wt.get('global_mean'))} mm)",
                  empty_note=f"No myocardium at ED (frame {ed}): no wall thickness" if ed is not None else None)
    if n == 3:
        thickening = report["wall_thickening_pct"]
        draw_bullseye(fig.add_subplot(grid[next(axes)]), as_bullseye_values(thickening), compact=True, quantity="thickening",
                      title=f"Wall thickening (global {_fmt(thickening.get('global'))} %)")


def _relative_bars(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """An apical ED + ES report without pixel spacing (no volumes in mL) with its LV bars in %
    of EDV (ED 100, ES 100 - EF), as an echo clip's curve is drawn: in mL they were an empty plot."""
    lv = report.get("lv")
    if report.get("mode") != "echo" or report.get("spacing_known") or not isinstance(lv, Mapping):
        return report
    ef = lv.get("ef_pct")
    if ef is None or not math.isfinite(ef):
        return report
    return {**report, "lv": {**lv, "edv_ml": 100.0, "esv_ml": 100.0 - float(ef)}}


def in_use(label_map: Any, present: Any, metadata: Mapping[str, Any] | None = None) -> Any:
    """medseg's default map (lv=1 ... pa=7, the map of labels that name no structures) cut to lv,
    myo, rv and the structures whose values ``present`` holds, as ``medseg measure`` does: a
    short-axis stack has no aorta to flag ``absent_structure``. Any other map is returned as is.
    With the label layer's ``metadata``: :func:`segmented_map` of its session's actions and the
    panel's mark of its default rows, the map a save of the layer writes.

    Args:
        label_map: the LabelMap to measure with; present: the label values in the layers."""
    from medseg.labels import DEFAULT_LABEL_MAP

    if metadata is not None:
        prov = metadata.get(META_PROVENANCE)
        return segmented_map(label_map, present, prov.get("actions") if isinstance(prov, Mapping) else None, has_default_rows(metadata))
    if {k: v for k, v in label_map.values.items() if not k.startswith("label")} != DEFAULT_LABEL_MAP.values:
        return label_map
    return label_map.in_use(present)


def segmented_map(label_map: Any, present: Any, actions: Any = None, default_rows: bool = False) -> Any:
    """The map of what was segmented: medseg's default map (lv=1 ... pa=7), or the segment panel's
    untouched default rows (lv ... ra, ``default_rows``: the panel marks them; an LV-only
    session's file got absent LA and RA flags from ``medseg measure``), cut to lv, myo, rv, the
    structures whose values ``present`` holds and those the session's ``actions`` asked for (a
    structure prompted and not found stays, as in ``medseg segment``'s map; a replay finds every
    structure it names). Any other map (rows the user added, a map of their own or a file's, even
    with the default values) is returned as it is. A save writes it, the Measure panel measures it."""
    from medseg._session_replay import structures_in_log

    cut = label_map.in_use(present) if default_rows else in_use(label_map, present)
    if cut is label_map:
        return label_map
    named = structures_in_log(actions)
    return label_map.subset([n for n in label_map.names if n in cut.values or n in named])


def axial_note(like: Any, basal_rule: bool) -> str:
    """What the status line adds for CT labels on an axial stack (slices not across the LV long
    axis): their wall thickness and 17 segments are in-plane numbers, not AHA segments
    (docs/measurement.md, Known limits), and, with the basal rule on, that it is meant for short-axis
    stacks; "" for any other stack (or one slice). ``like``: the labels' Volume (its modality:
    the image's; an MR short-axis NIfTI, as ACDC's, often carries an axial affine, so MR is never
    taken for axial)."""
    from medseg.io.geometry import orientation

    if getattr(like, "modality", None) != "CT" or like.n_slices < 2 or orientation(like.affine).get("plane") != "axial":
        return ""
    note = ("Axial stack: wall thickness and the 17 segments are in-plane numbers, not AHA segments "
            "(they assume a short-axis stack).")
    if basal_rule:
        note += " The basal rule is for short-axis stacks: untick it to count every LV slice, as CT volumes are defined."
    return note


def default_map_note(label_map: Any, present: Any) -> str:
    """What the status line adds when a layer that names no structures (another tool's file) is
    measured with medseg's values, as ``medseg measure`` notes without ``--label-map``.

    Args:
        label_map: the LabelMap measured with; present: the label values in the layers."""
    values = ",".join(f"{k}={v}" for k, v in label_map.values.items() if v in {int(x) for x in present})
    return (f"These labels name no structures: read with medseg's values ({values}); for another data set's "
            "values type its Label map (ACDC lv=3,myo=2,rv=1; CAMUS lv=1,myo=2,la=3).")


def _two_line_ticks(ax: Any) -> None:
    """"LV (EF 60%)" bar labels as "LV" over "EF 60%": side by side they ran into each other."""
    labels = [t.get_text() for t in ax.get_xticklabels()]
    if any(" (EF " in t for t in labels):
        ax.set_xticks(ax.get_xticks(), [t.replace(" (EF ", "\nEF ").removesuffix(")") for t in labels])


def export_report(report: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write the report as ``.json`` (full, NaN -> null) or ``.csv`` (one flattened row)."""
    from medseg._files import write_json_atomic
    from medseg.errors import MedsegError
    from medseg.measure import write_csv

    p = Path(path)
    if p.suffix.lower() == ".json":
        return write_json_atomic(p, dict(report))
    if p.suffix.lower() == ".csv":
        return write_csv(dict(report), p)
    raise MedsegError(f"cannot export a report to {p.name!r}: use a .json or .csv file name")

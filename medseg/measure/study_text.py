"""The words of the study page (:mod:`medseg.measure.study_pdf`), built from a report: the table's
rows with units, indexed values and normal ranges, the header's lines, the cautions, the QC flags
and the model's confidences. Plain functions of the report dict, no matplotlib."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the numbers table: what, value + unit, BSA-indexed value + unit, normal range
    (with its unit), and "low" / "high" when the report flags the value outside that range."""

    measure: str
    value: str
    indexed: str = ""
    normal: str = ""
    mark: str = ""


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _get(report: Mapping[str, Any], *path: str) -> Any:
    cur: Any = report
    for k in path:
        cur = cur.get(k) if isinstance(cur, Mapping) else None
    return cur


def _fmt(v: Any, unit: str, nd: int = 1) -> str:
    x = _num(v)
    return "" if x is None else f"{x:.{nd}f} {unit}".rstrip()


def _ranges(report: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
    """reference key -> "low"/"high" from the report's range flags, and whether ranges apply
    (no ``reference_ranges_not_applied``: a child's height)."""
    flags = [f for f in report.get("flags") or [] if isinstance(f, Mapping)]
    marks = {str(f["reference"]): str(f.get("code", "")).rsplit("_", 1)[-1] for f in flags if f.get("reference")}
    return marks, not any(f.get("code") == "reference_ranges_not_applied" for f in flags)


def _normal(key: str | None, report: Mapping[str, Any], applies: bool) -> str:
    if key is None:
        return ""
    if not applies:
        return "not applied (child)"
    from ..errors import MedsegError
    from .reference import REFERENCE_RANGES, check_sex, normal_range

    try:
        sex = check_sex(report.get("sex"))
    except MedsegError:  # a report edited into another sex: the union, as without one
        sex = None
    lo, hi = normal_range(key, sex)
    unit = REFERENCE_RANGES[key][1].replace("^2", "²")
    return f"{lo:g}–{hi:g} {unit}"


def number_rows(report: Mapping[str, Any]) -> list[Row]:
    """The table's rows: the numbers the report has (null / NaN ones left out), in clinical order.

    Short-axis ED + ES or cine: LV and RV EDV, ESV, SV, EF, LV mass, cardiac output, heart rate,
    atria, global wall thickness and thickening, BSA; one phase: each structure's volume and the
    LV mass; echo: LV volumes and EF (EF alone without pixel spacing) and the LA."""
    marks, applies = _ranges(report)
    idx = report.get("indexed") or {}
    rows: list[Row] = []

    def add(name: str, v: Any, unit: str, index_key: str | None = None, index_unit: str = "mL/m²", ref: str | None = None, nd: int = 1) -> None:
        text = _fmt(v, unit, nd)
        if not text:
            return
        ranged = ref is not None and (_num(idx.get(index_key)) is not None if ref.endswith("_m2") else True)
        rows.append(Row(name, text, _fmt(idx.get(index_key), index_unit, nd) if index_key else "",
                        _normal(ref, report, applies) if ranged else "", marks.get(ref, "") if ref else ""))

    from .echo import is_echo_report

    echo = is_echo_report(report)
    cmr = "cmr_"
    for name in ("lv", "rv"):
        fn = report.get(name)
        if not isinstance(fn, Mapping):
            continue
        n = name.upper()
        add(f"{n} end-diastolic volume", fn.get("edv_ml"), "mL", f"{name}_edv_ml_m2", ref=f"{cmr}rv_edv_index_ml_m2" if name == "rv" else None)
        add(f"{n} end-systolic volume", fn.get("esv_ml"), "mL", f"{name}_esv_ml_m2")
        add(f"{n} stroke volume", fn.get("sv_ml"), "mL", f"{name}_sv_ml_m2")
        add(f"{n} ejection fraction", fn.get("ef_pct"), "%", ref=("echo_lvef_pct" if echo else f"{cmr}{name}ef_pct"))
        if name == "lv" and not echo:
            add("LV mass", report.get("lv_mass_g"), "g", "lv_mass_g_m2", "g/m²", f"{cmr}lv_mass_index_g_m2")
    if "lv" not in report and not echo:  # one phase
        for s, v in (report.get("volumes_ml") or {}).items():
            add(f"{str(s).upper()} volume (one phase)", v, "mL")
        add("LV mass", report.get("lv_mass_g"), "g")
    add("Cardiac output", report.get("co_l_min"), "L/min", "ci_l_min_m2", "L/min/m²", nd=2)
    add("Heart rate", report.get("heart_rate_bpm"), "bpm", nd=0)
    for name, a in (report.get("atria") or {}).items():
        if not isinstance(a, Mapping):
            continue
        n = str(name).upper()
        key = "la_volume_ml_m2" if echo and name == "la" else f"{name}_max_ml_m2"
        add(f"{n} maximum volume (LV ES)", a.get("max_ml"), "mL", key, ref="echo_lavi_ml_m2" if echo and name == "la" else None)
        add(f"{n} minimum volume (LV ED)", a.get("min_ml"), "mL")
        add(f"{n} emptying fraction", a.get("emptying_fraction_pct"), "%")
    if not echo:
        add("Wall thickness, global mean", _get(report, "wall_thickness_mm", "global_mean"), "mm")
        add("Wall thickness, global max", _get(report, "wall_thickness_mm", "global_max"), "mm")
        add("Systolic thickening, global", _get(report, "wall_thickening_pct", "global"), "%")
    if _num(report.get("bsa_m2")) is not None:
        rows.append(Row("Body surface area", _fmt(report["bsa_m2"], "m²", 2), str(report.get("bsa_method") or "").capitalize()))
    return rows


def file_word(key: Any, report: Mapping[str, Any] | None = None) -> str:
    """A label file's report key in words: ``ed`` -> "ED", ``a2c_es`` -> "A2C ES", ``labels`` -> "labels";
    of a biplane report from two clips (``report`` with ``clips``): "A4C clip" and "A2C clip"."""
    if report is not None and report.get("clips") and key in _CLIP_WORDS:
        return _CLIP_WORDS[key]
    return "labels" if key == "labels" else str(key).replace("_", " ").upper()


#: the label files of ``medseg measure A4C_CLIP --a2c A2C_CLIP`` in words
_CLIP_WORDS = {"labels": "A4C clip", "a2c": "A2C clip"}


def case_name(report: Mapping[str, Any], case: str | None = None) -> str:
    """The page's case: ``case``, else the DICOM patient id, else the first label file's name
    without its extensions."""
    if case:
        return str(case)
    pid = _get(report, "inputs", "study", "patient_id")
    if pid:
        return str(pid)
    inputs = report.get("inputs") or {}
    for key in ("labels", "ed", "a2c_ed"):
        if inputs.get(key):
            name = Path(str(inputs[key])).name
            return name.split(".")[0] or name
    return "study"


def study_kind(report: Mapping[str, Any], modality: str | None = None) -> str:
    """What was measured, in words: an echo method, a cine with its ED/ES frames, ED + ES, one phase."""
    from .echo import echo_method_text, is_echo_report

    where = {"MR": "CMR", "CT": "CT", "US": "Echo"}.get(str(modality or ""), "")
    if is_echo_report(report):
        frames = (f", {len(report['volume_curve_ml'].get('lv') or [])}-frame clip (ED frame {report.get('ed_frame')}, ES frame {report.get('es_frame')})"
                  if report.get("volume_curve_ml") else "")
        for view, c in (report.get("clips") or {}).items():  # two clips (measure --a2c): each view's own frames
            es = "n/a" if c.get("es_frame") is None else c.get("es_frame")
            frames += f", {view.upper()} clip of {c.get('n_frames')} frames (ED frame {c.get('ed_frame')}, ES frame {es})"
        return f"Echo, {echo_method_text(str(report.get('method')))}{frames}"
    stack = f"{where} short-axis stack" if where else "Short-axis stack"
    if report.get("volume_curve_ml"):
        n = max((len(c) for c in report["volume_curve_ml"].values() if isinstance(c, list)), default=0)
        es = report.get("es_frame")
        return f"{stack}, cine of {n} frames (LV ED frame {report.get('ed_frame')}, ES frame {'n/a' if es is None else es})"
    if isinstance(report.get("lv"), Mapping):
        return f"{stack}, end-diastolic and end-systolic phases"
    return f"{stack}, one phase"


def shown_date(value: Any) -> str:
    """A DICOM date (YYYYMMDD) as 2012-03-07; an anonymised one with month or day 00
    (Sunnybrook's 20120000) as far as it is known, 2012; anything else as it is."""
    text = str(value).strip()
    if len(text) != 8 or not text.isdigit():
        return text
    y, m, d = text[:4], text[4:6], text[6:]
    if not 1 <= int(m) <= 12:
        return y
    return f"{y}-{m}" if not 1 <= int(d) <= 31 else f"{y}-{m}-{d}"


def header_lines(report: Mapping[str, Any], modality: str | None = None, written: str | None = None) -> list[str]:
    """The header's lines under the title: patient and study, what was measured, the label files,
    the model (+ adapter), medseg's version and when the report and the page were made, the body."""
    inputs = report.get("inputs") or {}
    study = inputs.get("study") or {}
    lines = []
    who = [f"Patient {study['patient_id']}" if study.get("patient_id") else "", f"study date {shown_date(study['study_date'])}" if study.get("study_date") else "",
           str(study.get("series_description") or ""),
           " ".join(str(study[k]) for k in ("manufacturer", "manufacturer_model") if study.get(k))
           + (f" {study['field_strength_t']:g} T" if _num(study.get("field_strength_t")) else "")]
    if any(who):
        lines.append(" · ".join(w.strip() for w in who if w.strip()))
    lines.append(study_kind(report, modality))
    files = [f"{file_word(k, report)}: {Path(str(inputs[k])).name}"
             for k in ("labels", "ed", "es", "a2c_ed", "a2c_es", "a2c") if inputs.get(k)]
    if files:
        lines.append("Label files: " + ", ".join(files))
    lines.append(model_text(inputs.get("segmentation"), report))
    made = [f"medseg {inputs['medseg_version']}" if inputs.get("medseg_version") else "medseg",
            f"measured {inputs['created']}" if inputs.get("created") else "", f"page written {written}" if written else ""]
    lines.append(", ".join(m for m in made if m))
    body = [f"height {report['height_cm']:g} cm" if _num(report.get("height_cm")) else "",
            f"weight {report['weight_kg']:g} kg" if _num(report.get("weight_kg")) else "",
            f"sex {report['sex']}" if report.get("sex") else ("sex not given" if "sex" in report else "")]
    if any(body):
        lines.append("Body: " + ", ".join(b for b in body if b))
    return lines


def model_text(segmentation: Any, report: Mapping[str, Any] | None = None) -> str:
    """"Segmented by model M + adapter A" (per file when they differ), or that no model made them."""
    seg = {k: v for k, v in (segmentation or {}).items() if isinstance(v, Mapping)}
    if not seg:
        return "Segmentation: labels not made by a medseg model (drawn by hand or imported): no model confidence"
    said = {}
    for k, m in seg.items():
        text = f"model {m.get('model_id') or '?'}" + (f" + adapter {m['adapter_id']}" if m.get("adapter_id") else " (no adapter)")
        said.setdefault(text, []).append(file_word(k, report))
    if len(said) == 1:
        return f"Segmentation: {next(iter(said))}"
    return "Segmentation: " + "; ".join(f"{', '.join(ks)} by {t}" for t, ks in said.items())


def caution_lines(report: Mapping[str, Any]) -> list[str]:
    """What to read before the numbers: labels edited by hand since medseg wrote them, a model's
    segmentation flagged for review, implausible numbers, a geometry note, slices the DICOM series
    lacked (``inputs.missing_slices``) and an echo screen's ultrasound region note; one line each."""
    inputs = report.get("inputs") or {}
    out = []
    if inputs.get("labels_edited"):
        which = ", ".join(file_word(k, report) for k in inputs["labels_edited"])
        out.append(f"Labels edited by hand since medseg wrote them ({which}): the model, confidences and review flags "
                   "recorded with them are those of the labels before the edit.")
    review = [k for k, m in (inputs.get("segmentation") or {}).items() if isinstance(m, Mapping) and m.get("needs_review")]
    if review:
        out.append(f"Needs review: medseg flagged the segmentation ({', '.join(file_word(k, report) for k in review)}); "
                   "check the contours before using these numbers.")
    bad = [f for f in report.get("flags") or [] if isinstance(f, Mapping) and str(f.get("code", "")).endswith("_implausible")]
    out += [f"Implausible: {f.get('message') or f.get('code')}" for f in bad]
    if inputs.get("geometry_note"):
        out.append(f"Geometry: {inputs['geometry_note']}")
    if missing := missing_slices_line(report):
        out.append(missing)
    us = inputs.get("us_region_note")
    if us:
        out.append(f"Ultrasound region: {'; '.join(map(str, us)) if isinstance(us, list) else us}")
    return out


def missing_slices_line(report: Mapping[str, Any]) -> str:
    """The caution of slices the labels' DICOM series lacked (``inputs.missing_slices``, read as
    blank slices on which nothing is segmented: :mod:`medseg.io.dicom_gaps`): which (in all frames
    of a cine), and what the volumes make of them (no area, or the area interpolated between the
    slices either side under ``medseg measure --interpolate-missing``); one line, "" without any."""
    got = (report.get("inputs") or {}).get("missing_slices")
    zs = [z for z in got if isinstance(z, int) and not isinstance(z, bool)] if isinstance(got, list) else []
    if not zs:
        return ""
    one = len(zs) == 1
    which = f"Slice{' ' if one else 's '}{', '.join(map(str, zs))}{' (all frames)' if report.get('volume_curve_ml') else ''} {'is' if one else 'are'}"
    it = "it" if one else "them"
    if _get(report, "inputs", "settings", "interpolate_missing") is True:
        return f"{which} missing from the DICOM series: volumes bridge {it} with interpolated area (--interpolate-missing)."
    return f"{which} missing from the DICOM series: volumes count no area on {it} (--interpolate-missing fills {it})."


def flag_lines(report: Mapping[str, Any]) -> list[str]:
    """The QC flags in words, warnings first, each message once; the range flags as one line
    (the table marks them) and the implausible ones left to the cautions."""
    flags = [f for f in report.get("flags") or [] if isinstance(f, Mapping)]
    ranged = [f for f in flags if f.get("reference")]
    rest = [f for f in flags if not f.get("reference") and not str(f.get("code", "")).endswith("_implausible")]
    rest.sort(key=lambda f: f.get("severity") != "warning")
    out, seen = [], set()
    for f in rest:
        msg = str(f.get("message") or f.get("code") or "")
        if msg and msg not in seen:
            seen.add(msg)
            out.append(f"{'Warning' if f.get('severity') == 'warning' else 'Note'}: {msg}")
    if ranged:
        out.append("Outside the normal range (marked in the table): "
                   + ", ".join(f"{_RANGE_NAMES.get(str(f['reference']), str(f['reference']))} {str(f.get('code', '')).rsplit('_', 1)[-1]}" for f in ranged))
    return out or ["No QC flags."]


#: the reference ranges' names in words
_RANGE_NAMES = {"cmr_lvef_pct": "LVEF", "cmr_lv_mass_index_g_m2": "LV mass index", "cmr_rvef_pct": "RVEF", "cmr_rv_edv_index_ml_m2": "RV EDV index",
                "echo_lvef_pct": "LVEF", "echo_lavi_ml_m2": "LA volume index"}


def confidence_lines(report: Mapping[str, Any], confidence: Mapping[str, Any] | None) -> list[str]:
    """The model's volume confidence per structure, per label file, in words.

    Args:
        confidence: label file key (``ed``, ``es``, ``labels``...) -> the provenance
            ``confidence`` of its medseg sidecar (``volume``: structure -> 0..1, ``thresholds``:
            ``volume``); files without one left out.
    """
    out = []
    for key, conf in (confidence or {}).items():
        vols = {k: _num(v) for k, v in ((conf or {}).get("volume") or {}).items() if _num(v) is not None}
        if not vols:
            continue
        th = _num(((conf or {}).get("thresholds") or {}).get("volume"))
        said = ", ".join(f"{k.upper()} {v:.2f}" for k, v in vols.items())
        low = [k.upper() for k, v in vols.items() if th is not None and v < th]
        verdict = ("" if th is None else f"; below the review threshold {th:.2f}: {', '.join(low)}" if low
                   else f"; all at or above the review threshold {th:.2f}")
        out.append(f"Confidence, {file_word(key, report)}: {said}{verdict}")
    return out

"""Baseline vs follow-up (``medseg compare``): the change in each clinical measure between two
visits of a patient, and the reasons a change may not be real (cautions).

A visit is a ``medseg measure`` REPORT.json or a row of a ``medseg batch --measure`` folder's
``cohort.csv`` (its labels' sidecars give the model and adapter; ``summary.json`` the settings).
Visits are paired by DICOM patient id, else by equal case id; one batch folder holding both
visits pairs each patient's first and last study by study date. The numbers are the reports'
own; the change is follow-up minus baseline.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MedsegError
from ._compare_fields import _floats, _int_map, _is_qc, _number, _scanner, _text_flags, _values  # noqa: F401 (compare._number, as before)
from .compare_names import _labels_study, _other_subject
from .source_images import LABEL_KEYS

#: the measures compared: report_row / cohort.csv key -> label
MEASURES = {"lv.ef_pct": "LVEF (%)", "lv.edv_ml": "LV EDV (mL)", "lv.esv_ml": "LV ESV (mL)", "lv_mass_g": "LV mass (g)",
            "rv.ef_pct": "RVEF (%)", "rv.edv_ml": "RV EDV (mL)", "indexed.lv_edv_ml_m2": "LV EDV index (mL/m2)",
            "indexed.lv_esv_ml_m2": "LV ESV index (mL/m2)", "indexed.lv_mass_g_m2": "LV mass index (g/m2)",
            "indexed.rv_edv_ml_m2": "RV EDV index (mL/m2)"}
#: QC flag codes that bear on volumes, EF or mass (a warning of one of them: a caution)
QC_CODES = {"incomplete_coverage", "missing_slice", "fragmented", "truncated", "esv_exceeds_edv", "ef_undefined", "volume_outlier_frame",
            "phase_at_clip_end", "long_axis_stack", "absent_structure", "base_ambiguous", "lv_mass_implausible", "ef_implausible",
            "volume_implausible", "biplane_without_spacing"}
#: the provenance keys that name the model a label file was made with (as medseg.evaluation.MODEL_KEYS)
_MODEL_KEYS = ("model_id", "model_sha256", "adapter_id", "adapter_sha256")
#: spacings equal within this relative difference
_RTOL = 1e-3


@dataclass
class Visit:
    """One visit's measures and what they were measured from."""

    case: str
    source: str
    values: dict[str, float]
    kind: str  # "ED/ES", "one phase" or "echo"
    method: str = ""  # an echo report's method (medseg.measure.echo.ECHO_METHODS): biplane_disks, single_plane_disks_clip, ...
    patient_id: str = ""
    study_date: str = ""
    models: list[dict[str, Any]] | None = None  # None: not recorded; []: labels not made by a model
    label_map: dict[str, int] = field(default_factory=dict)
    spacing_mm: list[float] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    needs_review: bool = False
    qc: list[str] = field(default_factory=list)
    scanner: dict[str, str] = field(default_factory=dict)  # DICOM manufacturer, model, field strength (tesla), those recorded
    edited: list[str] = field(default_factory=list)  # report's inputs.labels_edited: label files changed by hand since medseg wrote them
    study: str = ""  # a report's study as its label files' names say it (CAMUS patient0451_4CH_ED: patient0451), "" when they say none or several

    def brief(self) -> dict[str, Any]:
        return {"case": self.case, "patient_id": self.patient_id or None, "study_date": self.study_date or None, "source": self.source}


def segmentation_record(paths: list[tuple[str, Path]]) -> dict[str, dict[str, Any]]:
    """``{file key: {model_id, model_sha256, adapter_id, adapter_sha256, needs_review}}`` of the
    label files (``[(key, path)]``) whose medseg sidecar records the model they were made with; a
    report's ``inputs.segmentation`` (labels drawn by hand or imported: left out)."""
    from ..io import read_sidecar

    return {key: m for key, p in paths if (m := _model_record(read_sidecar(p))) is not None}


def _model_record(sidecar: dict[str, Any] | None) -> dict[str, Any] | None:
    """A label file's model record (:func:`segmentation_record`) from its read sidecar, or None (no model recorded)."""
    prov = (sidecar or {}).get("provenance") or {}
    if isinstance(prov, dict) and prov.get("model_sha256"):
        return {**{k: prov.get(k) for k in _MODEL_KEYS}, "needs_review": bool(prov.get("needs_review"))}
    return None


def read_visits(path: Path) -> tuple[list[Visit], list[str]]:
    """The visits of a REPORT.json (one) or a batch folder (one per measured study row), and the
    cases of the folder that have no measure."""
    if path.is_dir():
        return _folder_visits(path)
    if not path.exists():
        raise MedsegError(f"{path}: no such file or folder (give a REPORT.json of medseg measure or a medseg batch --measure folder)")
    return [_report_visit(path)], []


def _report_label_map(report: Any) -> dict[str, Any] | None:
    """A report's label map: its ``label_map`` (a short-axis report), else ``inputs.label_map``
    (an echo report records it there only, as text or an object); None when neither reads."""
    if not isinstance(report, dict):
        return None
    if isinstance(report.get("label_map"), dict):
        return report["label_map"]
    given = report.get("inputs", {}).get("label_map") if isinstance(report.get("inputs"), dict) else None
    if not isinstance(given, (str, dict)) or not given:
        return None
    from ..labels import LabelMap

    try:
        return LabelMap.parse(given).to_dict()
    except (MedsegError, TypeError, ValueError):
        return None


def _report_visit(path: Path) -> Visit:
    from ..io.readers import EXTENSIONS

    if any(path.name.lower().endswith(ext) for ext in EXTENSIONS):
        raise MedsegError(f"{path}: an image or label file, not a report: measure its labels first (medseg measure LABELS -o REPORT.json) "
                          "and compare the reports, or give medseg batch --measure folders")
    from .._json_files import json_file_problem

    report, problem = json_file_problem(path, expect=None)  # a byte-order mark (a report saved again in Notepad) is fine
    if problem is not None:
        raise MedsegError(f"{path} {problem}: not a readable JSON report; give a REPORT.json of medseg measure")
    label_map = _report_label_map(report)
    if not (isinstance(report, dict) and isinstance(report.get("inputs"), dict) and label_map is not None
            and ("volumes_ml" in report or "lv" in report)):
        raise MedsegError(f"{path}: not a medseg measure report (no inputs, label_map and volumes): give the REPORT.json "
                          "medseg measure wrote, or a medseg batch --measure folder")
    from .echo import is_echo_report
    from .export import report_row

    row, inputs = report_row(report), report["inputs"]
    study = inputs.get("study") if isinstance(inputs.get("study"), dict) else {}
    kind = "echo" if is_echo_report(report) else "ED/ES" if isinstance(report.get("lv"), dict) and "ef_pct" in report["lv"] else "one phase"
    seg = inputs.get("segmentation")
    if not isinstance(seg, dict):  # a report of a medseg before inputs.segmentation: the label files' sidecars, if still there
        seg = _sidecar_segmentation(path, inputs)
    models = None if seg is None else _distinct([{k: v.get(k) for k in _MODEL_KEYS} for v in seg.values() if isinstance(v, dict)])
    settings = {k: v for k, v in (inputs.get("settings") or {}).items() if "spacing" not in k}
    return Visit(case=_report_case(path), source=str(path), values=_values(row), kind=kind, method=str(report.get("method") or ""),
                 patient_id=str(study.get("patient_id") or ""), study_date=str(study.get("study_date") or ""), models=models, label_map=_int_map(label_map),
                 spacing_mm=_floats(report.get("spacing_mm")), settings=settings,
                 needs_review=any(isinstance(v, dict) and v.get("needs_review") for v in (seg or {}).values()),
                 qc=[f["code"] for f in report.get("flags") or [] if isinstance(f, dict) and _is_qc(f)], scanner=_scanner(study),
                 edited=[str(k) for k in inputs.get("labels_edited") or [] if isinstance(inputs.get("labels_edited"), list)],
                 study=_labels_study(inputs))


def _report_case(path: Path) -> str:
    name = path.name
    return name[:-5] if name.lower().endswith(".json") else name


def _sidecar_segmentation(report_path: Path, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The models of the label files the report names, from their sidecars (a relative path
    tried from the report's folder, then from here); None when a file is not found, or is no
    longer the one measured (its sha256 is not the one ``inputs.sha256`` records: segmented again since)."""
    from .._files import sha256_path

    found, recorded = [], inputs.get("sha256") if isinstance(inputs.get("sha256"), dict) else {}
    for key in LABEL_KEYS:
        if not isinstance(inputs.get(key), str):
            continue
        p = Path(inputs[key])
        p = next((c for c in ([p] if p.is_absolute() else [report_path.parent / p, p]) if c.exists()), None)
        if p is None or (isinstance(recorded.get(key), str) and sha256_path(p) != recorded[key]):
            return None
        found.append((key, p))
    return segmentation_record(found) if found else None


def _folder_visits(folder: Path) -> tuple[list[Visit], list[str]]:
    from .._files import read_medseg_csv

    cohort = folder / "cohort.csv"
    if not cohort.is_file():
        raise MedsegError(f"{folder}: no cohort.csv: give a medseg batch --measure output folder (or a REPORT.json of medseg measure)")
    from .._json_files import json_file_problem

    try:
        rows = read_medseg_csv(cohort)
        summary = read_medseg_csv(folder / "summary.csv") if (folder / "summary.csv").exists() else []
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MedsegError(f"{folder}: its cohort.csv or summary.csv cannot be read ({type(e).__name__})") from None
    summary_json = folder / "summary.json"
    doc, problem = json_file_problem(summary_json) if summary_json.exists() else ({}, None)
    if problem is not None:
        raise MedsegError(f"{summary_json} {problem}: give a medseg batch --measure output folder")
    settings = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
    if rows and "case" not in rows[0]:
        raise MedsegError(f"{cohort}: not medseg's cohort table (no case column)")
    from .._nfc import nfc
    from ..batch.case_names import study_of
    from ..batch.cohort import overview_rows
    from ..io import read_sidecar

    outputs = {r.get("case", ""): _output(folder, r.get("output", "")) for r in summary}
    batch_settings = {"basal_rule": settings.get("basal_rule", True)} if isinstance(settings, dict) else {}
    parts_of: dict[str, list[Path]] = {}  # a row's label files (its own, or its study's parts), indexed once: not a scan per row
    for c, p in outputs.items():
        for key in dict.fromkeys((c, study_of(c))):
            if p is not None and key is not None:
                parts_of.setdefault(nfc(key), []).append(p)  # a study's cases named in two Unicode forms (a Mac's NFD) are its parts
    visits, unmeasured = [], []
    for row in overview_rows(rows):
        values = _values(row)
        if not values:
            unmeasured.append(row["case"])
            continue
        parts = parts_of.get(nfc(row["case"]), [])
        sides = [read_sidecar(p) for p in parts]  # each read once
        seg = [m for s in sides if (m := _model_record(s)) is not None]
        lost = any(s is None for s in sides)  # batch made them: a lost sidecar is no hand-drawn label
        flags = _text_flags(row.get("flags", ""))
        kind = "echo" if row.get("method") else "ED/ES" if row.get("lv.ef_pct") not in (None, "") else "one phase"
        visits.append(Visit(case=row["case"], source=str(cohort), values=values, kind=kind, method=row.get("method") or "",
                            patient_id=row.get("patient_id", ""), study_date=row.get("study_date", ""), models=_distinct(seg) if parts and not lost else None,
                            label_map=_int_map({k[len("label_map."):]: v for k, v in row.items() if k.startswith("label_map.")}),
                            spacing_mm=_floats(row.get("spacing_mm", "").split()), settings=batch_settings,
                            needs_review=row.get("needs_review", "").upper() == "TRUE", qc=[f["code"] for f in flags if _is_qc(f)],
                            scanner=_scanner(row)))
    return visits, unmeasured


def _output(folder: Path, output: str) -> Path | None:
    """A case's label file: by its name in ``folder`` (batch writes it there; a copied or moved
    folder's summary.csv still names the first place, which a later run may have rewritten), else where summary.csv says."""
    if not output:
        return None
    p = Path(output)
    return folder / p.name if (folder / p.name).is_file() else p if p.exists() else None


def _distinct(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in models:
        m = {k: m.get(k) for k in _MODEL_KEYS}
        if m not in out:
            out.append(m)
    return out


def pair_visits(base: list[Visit], follow: list[Visit], allow_other_patient: bool = False,
                given: bool = False) -> tuple[list[tuple[Visit, Visit]], str]:
    """The (baseline, follow-up) pairs and the rule that paired them: ``given`` (two reports: paired as given),
    ``patient_id`` (every visit has one) or ``case`` (equal case ids)."""
    if given and len(base) == 1 and len(follow) == 1:
        b, f = base[0], follow[0]
        if b.patient_id and f.patient_id and b.patient_id != f.patient_id and not allow_other_patient:
            raise MedsegError(f"the two visits are of different patients ({b.patient_id} vs {f.patient_id}): compare one patient's "
                              "visits, or pass --allow-other-patient to pair them anyway")
        return [(b, f)], "given"
    if all(v.patient_id for v in base + follow):
        for side, visits in (("baseline", base), ("follow-up", follow)):
            seen: dict[str, str] = {}
            for v in visits:
                if v.patient_id in seen:
                    raise MedsegError(f"the {side} holds two studies of patient {v.patient_id} ({seen[v.patient_id]}, {v.case}): give one "
                                      "visit per folder, or compare one folder holding every visit (medseg compare OUT_DIR)")
                seen[v.patient_id] = v.case
        key, rule = (lambda v: v.patient_id), "patient_id"
    else:  # case ids in Unicode NFC: a folder named on a Mac (NFD) at one visit, on another system at the other
        from .._nfc import nfc, two_forms

        key, rule = (lambda v: nfc(v.case)), "case"
        for side, visits in (("baseline", base), ("follow-up", follow)):
            seen_case: dict[str, str] = {}
            for v in visits:
                if key(v) in seen_case:
                    raise MedsegError(f"the {side} holds two cases named {v.case!r}{two_forms((seen_case[key(v)], v.case))}: "
                                      "rename one and measure again, so that each is paired with its own follow-up")
                seen_case[key(v)] = v.case
    by_key = {key(v): v for v in follow}
    return [(b, by_key[key(b)]) for b in base if key(b) in by_key], rule


def pair_one_folder(visits: list[Visit]) -> tuple[list[tuple[Visit, Visit]], dict[str, list[str]]]:
    """Each patient's first and last visit by study date (one folder holding every visit), and
    the cases left out: patients with one visit, visits between a patient's first and last."""
    if not visits:
        raise MedsegError("the folder has no measured study: run medseg batch with --measure")
    if not all(v.patient_id for v in visits):
        raise MedsegError("one folder is paired by DICOM patient id, and its studies have none (NIfTI): give the baseline and the "
                          "follow-up as two folders or reports (medseg compare BASELINE FOLLOWUP), paired by case id")
    by_patient: dict[str, list[Visit]] = {}
    for v in visits:
        by_patient.setdefault(v.patient_id, []).append(v)
    pairs, single, between = [], [], []
    for pid, group in by_patient.items():
        group.sort(key=lambda v, p=pid, n=len(group): (_date(v, p) if n > 1 else (0, 0, 0), v.case))
        if len(group) > 1 and _may_be_same_day(_date(group[0], pid), _date(group[-1], pid)):
            raise MedsegError(f"patient {pid}: cases {group[0].case} and {group[-1].case} have study dates {group[0].study_date!r} and "
                              f"{group[-1].study_date!r} (anonymised: month or day 0), which do not say which came first; "
                              "give them as BASELINE FOLLOWUP")
        if len(group) == 1:
            single.append(group[0].case)
        else:
            pairs.append((group[0], group[-1]))
            between += [v.case for v in group[1:-1]]
    return pairs, {"one_visit": single, **({"between_first_and_last": between} if between else {})}


def _date(v: Visit, patient: str) -> tuple[int, int, int]:
    """``v``'s study date as (year, month, day) (medseg writes YYYY-MM-DD; YYYYMMDD, YYYY/MM/DD and
    a time after it are read too; as text, 2021-03-01 sorted before 20210201). An anonymised
    export's month or day of 0 (Sunnybrook's 20120000, written as it is) is kept as 0: unknown."""
    import datetime
    import re

    m = re.fullmatch(r"(\d{4})[-/.]?(\d{2})[-/.]?(\d{2})(?:[ T].*)?", v.study_date.strip())
    if m:
        y, mo, d = map(int, m.groups())
        try:
            if y and (d == 0 and (mo == 0 or mo <= 12) or datetime.date(y, mo, d)):
                return y, mo, d
        except ValueError:
            pass
    said = f"study_date {v.study_date!r}" if v.study_date.strip() else "no study_date"
    raise MedsegError(f"patient {patient}: case {v.case} has {said} (medseg writes YYYY-MM-DD; a spreadsheet re-saved cohort.csv?): "
                      "its first and last visit cannot be told apart; give them as BASELINE FOLLOWUP")


def _may_be_same_day(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Two dates of which an unknown month or day (0) leaves the order open (2012-00-00 and 2012-05-03)."""
    return a[0] == b[0] and (0 in (a[1], b[1]) or (a[1] == b[1] and 0 in (a[2], b[2])))


def _short(m: dict[str, Any]) -> str:
    adapter = f" + adapter {m.get('adapter_id')} {str(m.get('adapter_sha256'))[:12]}" if m.get("adapter_sha256") else ""
    return f"{m.get('model_id')} {str(m.get('model_sha256'))[:12]}{adapter}"


def _models_text(models: list[dict[str, Any]]) -> str:
    return ", ".join(_short(m) for m in models) if models else "labels not made by a medseg model"


def model_change(b: Visit, f: Visit) -> str | None:
    """Why the two visits' labels are not from the same model and adapter, or None."""
    if b.models is None or f.models is None or not b.models or not f.models:
        return None
    sha = {(m["model_sha256"], m["adapter_sha256"]) for m in b.models}
    if sha != {(m["model_sha256"], m["adapter_sha256"]) for m in f.models} or len(sha) > 1:
        return f"model or adapter differs: baseline {_models_text(b.models)}; follow-up {_models_text(f.models)}"
    return None


def cautions(b: Visit, f: Visit) -> list[str]:
    """Lines saying why the change between ``b`` and ``f`` may not be real."""
    out = []
    if bool(b.patient_id) != bool(f.patient_id):  # a NIfTI report against a DICOM one: paired as given, no id to check
        has, lacks = ("baseline", "follow-up") if b.patient_id else ("follow-up", "baseline")
        out.append(f"the {lacks} records no patient id: check it is the same patient as the {has} ({b.patient_id or f.patient_id})")
    if not b.patient_id and not f.patient_id and _other_subject(b.study, f.study):  # paired as given (two reports)
        out.append(f"neither visit records a patient id, and their labels are named for different studies (baseline {b.study}, "
                   f"follow-up {f.study}): check they are the same patient")
    if change := model_change(b, f):
        out.append(change)
    elif (b.models is None) != (f.models is None) or (b.models == []) != (f.models == []):
        out.append(f"the labels' models cannot be compared: baseline {'not recorded' if b.models is None else _models_text(b.models)}; "
                   f"follow-up {'not recorded' if f.models is None else _models_text(f.models)}")
    if apart := other_modality(b, f):  # its label maps and pixel sizes differ as a matter of course: not said again
        out.append(f"baseline is {_kind(b.kind)}, follow-up {_kind(f.kind)}: another method's measure (apical views against a "
                   "short-axis stack), not a change of the heart; left out of the summary's mean and SD")
    elif b.kind != f.kind:
        out.append(f"baseline is {_kind(b.kind)}, follow-up {_kind(f.kind)}: only the measures both have are compared")
    elif b.method and f.method and b.method != f.method:  # biplane vs one plane: the volumes' geometry assumed differs
        out.append(f"method differs: baseline {b.method}, follow-up {f.method}")
    if not apart and b.label_map and f.label_map and b.label_map != f.label_map:
        out.append(f"label maps differ: baseline {_map_text(b.label_map)}, follow-up {_map_text(f.label_map)}")
    if not apart and b.spacing_mm and f.spacing_mm and len(b.spacing_mm) == len(f.spacing_mm) == 3:
        if not _close(b.spacing_mm[1:], f.spacing_mm[1:]):
            out.append(f"pixel spacing differs: baseline {_mm(b.spacing_mm[1:])}, follow-up {_mm(f.spacing_mm[1:])} mm")
        if b.kind != "echo" and f.kind != "echo" and not _close(b.spacing_mm[:1], f.spacing_mm[:1]):
            out.append(f"slice spacing differs: baseline {b.spacing_mm[0]:g}, follow-up {f.spacing_mm[0]:g} mm")
    if any(b.scanner[k] != f.scanner[k] for k in set(b.scanner) & set(f.scanner)):  # a vendor or field strength change biases volumes and mass
        out.append(f"scanner differs: baseline {_scanner_text(b.scanner)}, follow-up {_scanner_text(f.scanner)}")
    differ = sorted(k for k in set(b.settings) & set(f.settings) if b.settings[k] != f.settings[k])
    if differ:
        out.append("measurement settings differ: " + "; ".join(f"{k} {b.settings[k]} vs {f.settings[k]}" for k in differ))
    for side, v in (("baseline", b), ("follow-up", f)):
        if v.edited:  # the sidecar's model and review flags are those of the labels before the edit
            out.append(f"the {side} labels were edited by hand since medseg wrote them ({', '.join(v.edited)}): "
                       "not the recorded model's alone")
        if v.needs_review:
            out.append(f"the {side} segmentation needs review (its review flags: check its review sheet)")
        if v.qc:
            counts = {c: v.qc.count(c) for c in dict.fromkeys(v.qc)}
            out.append(f"the {side} measure has QC warnings: " + ", ".join(f"{c} x{n}" if n > 1 else c for c, n in counts.items()))
    return out


def other_modality(b: Visit, f: Visit) -> bool:
    """An echo report paired with a short-axis one: its change is left out of the summary."""
    return b.kind != f.kind and "echo" in (b.kind, f.kind)


def _scanner_text(s: dict[str, str]) -> str:
    return " ".join([*(s[k] for k in ("manufacturer", "manufacturer_model") if k in s), *([f"{s['field_strength_t']} T"] if "field_strength_t" in s else [])])


def _kind(kind: str) -> str:
    return {"ED/ES": "an ED/ES report", "one phase": "one phase (no ED/ES)", "echo": "apical views (method of disks)"}[kind]


def _map_text(m: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(m.items(), key=lambda kv: kv[1]))


def _mm(v: list[float]) -> str:
    return " x ".join(f"{x:g}" for x in v)


def _close(a: list[float], b: list[float]) -> bool:
    return all(math.isclose(x, y, rel_tol=_RTOL) for x, y in zip(a, b))


def compare(pairs: list[tuple[Visit, Visit]], allow_model_change: bool = False) -> dict[str, Any]:
    """The changes of the paired visits (follow-up minus baseline), their cautions and the
    summary (per measure: n, mean change, SD). Refuses a model or adapter change unless allowed."""
    if not allow_model_change:
        for b, f in pairs:
            if change := model_change(b, f):
                raise MedsegError(f"{b.case} -> {f.case}: {change}; a change of model is not a change of the heart "
                                  "(pass --allow-model-change to compare anyway, with a caution)")
    out_pairs = []
    for b, f in pairs:
        measures = {k: {"baseline": b.values[k], "followup": f.values[k], "change": round(f.values[k] - b.values[k], 4)}
                    for k in MEASURES if k in b.values and k in f.values}
        out_pairs.append({"baseline": b.brief(), "followup": f.brief(), "measures": measures, "cautions": cautions(b, f),
                          "in_summary": not other_modality(b, f)})
    summary: dict[str, Any] = {"n_pairs": len(out_pairs), "n_pairs_with_cautions": sum(bool(p["cautions"]) for p in out_pairs), "measures": {}}
    if left := [f"{p['baseline']['case']} -> {p['followup']['case']}" for p in out_pairs if not p["in_summary"]]:
        summary["left_out"] = {"pairs": left, "why": "an echo report paired with a short-axis one: not in the mean change and SD"}
    for k, label in MEASURES.items():
        d = [p["measures"][k]["change"] for p in out_pairs if k in p["measures"] and p["in_summary"]]
        if d:
            summary["measures"][k] = {"label": label, "n": len(d), "mean_change": round(statistics.fmean(d), 4),
                                      "sd_change": round(statistics.stdev(d), 4) if len(d) > 1 else None}
    return {"pairs": out_pairs, "summary": summary}


def changes_rows(result: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """One CSV row per pair: ids, dates, each measure's baseline, follow-up and change, cautions."""
    keys = [k for k in MEASURES if any(k in p["measures"] for p in result["pairs"])]
    fields = ["patient_id", "baseline_case", "followup_case", "baseline_date", "followup_date"]
    fields += [f"{k}.{part}" for k in keys for part in ("baseline", "followup", "change")] + ["in_summary", "cautions"]
    rows = []
    for p in result["pairs"]:
        row = {"patient_id": p["baseline"]["patient_id"] or p["followup"]["patient_id"] or "", "baseline_case": p["baseline"]["case"],
               "followup_case": p["followup"]["case"], "baseline_date": p["baseline"]["study_date"] or "",
               "followup_date": p["followup"]["study_date"] or "", "in_summary": p.get("in_summary", True),  # FALSE: not in the mean change
               "cautions": " | ".join(p["cautions"])}
        row.update({f"{k}.{part}": round(v[part], 4) for k, v in p["measures"].items() for part in ("baseline", "followup", "change")})
        rows.append(row)
    return fields, rows


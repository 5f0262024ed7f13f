"""A methods section's measurement paragraph (from cohort.csv's rows and the measurement
constants), its list of facts (versions, sha256, options, counts) and its Cite list
(:mod:`medseg.methods`, :mod:`medseg._methods_text`)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

#: the reference range (medseg.measure.reference.REFERENCE_RANGES) -> the cohort.csv column it judges
_RANGE_COLUMNS = {"cmr_lvef_pct": "lv.ef_pct", "cmr_lv_mass_index_g_m2": "indexed.lv_mass_g_m2", "cmr_rvef_pct": "rv.ef_pct",
                  "cmr_rv_edv_index_ml_m2": "indexed.rv_edv_ml_m2", "echo_lvef_pct": "lv.ef_pct", "echo_lavi_ml_m2": "indexed.la_volume_ml_m2"}
_PAPILLARY = {"blood_pool": "in the LV blood pool (LV volumes, not LV mass)", "myocardium": "as myocardium (LV mass, not LV volumes)",
              "excluded": "in neither LV volumes nor LV mass (unlabelled)"}


def _n(k: int, one: str, many: str | None = None) -> str:
    return f"{k} {one if k == 1 else many or one + 's'}"


def _join(items: list[str]) -> str:
    items = [i for i in items if i]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _rows(run: Any) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """cohort.csv's study rows (a case measured in its study's row left out): short-axis, echo."""
    from .measure.echo import ECHO_METHODS

    rows = [r for r in run.cohort or [] if r.get("per_study", "TRUE").upper() != "FALSE"]
    echo = [r for r in rows if r.get("method") in ECHO_METHODS]
    return [r for r in rows if r not in echo and (r.get("volumes_ml.lv") or r.get("lv.edv_ml"))], echo


def _echo_source() -> str:
    """The guideline the echo module's method follows, as its docstring's first line names it."""
    from .measure import echo

    m = re.search(r"\(([^()]*\d{4})\)", (echo.__doc__ or "").splitlines()[0])
    return m.group(1) if m else ""


def _joined(rows: list[dict[str, str]]) -> str:
    """How many of cohort.csv's studies were measured from several cases (their ``phases`` or
    ``views``: ED and ES stacks, frames, echo views given as separate images), as words after the
    study count: the segmentation paragraph counts cases, as summary.json does."""
    from .batch.cases import OUTPUT_ENDING

    def n_cases(row: dict[str, str]) -> int:  # phases: the cases' label files, space-joined (a case name may hold spaces)
        if row.get("phases"):
            return len(re.findall(re.escape(OUTPUT_ENDING) + r"(?= |$)", str(row["phases"]))) or len(str(row["phases"]).split())
        return len(str(row.get("views")).split())  # 4CH_ED A2C_ES ...

    parts = [n_cases(r) for r in rows if r.get("phases") or r.get("views")]
    if not parts:
        return ""
    return f"; {len(parts)} of them measured from {_n(sum(parts), 'case')}, the separate images of their frames, phases or views"


def measurement_sentences(run: Any) -> list[str]:
    from .measure.echo import ECHO_METHODS, N_DISKS
    from .measure.qc import BASAL_COVERAGE_MIN
    from .measure.volumes import MYOCARDIAL_DENSITY_G_PER_ML

    sax, echo = _rows(run)
    if not sax and not echo:
        return ["--measure was given, but cohort.csv holds no measured study."]
    out = [f"Measurements were computed by medseg from the labels as written ({_n(len(sax) + len(echo), 'study', 'studies')} in cohort.csv{_joined(sax + echo)})."]
    if sax:
        cine = any(r.get("lv.ef_pct") for r in sax)
        out.append("Short-axis volumes are the labelled area of each slice times its centre-to-centre slice spacing, summed over the slices; "
                   f"LV mass is the myocardial volume{' at end-diastole' if cine else ''} times {MYOCARDIAL_DENSITY_G_PER_ML:g} g/mL.")
        pap = Counter(r.get("papillary_muscles.counted_in") or "" for r in sax)
        pap.pop("", None)
        if pap:
            out.append("Papillary muscles and trabeculae were counted " + "; ".join(
                f"{_PAPILLARY.get(v, v)} in {k} of {_n(len(sax), 'study', 'studies')}" for v, k in pap.most_common()) + ", as the labels drew them.")
        if run.settings.get("basal_rule", True):
            cut = [len(str(r.get("excluded_basal_slices") or "").split()) for r in sax]
            count = "" if not any("excluded_basal_slices" in r for r in sax) else "; no slice left out" if not sum(cut) else \
                f"; {_n(sum(cut), 'slice')} left out in {_n(sum(c > 0 for c in cut), 'study', 'studies')}"
            out.append(f"A basal slice counted as LV only where myocardium surrounds at least {BASAL_COVERAGE_MIN:.0%} of its cavity (SCMR rule{count}).")
        else:
            out.append("The SCMR basal rule was not applied (--no-basal-rule): every labelled LV slice counted.")
    src = _echo_source()
    for (method, ef_only), k in Counter((r["method"], _ef_only(r)) for r in echo).most_common():
        what = "LVEF, without volumes (the images had no pixel size)," if ef_only else "LV volumes"
        out.append(f"Echocardiographic {what} used the {ECHO_METHODS[method]} ({N_DISKS} disks{', ' + src if src else ''}) in {_n(k, 'study', 'studies')}.")
    out += _body_sentences(run, sax + echo)
    return out


def _ef_only(row: dict[str, str]) -> bool:
    """Whether an echo study's cohort row has an EF and no volumes: its views had no pixel size
    (a CAMUS PNG), so the disks gave the EF alone (:func:`medseg.measure.echo.measure_echo`)."""
    return bool(row.get("lv.ef_pct")) and not row.get("lv.edv_ml")


def _body_sentences(run: Any, rows: list[dict[str, str]]) -> list[str]:
    from .measure.reference import ADULT_MIN_HEIGHT_CM, REFERENCE_RANGES
    from .measure.study_text import _RANGE_NAMES

    out = []
    bsa = [r for r in rows if r.get("bsa_m2")]
    if bsa:
        methods = _join([m.title() for m, _ in Counter(r.get("bsa_method") or "" for r in bsa).most_common() if m])
        given = _join([w for w, on in (("the subjects file", bool(run.settings.get("subjects"))), ("the DICOM header", any(r.get("dicom_body") for r in bsa))) if on])
        out.append(f"Body surface area ({methods} formula) came from the height and weight in {given or 'the body data'} for "
                   f"{len(bsa)} of {_n(len(rows), 'study', 'studies')}; indexed values are divided by it.")
    used: dict[str, list[str]] = {}
    sax, echo = _rows(run)
    for key, column in _RANGE_COLUMNS.items():
        pool = echo if key.startswith("echo_") else sax
        if any(r.get(column) for r in pool):
            used.setdefault(REFERENCE_RANGES[key][3], []).append(_RANGE_NAMES.get(key, key))
    for source, names in used.items():
        out.append(f"{_join(list(dict.fromkeys(names)))} values outside the reference ranges of {source} were flagged "
                   f"(sex-specific where the sex was given; not for heights below {ADULT_MIN_HEIGHT_CM:g} cm).")
    return out


def measurement_sources(run: Any) -> list[str]:
    """The reference-range sources and the echo guideline this run's measurements used."""
    from .measure.reference import REFERENCE_RANGES

    if run.kind != "batch" or not run.settings.get("measure"):
        return []
    sax, echo = _rows(run)
    out = [f"Reference ranges: {REFERENCE_RANGES[k][3]}" for k, c in _RANGE_COLUMNS.items()
           if any(r.get(c) for r in (echo if k.startswith("echo_") else sax))]
    if echo and _echo_source():
        out.append(f"Echocardiographic method of disks: {_echo_source()}")
    return list(dict.fromkeys(out))


def option_words(run: Any) -> str:
    """The batch's options (summary.json's settings) as command-line flags."""
    s = run.settings
    flags = ["--prompts-from"] if any(st.prompting[2] == "reference" for st in run.studies) else []
    flags += [f"--prompts {Path(s['prompts']).name}"] if s.get("prompts") else []
    flags += [f for k, f in (("key_slice", "--key-slice"), ("auto", "--auto"), ("propagate", "--propagate"), ("resume", "--resume"),
                             ("measure", "--measure"), ("pdf", "--pdf"), ("dicom_seg", "--dicom-seg"), ("review_png", "--review-png")) if s.get(k)]
    for k, f in (("label_map", "--label-map"), ("structures", "--structures"), ("frames", "--frames"), ("adapter", "--adapter"),
                 ("min_confidence", "--min-confidence"), ("modality", "--modality"), ("series", "--series"), ("device", "--device")):
        if s.get(k) not in (None, "", False):  # an adapter folder given by its path: its name (a local path is not for a paper)
            flags.append(f"{f} {Path(str(s[k])).name if k == 'adapter' else s[k]}")
    if s.get("through", "z") != "z":
        flags.append(f"--through {s['through']}")
    if s.get("model", "default") != "default":
        flags.append(f"--model {Path(str(s['model'])).name}")
    if s.get("measure") and not s.get("basal_rule", True):
        flags.append("--no-basal-rule")
    if s.get("subjects"):
        flags.append(f"--subjects ({_n(int(s['subjects']), 'row')})")
    if s.get("pixel_spacing"):
        flags.append("--pixel-spacing " + ",".join(f"{v:g}" for v in s["pixel_spacing"]))
    return " ".join(flags)


def fact_lines(run: Any) -> list[str]:
    sw = run.software
    out = [f"Software: medseg {sw.get('medseg_version')} (Python {sw.get('python_version')}, torch {sw.get('torch_version')}, "
           f"numpy {sw.get('numpy_version')})" + (" as this run's summary records" if run.kind == "batch" else "")]
    models = Counter(s.model for s in run.studies)
    for (mid, msha, aid, asha), k in models.most_common():
        count = f" ({_n(k, 'case')})" if run.kind == "batch" else ""
        out.append(f"Model: {mid}, sha256 {msha}; adapter: " + (f"{aid}, sha256 {asha}" if aid else "none") + count)
    if run.kind == "batch":
        c = run.counts
        out.append(f"Options of the last run: {option_words(run) or 'none'}")
        out.append(f"Cases (summary.json): {c.get('n_cases', 0)} ({c.get('n_ok', 0)} segmented in the last run, {c.get('n_skipped', 0)} skipped, "
                   f"{c.get('n_failed', 0)} failed, {c.get('n_handed_over', 0)} handed over); {c.get('n_needs_review', 0)} need review")
        if run.kept:
            out.append(f"Kept as corrected by hand (summary.csv reason 'kept'): {_n(run.kept, 'case')}")
    else:
        st = run.studies[0]
        made = "Tool: medseg's napari plugin; made" if st.command == "napari" else f"Command: medseg {st.command or 'segment'}; made"
        out.append(f"{made} {run.created or 'at an unrecorded time'}")
    thresholds = sorted({t for s in run.studies for t in s.thresholds})
    if thresholds:
        out.append("Mask logit thresholds: " + ", ".join(f"{k} {v:g}" for k, v in thresholds))
    if run.kind == "batch":
        out.append(f"Written: {run.created} (UTC)")
    return out


def cite_lines(run: Any) -> list[str]:
    from ._methods_cite import adapter_description, architecture_refs, dataset_references, model_card, software_entry, training_rows

    out = [software_entry(v) for v in dict.fromkeys(s.version for s in run.studies)] or [software_entry(run.software.get("medseg_version"))]
    for mid, msha, aid, asha in dict.fromkeys(s.model for s in run.studies):
        card = model_card(mid, msha)
        out += architecture_refs(mid, card)
        rows = training_rows(card) if card else []
        if rows:
            out.append(f'Training data of the model "{mid}" (its model card; their terms apply to the weights): ' + "; ".join(rows))
            out += dataset_references(" ".join(rows))
        else:
            out.append(f'Training data of the model "{mid}": not known to medseg (no model card for sha256 {str(msha)[:12]}...): cite what it was trained on')
        desc = adapter_description(aid, asha)
        if aid:
            out.append(f'Adapter "{aid}": {desc}' if desc else f'Adapter "{aid}": its folder was not found with these weights: cite its training data')
            out += dataset_references(desc or "")
    out += measurement_sources(run)
    return list(dict.fromkeys(out))

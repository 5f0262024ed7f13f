"""Measurements of a batch: each case's report, rows for studies whose phases, frames or echo views
are separate cases, ``summary.csv``/``.json`` and ``cohort.csv``/``.png``. Rules: :mod:`medseg.batch`."""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._nfc import nfc
from ..errors import MedsegError
from .case_names import echo_clip
from .cases import FRAME_CASE, BatchOptions, Result, _one_line, echo_view, echo_view_keys, split_phase, study_of
from .measure_rows import (  # noqa: F401 (medseg.batch.cohort._measure, _Who, ..., as before)
    COHORT_OWN,
    KEY_MEASURES,
    _basal_rule_said,
    _body,
    _body_note,
    _child_ranges,
    _given_body,
    _measure,
    _shared_label_map,
    _spacing_field,
    _study_page,
    _subject,
    _Who,
    _with_subject,
    measure_clip_study,
)

SUMMARY_FIELDS = ("case", "status", "needs_review", "confidence", "review_flags", "review_structures", "handed_over", "reason", "seconds",
                  "output", "input")


def stack_study_rows(results: Sequence[Result], subjects: Sequence[Any] = (), basal_rule: bool = True, pages: str | os.PathLike | None = None) -> list[Result]:
    """Cohort rows for short-axis studies whose ED and ES stacks are separate cases named
    ``<study>_ED`` / ``<study>_ES`` (:func:`split_phase`; not the echo views of
    :func:`echo_study_rows`): EDV, ESV, EF, LV mass and the RV's, as ``medseg measure --ed --es``
    gives them (one 2-D view each: single-plane disks); and for studies whose frames are
    separate cases named ``<study>_frame<NN>`` (:data:`FRAME_CASE`, ACDC's ED and ES frames),
    two or more: the same with ED and ES the frames of largest and smallest LV volume, as for a
    cine (``ed_frame``/``es_frame`` are the NN of their names). With the study's row of ``subjects`` (:mod:`medseg.subjects`).
    A study is kept when one of its cases has no labels (failed or handed over: not measured,
    the note names them) and when a case of its own carries the study's id (a failed one: the
    note says so; a measured one has its own row: the study's then holds only the note). Rows:
    ``{"case": study, "cohort_row": {...}, "measure_note": ...}``. ``basal_rule``: as ``--no-basal-rule`` (False) sets it.
    ``pages``: OUT_DIR of ``--pdf``, each measured study's page in its ``pdf/`` (:mod:`medseg.batch.pages`)."""
    groups: dict[str, dict[str, Result]] = {}  # keyed by the study's name in Unicode NFC: its ED copied from a Mac (NFD), its ES not
    frames: dict[str, dict[int, list[Result]]] = {}  # study -> frame number -> the cases named with it
    named: dict[str, str] = {}  # NFC key -> the study's name as its first case has it
    for r in results:
        sp = split_phase(r["case"])
        if sp and not echo_view(r["case"]):
            groups.setdefault(nfc(sp[0]), {})[sp[1]] = r
            named.setdefault(nfc(sp[0]), sp[0])
        if m := FRAME_CASE.match(r["case"]):
            frames.setdefault(nfc(m["study"]), {}).setdefault(int(m["frame"]), []).append(r)
            named.setdefault(nfc(m["study"]), m["study"])
    own = {nfc(r["case"]): r for r in results}
    rows: list[Result] = []
    for key, ph in sorted(groups.items()):
        study = named[key]
        if "ED" in ph and "ES" in ph:
            parts = [ph["ED"], ph["ES"]]
            ok, note = _study_problems(study, parts, own.get(key))
            measured = _measure_stack_study({k: ph[k]["output"] for k in ("ED", "ES")}, _subject(study, subjects, _source(parts)), basal_rule,
                                            _page(pages, study)) if ok else {}
            rows.append(_noted({"case": study, **measured}, note))
    taken = {nfc(r["case"]) for r in rows}
    for key, numbered in sorted(frames.items()):
        study, parts = named[key], [r for cases in numbered.values() for r in cases]
        if key in taken or len(parts) < 2:
            continue
        clash = {n: sorted(r["case"] for r in cases) for n, cases in numbered.items() if len(cases) > 1}
        if clash:  # <study>_frame1 and <study>_frame01: one frame number, two stacks; which one is the frame is not known
            rows.append({"case": study, "measure_note": _frame_clash_note(clash)})
            continue
        ok, note = _study_problems(study, parts, own.get(key))
        fr = {n: cases[0]["output"] for n, cases in numbered.items()}
        measured = _measure_frames_study(fr, _subject(study, subjects, _source(parts)), basal_rule, _page(pages, study)) if ok else {}
        rows.append(_noted({"case": study, **measured}, note))
    return _pages_dropped(sorted(rows, key=lambda r: r["case"]), pages, own)


def _page(pages: str | os.PathLike | None, study: str) -> Path | None:
    from .pages import page_path

    return page_path(pages, study) if pages is not None else None


def _pages_dropped(rows: list[Result], pages: str | os.PathLike | None, own: dict[str, Result]) -> list[Result]:
    """``rows``, the older page of each study row without one now removed (not that of a case
    with the study's id: its page is its own; ``own`` keyed by case id in Unicode NFC)."""
    from .pages import drop_page

    for r in rows:
        if pages is not None and not r.get("pdf") and nfc(r["case"]) not in own:
            drop_page(_page(pages, r["case"]))
    return rows


def _source(parts: Sequence[Result]) -> str:
    """The input of one of a study's cases (its DICOM header's body data)."""
    return next((r.get("input", "") for r in parts if r.get("input")), "")


def _study_problems(study: str, parts: Sequence[Result], same_id: Result | None) -> tuple[bool, str]:
    """Whether a study made of the cases ``parts`` can be measured, and its note (why not, or a
    case that shares its id): each of its cases needs its labels (not failed or handed over), and a
    case whose own id is the study's (``same_id``) must have no cohort row of its own (a failed one
    is only noted)."""
    note = ""
    if same_id is not None:
        named = f"case {study} ({Path(str(same_id.get('input', ''))).name}, {same_id.get('status', 'failed')})"
        if same_id.get("cohort_row"):  # its own row in cohort.csv has this id
            return False, (f"not measured as a study: {named} has the study's id and its own row; rename it to measure the study of "
                        f"{', '.join(sorted(r['case'] for r in parts))}")
        note = f"{named} has the study's id"
    missing = [r for r in parts if r.get("status") not in ("ok", "skipped") or not r.get("output")]
    if missing:
        said = "; ".join(f"{r['case']} {str(r.get('status', 'failed')).replace('_', ' ')}" + (f" ({r['reason']})" if r.get("reason") else "") for r in missing)
        return False, "; ".join(n for n in (f"not measured: {said}", note) if n)
    return True, note


def _noted(row: Result, note: str) -> Result:
    """A study row with ``note`` added to its measure_note."""
    if note:
        row["measure_note"] = _one_line("; ".join(n for n in (row.get("measure_note"), note) if n))
    return row


def _frame_clash_note(clash: dict[int, list[str]]) -> str:
    """The note of a study not measured because two of its cases name one frame."""
    said = "; ".join(f"{' and '.join(cases)} are all frame {n}" if len(cases) > 2 else f"{cases[0]} and {cases[1]} are both frame {n}"
                     for n, cases in sorted(clash.items()))
    return f"not measured: {said} (rename one: the study's frames must each be one case)"


def _measure_stack_study(phases: dict[str, str], subject: _Who = _Who(), basal_rule: bool = True, page: Path | None = None) -> Result:
    from ..io import read_label_volume
    from ..measure.export import report_row
    from ..measure.report import measure_ed_es

    try:
        ed, es = read_label_volume(phases["ED"]), read_label_volume(phases["ES"])
        lmap = _shared_label_map([phases["ED"], phases["ES"]], "the ED and ES")
        if ed.n_frames == es.n_frames == 1 and ed.n_slices == es.n_slices == 1:  # one long-axis view per phase (M&Ms-2's
            return _measure_view_pair(phases, subject, page)  # 001_LA_ED / 001_LA_ES): as `medseg measure --ed --es` measures them
        if ed.n_frames != 1 or es.n_frames != 1 or ed.n_slices < 2 or not ed.same_grid(es):
            return {"measure_note": "not measured together: ED and ES are not two stacks on one grid"}
        if not (ed.spacing_known and es.spacing_known):
            raise MedsegError("the input has no physical spacing")
        rep = measure_ed_es(ed.array[0], es.array[0], ed.affine, lmap, basal_rule=basal_rule, **_body(subject, ed))
        _basal_rule_said(rep, basal_rule)
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    rep = _child_ranges(rep, subject)  # (the page's range flags as the row's)
    row = _with_subject(report_row(rep), subject)
    row["phases"] = f"{Path(phases['ED']).name} {Path(phases['ES']).name}"
    return _study_page({"cohort_row": row, "measure_note": _body_note(subject, rep)}, rep, page, {"ED": ed.array[0], "ES": es.array[0]},
                       lmap, {"ED": 0, "ES": 0}, {"ed": phases["ED"], "es": phases["ES"]}, subject)


def _measure_view_pair(phases: dict[str, str], subject: _Who = _Who(), page: Path | None = None) -> Result:
    """A study whose ED and ES are one 2-D view each, named ``<study>_ED`` / ``<study>_ES``
    (M&Ms-2's long-axis ``001_LA_ED``): single-plane disks, as ``medseg measure --ed --es``
    gives them (a short-axis slice is refused there and noted here)."""
    measured = _measure_echo_study({("4ch", "ED"): phases["ED"], ("4ch", "ES"): phases["ES"]}, subject, page)
    if measured.get("cohort_row"):
        measured["cohort_row"].pop("views", None)
        measured["cohort_row"]["phases"] = f"{Path(phases['ED']).name} {Path(phases['ES']).name}"
    return measured


def _measure_frames_study(frames: dict[int, str], subject: _Who = _Who(), basal_rule: bool = True, page: Path | None = None) -> Result:
    import numpy as np

    from ..io import read_label_volume
    from ..measure.export import report_row
    from ..measure.report import measure_cine

    numbers = sorted(frames)
    try:
        labs = [read_label_volume(frames[n]) for n in numbers]
        lmap = _shared_label_map([frames[n] for n in numbers], "the frames'")
        first = labs[0]
        if any(v.n_frames != 1 for v in labs) or first.n_slices < 2 or not all(first.same_grid(v) for v in labs[1:]):
            return {"measure_note": "not measured together: the frames are not stacks of one frame on one grid"}
        if not all(v.spacing_known for v in labs):
            raise MedsegError("the input has no physical spacing")
        cine = first.with_array(np.concatenate([v.array for v in labs]), frame_times_s=None)
        rep = measure_cine(cine, None, lmap, basal_rule=basal_rule, **_body(subject, first))
        _basal_rule_said(rep, basal_rule)
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    for key in ("ed_frame", "es_frame", "rv_ed_frame", "rv_es_frame"):  # index in the stack -> the frame's number
        if rep.get(key) is not None:
            rep[key] = numbers[rep[key]]
    rep["flags"] = [dict(f, frame=numbers[f["frame"]]) if isinstance(f.get("frame"), int) else f for f in rep["flags"]]
    rep = _child_ranges(rep, subject)  # (the page's range flags as the row's)
    row = _with_subject(report_row(rep), subject)
    row["phases"] = " ".join(Path(frames[n]).name for n in numbers)
    at = {k: rep[f] for k, f in (("ED", "ed_frame"), ("ES", "es_frame")) if rep.get(f) is not None}  # frame numbers (NN of the names)
    shown = {k: v for k, v in rep.items() if k not in ("volume_curve_ml", "frame_times_s")}  # a few frames of a cine: no curve on the page
    return _study_page({"cohort_row": row, "measure_note": _body_note(subject, rep)}, shown, page,
                       {k: labs[numbers.index(n)].array[0] for k, n in at.items()}, lmap, at,
                       {k.lower(): frames[n] for k, n in at.items()}, subject)


def echo_study_rows(results: Sequence[Result], subjects: Sequence[Any] = (), pages: str | os.PathLike | None = None) -> list[Result]:
    """Cohort rows for echo studies whose apical views are separate one-image cases named
    ``<study>_<view>_<phase>`` (:data:`ECHO_VIEW_CASE`): EF (and volumes with pixel spacing)
    from the 4-chamber ED and ES labels, biplane when the 2-chamber ED and ES are there too
    (:func:`medseg.measure.echo.measure_echo`; with the study's row of ``subjects``). A study
    without both 4-chamber phases gets no row, unless it has two or more cases and a 4-chamber
    one failed or was handed over: its row's ``measure_note`` says so (``not measured: ...``, as a
    stack's); one measured single plane although it has a 2-chamber case says why in its
    ``measure_note`` (the other 2-chamber phase failed, was handed over or is missing: the EF is
    not the biplane one); one that cannot be measured gets a row with ``measure_note``. Rows:
    ``{"case": study, "cohort_row": {...}, "measure_note": ...}``. ``pages``: as :func:`stack_study_rows`'."""
    groups: dict[str, dict[tuple[str, str], Result]] = {}  # by the study's name in Unicode NFC (views from two copies)
    named: dict[str, str] = {}
    for r in results:
        if ev := echo_view(r["case"]):
            groups.setdefault(nfc(ev[0]), {})[ev[1:]] = r
            named.setdefault(nfc(ev[0]), ev[0])
    rows = []
    for key, parts in sorted(groups.items()):
        study = named[key]
        have = {k: r["output"] for k, r in parts.items() if r.get("status") in ("ok", "skipped") and r.get("output")}
        a4c, a2c = [("4ch", "ED"), ("4ch", "ES")], [("2ch", "ED"), ("2ch", "ES")]
        if not all(k in have for k in a4c):
            if len(parts) > 1 and any(k in parts for k in a4c if k not in have):  # a 4-chamber case failed or handed over
                rows.append({"case": study, "measure_note": _one_line(f"not measured: {_echo_gaps(study, parts, a4c)}")})
            continue
        row = {"case": study, **_measure_echo_study(have, _subject(study, subjects, str(parts[a4c[0]].get("input", ""))), _page(pages, study))}
        if any(k in parts for k in a2c) and not all(k in have for k in a2c) and row.get("cohort_row"):
            row = _noted(row, f"single plane (4-chamber view only): {_echo_gaps(study, parts, a2c)}; biplane needs both 2-chamber phases")
        rows.append(row)
    return _pages_dropped(rows, pages, {nfc(r["case"]): r for r in results})


def echo_clip_rows(results: Sequence[Result], subjects: Sequence[Any] = (), pages: str | os.PathLike | None = None) -> list[Result]:
    """Rows for echo studies whose two apical views are clip cases named ``<study>_<view>`` (``p1_A4C``, ``p1_A2C``: labels
    over the cycle): biplane disks as ``medseg measure A4C_CLIP --a2c A2C_CLIP`` gives them (:func:`measure_clip_study`);
    a study with one clip with labels keeps its single-plane row. Rows, ``pages``: as :func:`echo_study_rows`'."""
    return _clip_studies(results, subjects, pages)[0]


def _clip_studies(results: Sequence[Result], subjects: Sequence[Any] = (), pages: str | os.PathLike | None = None) -> tuple[list[Result], dict[str, str]]:
    """(:func:`echo_clip_rows`, case -> the note its own row in cohort.csv gets: the study row it is
    one view of, or why its study is single plane)."""
    groups: dict[str, dict[str, list[Result]]] = {}  # by the study's name in Unicode NFC, then "4ch"/"2ch"
    named: dict[str, str] = {}
    for r in results:
        if (clip := echo_clip(r["case"])) and not split_phase(r["case"]):
            groups.setdefault(nfc(clip[0]), {}).setdefault(clip[1], []).append(r)
            named.setdefault(nfc(clip[0]), clip[0])
    own = {nfc(r["case"]): r for r in results}
    rows, notes = [], {}
    for key, views in sorted(groups.items()):
        study, cases = named[key], sorted(r["case"] for v in views.values() for r in v)
        if set(views) != {"4ch", "2ch"}:
            continue
        if any(len(v) > 1 for v in views.values()):  # p1_A4C and p1_4CH: which one is the view is not known
            rows.append({"case": study, "measure_note": f"not measured: {' and '.join(cases)} name two clips of one view (rename one)"})
            continue
        parts = [views["4ch"][0], views["2ch"][0]]
        if missing := [r for r in parts if r.get("status") not in ("ok", "skipped") or not r.get("output")]:  # as a lone clip
            why = _study_problems(study, parts, None)[1].removeprefix("not measured: ")
            notes.update({r["case"]: f"single plane: {why}; biplane needs both clips" for r in parts if r not in missing})
            _pages_dropped([{"case": study}], pages, own)  # no study row: an earlier run's page must not stand for it
            continue
        ok, note = _study_problems(study, parts, own.get(key))
        measured = measure_clip_study({k: v[0]["output"] for k, v in views.items()}, _subject(study, subjects, _source(parts)),
                                      _page(pages, study)) if ok else {}
        if ok and measured is not None and not measured.get("cohort_row") and any(r.get("cohort_row") for r in parts):
            why = str(measured.get("measure_note", "")).removeprefix("not measured: ")  # as a failed clip: each clip's row stands
            notes.update({r["case"]: f"single plane: biplane with {o['case']} not measured ({why})"
                          for r, o in zip(parts, parts[::-1]) if r.get("cohort_row")})
            _pages_dropped([{"case": study}], pages, own)
            continue
        if measured is not None:  # None: not two clips
            rows.append(_noted({"case": study, **measured}, note))
            notes.update({r["case"]: f"one view of study {study}: " + (f"its biplane EF (with {o['case']}) is in the row {study}" if
                          measured.get("cohort_row") else f"the row {study} says why it was not measured") for r, o in zip(parts, parts[::-1])})
    return _pages_dropped(rows, pages, own), notes


def _with_notes(results: Sequence[Result], notes: dict[str, str]) -> list[Result]:
    """``results``, the cohort rows of the cases in ``notes`` with that note added."""
    out = []
    for r in results:
        if r["case"] in notes and (row := r.get("cohort_row")):
            r = {**r, "cohort_row": {**row, "measure_note": _one_line("; ".join(n for n in (row.get("measure_note"), notes[r["case"]]) if n))}}
        out.append(r)
    return out


def _echo_gaps(study: str, parts: dict[tuple[str, str], Result], keys: Sequence[tuple[str, str]]) -> str:
    """What keeps the apical views ``keys`` of an echo study from being measured: each one
    missing, failed or handed over (with its reason)."""
    said = []
    for view, phase in keys:
        r = parts.get((view, phase))
        if r is None:
            said.append(f"no {study}_{view.upper()}_{phase} case")
        elif r.get("status") not in ("ok", "skipped") or not r.get("output"):
            said.append(f"{r['case']} {str(r.get('status', 'failed')).replace('_', ' ')}" + (f" ({r['reason']})" if r.get("reason") else ""))
    return "; ".join(said)


def _measure_echo_study(views: dict[tuple[str, str], str], subject: _Who = _Who(), page: Path | None = None) -> Result:
    from ..io import read_label_volume
    from ..measure.echo import measure_echo
    from ..measure.export import report_row

    keys = echo_view_keys(views)
    try:
        arrays, spacing = {}, {}
        for key in keys:
            lab = read_label_volume(views[key])
            if lab.n_frames * lab.n_slices != 1:
                raise MedsegError(f"{Path(views[key]).name}: an apical view is one 2-D image, got {lab.n_frames} frame(s) x {lab.n_slices} slice(s)")
            arrays[key] = lab.array[0, 0]
            sp = (float(lab.spacing[1]), float(lab.spacing[2])) if lab.spacing_known else None
            if key[0] in spacing and not _same_spacing(spacing[key[0]], sp):  # one pixel size per view, as `medseg measure` asks
                raise MedsegError(f"the ED and ES labels of the {key[0][0]}-chamber view have different pixel spacings "
                                  f"({spacing[key[0]]} vs {sp} mm)")
            spacing[key[0]] = sp
            if key == ("4ch", "ED"):
                spacing_field = _spacing_field(lab)
        lmap = _shared_label_map([views[k] for k in keys], "the views'")
        a2c = [arrays.get(("2ch", "ED")), arrays.get(("2ch", "ES"))]
        rep = measure_echo(arrays[("4ch", "ED")], arrays[("4ch", "ES")], *a2c, label_map=lmap,
                           spacing_a4c_mm=spacing["4ch"], spacing_a2c_mm=spacing.get("2ch"), **_body(subject))
        rep["spacing_mm"] = spacing_field
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    rep = _child_ranges(rep, subject)  # (the page's range flags as the row's)
    row = _with_subject(report_row(rep), subject)
    row["views"] = " ".join(f"{v.upper()}_{p}" for v, p in keys)
    named = {("4ch", "ED"): "ed", ("4ch", "ES"): "es", ("2ch", "ED"): "a2c_ed", ("2ch", "ES"): "a2c_es"}  # as `medseg measure` names them
    return _study_page({"cohort_row": row, "measure_note": _body_note(subject, rep)}, rep, page,
                       {p: arrays[("4ch", p)][None] for p in ("ED", "ES")}, lmap, {"ED": 0, "ES": 0}, {named[k]: views[k] for k in keys}, subject)


def _same_spacing(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    """Whether two (dy, dx) pixel spacings (None: unknown) are the same."""
    return a == b or (a is not None and b is not None and all(math.isclose(x, y, rel_tol=1e-4) for x, y in zip(a, b)))


def write_summary(out_dir: str | os.PathLike, results: Sequence[Result], options: BatchOptions | None = None) -> tuple[Path, Path]:
    """``summary.csv`` (one row per case) and ``summary.json`` (counts, settings, the medseg,
    python, torch and numpy versions, rows), atomically."""
    from .._files import write_json_atomic, write_text_atomic
    from .._runinfo import software_versions

    results = in_folder(out_dir, results)
    measure_keys = [k for k in KEY_MEASURES if any(k in r.get("measures", {}) for r in results)]
    extra = [k for k in ("prompt_note", "measure_note", "dicom_seg", "pdf") if any(r.get(k) for r in results)]
    fields = [*SUMMARY_FIELDS, *measure_keys, *extra]
    rows = [{**{k: r.get(k, "") for k in SUMMARY_FIELDS}, **r.get("measures", {}), **{k: r.get(k, "") for k in extra}}
            for r in sorted(results, key=_worst_first)]
    out = Path(out_dir)
    csv_path = write_text_atomic(out / "summary.csv", _csv_text(fields, rows))
    counts = Counter(r["status"] for r in results)
    obj = {"n_cases": len(results), "n_ok": counts["ok"], "n_skipped": counts["skipped"], "n_failed": counts["failed"],
           "n_handed_over": counts["handed_over"], "n_needs_review": sum(bool(r.get("needs_review")) for r in results),
           "settings": _settings(options) if options else None, "software": software_versions(),
           "cases": [_json_row({k: r.get(k, "") for k in fields}) for r in rows]}
    return csv_path, write_json_atomic(out / "summary.json", obj)


#: summary fields that hold a number or a boolean: empty in summary.csv, null (not "") in summary.json
_NUMERIC = ("needs_review", "confidence", "seconds", *KEY_MEASURES)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row for summary.json (every column of summary.csv): a number or boolean it lacks
    is null, as in a report, not the empty text of summary.csv (``pd.DataFrame(cases)["confidence"]
    .mean()`` failed on ``""``; a failed case had no measure keys at all)."""
    return {k: None if k in _NUMERIC and v == "" else v for k, v in row.items()}


def _settings(options: BatchOptions) -> dict[str, Any]:
    """The batch settings for summary.json; of the subjects file (body data) only its row count."""
    from .weights import weights_sha256

    d = dataclasses.asdict(options)
    d["subjects"] = len(options.subjects)
    # the weights --model and --adapter name now (a paper cites them; each case's sidecar has those it was made with)
    d["model_sha256"], d["adapter_sha256"] = weights_sha256(options.model, options.adapter)
    return d


def _worst_first(r: Result) -> tuple:
    """Failed cases first, then those handed over (whole, or a structure of them: a person draws it), then those
    needing review, lowest confidence first (of the structures written; of those handed over for a case handed over whole)."""
    rank = {"failed": 0, "handed_over": 1}.get(r.get("status", ""), 1 if r.get("handed_over") else 2 if r.get("needs_review") else 3)
    conf = r.get("confidence")
    return (rank, conf if isinstance(conf, (int, float)) else 2.0, r.get("case", ""))


def write_cohort_with_studies(options: Any, rows: Sequence[Result]) -> Path:
    """:func:`write_cohort` of the cases' ``rows`` and the study rows measured from them (echo
    views, ED/ES stacks, frames; with ``options.pdf`` their pages too), for a batch's
    :class:`~medseg.batch.cases.BatchOptions`."""
    pages = options.out_dir if options.pdf else None
    rows = in_folder(options.out_dir, rows)  # a shard's rows name the folder as its node mounted it
    from .study_ids import one_row_per_study

    clips, notes = _clip_studies(rows, options.subjects, pages)  # (first: a study row of another kind draws its page after)
    made = {"echo views": echo_study_rows(rows, options.subjects, pages), "clips": clips,
            "stacks": stack_study_rows(rows, options.subjects, options.basal_rule, pages)}
    studies, notes = one_row_per_study(rows, made, notes, pages)  # one study id made twice: one row saying so
    return write_cohort(options.out_dir, _with_notes(rows, notes) + studies)


def in_folder(out_dir: str | os.PathLike, results: Sequence[Result]) -> list[Result]:
    """``results`` with the files they name inside the output folder (``output``: the case's
    labels; ``pdf``: its page) named in ``out_dir``, where they are now: the rows of a shard run on
    a node that mounts OUT_DIR at another path, or of a folder moved since, named the place they
    were written at, where the merge read (and the tables named) files that are not there."""
    from .pages import PDF_DIR

    folder = Path(out_dir).absolute()  # as the summary names them (a library caller's relative OUT_DIR too)
    where = {"output": folder, "pdf": folder / PDF_DIR}
    return [{**r, **{k: str(at / Path(r[k]).name) for k, at in where.items() if r.get(k)}} for r in results]


def write_cohort(out_dir: str | os.PathLike, results: Sequence[Result]) -> Path:
    """``cohort.csv``: one row per measured case (``case``, ``per_study``: FALSE for a case a study
    row was measured from, the segmentation's ``needs_review`` and lowest ``confidence``, then the
    flattened report columns), and per study row (echo views, ED/ES stacks, frames; one with a
    ``measure_note`` could not be measured: the note and no numbers), and
    ``cohort.png`` (:func:`medseg.measure.sheets.cohort_png`: the studies' LVEF, volumes and
    mass at a glance, those needing review ringed; a study measured from its ED and ES cases
    or its echo views is one dot, not three) when two or more studies have a measure."""
    from .._files import shown, write_text_atomic
    from ..measure.sheets import cohort_png

    review = {r["case"] for r in results if r.get("needs_review")}
    conf = {r["case"]: float(r["confidence"]) for r in results if isinstance(r.get("confidence"), (int, float))}
    parts: dict[str, list[str]] = {}
    for r in results:
        if (study := study_of(r["case"])) is not None:
            parts.setdefault(nfc(study), []).append(r["case"])  # a study's cases named in two Unicode forms (NFC, a Mac's NFD)
    rows = []
    for r in results:
        study_note = "status" not in r and r.get("measure_note")  # a study row (not a case: its note is in summary.csv)
        if not r.get("cohort_row") and not study_note:
            continue
        # the segmentation's review state beside the numbers; a study row (echo views, ED/ES
        # stacks, frames) needs review when one of its cases does, at their lowest confidence
        cases = [r["case"], *parts.get(nfc(r["case"]), [])]
        low = [conf[c] for c in cases if c in conf]
        rows.append({"case": r["case"], "needs_review": any(c in review for c in cases), "confidence": min(low) if low else "",
                     **({"measure_note": study_note} if study_note else {}), **(r.get("cohort_row") or {}),
                     **({"pdf": r["pdf"]} if r.get("pdf") else {})})  # --pdf: its study page
    ids = {nfc(row["case"]) for row in rows}  # R: subset(cohort, per_study), one row per study, not also its frames or views
    rows = [{"case": row["case"], "per_study": nfc(study_of(row["case"]) or "") not in ids, **row} for row in rows]
    fields: list[str] = ["case"]
    for row in sorted(rows, key=lambda r: -("subject" in r) - ("patient_id" in r)):  # a DICOM row's ids and scanner lead, not after a NIfTI row's numbers
        fields += [k for k in row if k not in fields]
    path = write_text_atomic(Path(out_dir) / "cohort.csv", _csv_text(fields, rows))
    # the plot names studies as a console line does (a non-UTF-8 byte of a name: matplotlib cannot draw its surrogate)
    flagged = {shown(row["case"]) for row in rows if row["needs_review"]}
    png = Path(out_dir) / "cohort.png"
    if cohort_png([{**row, "case": shown(row["case"])} for row in overview_rows(rows)], png, flagged) is None:
        png.unlink(missing_ok=True)  # an old overview must not stand for this cohort
    return path


def overview_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cohort rows ``cohort.png`` shows: a study once, not also the cases it was measured
    from (its ED and ES stacks, frames or echo views, whose mass and volumes its row has)."""
    ids = {nfc(row["case"]) for row in rows}  # in Unicode NFC, as the study rows are made
    return [row for row in rows if nfc(study_of(row["case"]) or "") not in ids]


def _csv_text(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    from .._files import csv_text

    return csv_text(list(fields), rows)

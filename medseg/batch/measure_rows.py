"""Each case's measurements for the summary and ``cohort.csv`` (:func:`_measure`), with the
body data of its subjects row or DICOM header, and the rows of an earlier run reused by
``--resume`` when nothing they were measured from has changed (:func:`measured_row`).
Moved out of :mod:`medseg.batch.cohort`, which imports these names back. Rules: :mod:`medseg.batch`."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MedsegError
from .cases import BatchOptions, Result, _one_line, echo_view, split_phase

#: cohort.csv columns medseg writes besides a report's (a subjects file's column of one of these names is
#: written ``subjects.<name>``)
COHORT_OWN = ("case", "needs_review", "confidence", "measure_note", "subject", "dicom_body")
#: report_row keys copied into the summary with ``measure`` (those present for the case)
KEY_MEASURES = ("lv.edv_ml", "lv.esv_ml", "lv.ef_pct", "rv.edv_ml", "rv.ef_pct", "lv_mass_g",
                "volumes_ml.lv", "volumes_ml.myo", "volumes_ml.rv")


def _measure(out: Path, options: BatchOptions, case_id: str, case_input: str | None = None,
             who: _Who | None = None, labels: Callable[[], Any] | None = None, page: Path | None = None) -> Result:
    """Measurements of the written labels: measure_phase (3-D), measure_cine (4-D), or for one
    apical view over the cycle (one slice, several frames) measure_echo_clip (EF even without
    pixel spacing); with the case's row of ``options.subjects`` (BSA, indexed values, ...).
    ``who``: that row and the input's DICOM body data when already looked up (:func:`_subject`);
    ``labels``: what reads ``out`` (:func:`medseg.io.read_label_volume`), when the caller has read it already;
    ``page``: where its study page goes (``--pdf``: :mod:`medseg.batch.pages`; ``pdf`` or ``pdf_note`` in the result)."""
    from ..io import read_label_volume
    from ..io.writers import read_sidecar, sidecar_path, sidecar_problem
    from ..labels import LabelMap
    from ..measure.echo import measure_echo_clip
    from ..measure.export import report_row
    from ..measure.report import measure_cine, measure_phase

    problem = sidecar_problem(out)  # read as every reader reads it (a byte-order mark is fine; truncated, empty, a list are not)
    side = read_sidecar(out) if problem is None else None
    if side is None:
        return {"measure_note": _one_line(f"not measured: {sidecar_path(out).name} {problem or 'names no label map'}")}
    lmap = LabelMap.parse(side["label_map"])
    if "lv" not in lmap:
        return {"measure_note": "not measured: the label map has no lv"}
    subject = who if who is not None else _subject(case_id, options.subjects, case_input)
    try:
        lab = labels() if labels is not None else read_label_volume(out)  # spacing unknown when the sidecar says the input had none
        if lab.n_slices == 1 and lab.n_frames > 1:
            spacing = (float(lab.spacing[1]), float(lab.spacing[2])) if lab.spacing_known else None
            rep = measure_echo_clip(lab.array[:, 0], label_map=lmap, spacing_mm=spacing, **_body(subject))
            rep["spacing_mm"] = _spacing_field(lab)
        elif lab.n_slices == 1 and lab.n_frames == 1:  # one 2-D image: no volume of its own
            ev, sp = echo_view(case_id), split_phase(case_id)
            return {"measure_note": f"one apical view: measured in the row of its study {ev[0]} (with both 4-chamber phases)" if ev else
                    f"one view: measured in the row of its study {sp[0]} (with its other phase: single-plane disks)" if sp else
                    "not measured: one 2-D image gives no volume (apical views named <study>_4CH_ED, _4CH_ES, ... get a study "
                    "row; a cine of the view gets its EF)"}
        elif not lab.spacing_known:
            return {"measure_note": "not measured: the input has no physical spacing"}
        else:
            rep = (measure_phase(lab, None, lmap, basal_rule=options.basal_rule) if lab.n_frames == 1 else
                   measure_cine(lab, None, lmap, basal_rule=options.basal_rule, **_body(subject, lab),
                                picked_phases=(side.get("provenance") or {}).get("frame_pick")))
            _basal_rule_said(rep, options.basal_rule)
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    rep = _child_ranges(rep, subject)  # (the page's range flags as the row's)
    row = {**_with_subject(report_row(rep), subject), **note_cells([out])}
    res = {"measures": {k: row[k] for k in KEY_MEASURES if k in row}, "cohort_row": row, "measure_note": _body_note(subject, rep)}
    return {**res, **(_case_page(rep, lab, lmap, out, page, case_id, subject, options) if page is not None else {})}


def _case_page(rep: dict[str, Any], lab: Any, lmap: Any, out: Path, page: Path, case_id: str, who: _Who, options: BatchOptions) -> Result:
    """The page of a case's report (:func:`medseg.batch.pages.write_page`): one phase's labels, or
    a cine's (or an apical clip's) ED and ES frames."""
    from .pages import write_page

    if lab.n_frames == 1:
        phases, frames = {"labels": lab.array[0]}, {"labels": 0}
    else:
        frames = {k: rep[f] for k, f in (("ED", "ed_frame"), ("ES", "es_frame")) if rep.get(f) is not None}
        phases = {k: lab.array[f] for k, f in frames.items()}
    return write_page(rep, page, phases, lmap, frames, {"labels": out}, case_id, modality=options.modality, body=_given_body(who),
                      study=dict(who.study))


@dataclass(frozen=True)
class _Who:
    """Whose body data a measurement takes: the case's or study's subjects row (or None) and
    what its DICOM input's header records (:func:`medseg.io.dicom.dicom_body`)."""

    subject: Any = None
    dicom: tuple[tuple[str, Any], ...] = ()
    study: tuple[tuple[str, Any], ...] = ()  # the DICOM input's patient id, study date, study UID, series, scanner (:func:`medseg.io.dicom.dicom_study`)


def _subject(case_id: str, subjects: Sequence[Any], source: str | None = None) -> _Who:
    """The row of ``subjects`` (:mod:`medseg.subjects`) that belongs to ``case_id``, and the
    body data of the DICOM input ``source`` (the fields the row leaves out are taken from it)."""
    from ..io.dicom import dicom_body, dicom_study
    from ..subjects import subject_for

    return _Who(subject_for(case_id, subjects), tuple(dicom_body(source).items()) if source else (),
                tuple(dicom_study(source).items()) if source else ())


def _body(who: _Who, labels: Any = None) -> dict[str, Any]:
    """The measure keyword arguments of a subjects row, its missing fields from the DICOM
    header, and, for a short-axis study (``labels``: its label Volume), the heart rate: the
    row's, else the image's DICOM one that the labels' sidecar kept
    (:func:`medseg.measure.report.heart_rate_options`). Echo (``labels`` None) takes no heart rate."""
    from ..measure.report import heart_rate_options

    body = _given_body(who, heart_rate=labels is not None)
    if ("height_cm" in body) != ("weight_kg" in body):  # one without the other: no BSA, which the row's note says
        body.pop("height_cm", None)  # (the measure functions refuse half of it)
        body.pop("weight_kg", None)
    if labels is not None and "heart_rate" not in body:
        body.update(heart_rate_options(labels))
    return body


def _child_ranges(report: dict[str, Any], who: _Who) -> dict[str, Any]:
    """``report`` without adults' range flags for a child's height that :func:`_body` left out
    (a height without a weight gives no BSA, but still says the ranges do not apply), with the
    implausibility flags `medseg measure` adds (:func:`medseg.review.add_implausible`: an LV mass
    of 17 g was flagged by `measure`, not in the batch's row and page)."""
    from ..measure.reference import adult_ranges_only
    from ..review import add_implausible

    report = dict(report)
    add_implausible(report)
    height = _given_body(who).get("height_cm")
    if height is None or "flags" not in report or any(f.get("code") == "reference_ranges_not_applied" for f in report["flags"]):
        return report
    return dict(report, flags=adult_ranges_only(report["flags"], height))


def _given_body(who: _Who, heart_rate: bool = False) -> dict[str, Any]:
    """The body data of a subjects row, its missing fields from the DICOM header."""
    return {**dict(who.dicom), **(who.subject.body(heart_rate=heart_rate) if who.subject is not None else {})}


def _body_note(who: _Who, report: dict[str, Any]) -> str:
    """The cohort row's note when a report that indexes to BSA got a height without a weight
    or the reverse (a subjects row or a DICOM header that records one): no BSA, said."""
    if "bsa_m2" not in report:
        return ""
    body = _given_body(who)
    if ("height_cm" in body) == ("weight_kg" in body):
        return ""
    given, other = ("height", "weight") if "height_cm" in body else ("weight", "height")
    return f"no BSA or indexed values: a {given} and no {other} (subjects row or DICOM header)"


def _with_subject(row: dict[str, Any], who: _Who) -> dict[str, Any]:
    """The cohort row with the id of the subjects row it was measured with (after case) and that
    row's other columns (site, vendor, group: :attr:`medseg.subjects.Subject.columns`), the
    body data fields taken from the DICOM header (``dicom_body``) and the DICOM input's patient id, study
    date, study UID and series description (a patient's baseline and follow-up told apart)."""
    own = who.subject.body() if who.subject is not None else {}
    from_dicom = " ".join(k for k, _ in who.dicom if k not in own)
    study = dict(who.study)
    taken = {*row, *study, *COHORT_OWN}  # a subjects column named as one of medseg's is written subjects.<name>
    columns = {(k if k not in taken else f"subjects.{k}"): v for k, v in (who.subject.columns if who.subject is not None else ())}
    return {**({"subject": who.subject.id} if who.subject is not None else {}), **columns,
            **({"dicom_body": from_dicom} if from_dicom else {}), **study, **row}


def _basal_rule_said(report: dict[str, Any], basal_rule: bool) -> None:
    """A report measured with ``--no-basal-rule`` gets its info flag ``basal_rule_off`` (as
    ``medseg measure --no-basal-rule`` gives it), so the cohort row's flags say so."""
    if not basal_rule:
        from ..measure.qc import basal_rule_off_flag

        report.setdefault("flags", []).append(basal_rule_off_flag("--no-basal-rule"))


def note_cells(files: Iterable[str | Path]) -> dict[str, Any]:
    """A cohort row's cells of the notes on how the label ``files``' images were read and of the
    slices their DICOM series lacked (:func:`medseg.measure.input_notes.input_notes`), named and
    written as in the row of ``medseg measure --csv`` (``inputs.missing_slices``: "3 4",
    ``inputs.us_region_note``, ...); {} when their sidecars record none."""
    from ..measure.export import report_row
    from ..measure.input_notes import input_notes

    notes = input_notes(files)
    return {k: v for k, v in report_row({"inputs": notes}).items() if k.startswith("inputs.")} if notes else {}


def _spacing_field(lab: Any) -> list[float] | None:
    """The report's ``spacing_mm`` of an apical view (dz, dy, dx; None without pixel spacing), as
    ``medseg measure`` gives it: the cohort row's ``spacing_mm`` was empty for every echo study."""
    return [float(x) for x in lab.spacing] if lab.spacing_known else None


#: bumped when what :func:`measured_row` stores or how its key is made changes
_ROW_FORMAT = 2  # 2: the rows' inputs.* note cells (note_cells)


def measured_row(out: Path, options: BatchOptions, case_id: str, case_input: str | None = None,
                 labels: Callable[[], Any] | None = None) -> Result:
    """:func:`_measure` of a case, or the same result an earlier run measured and stored in
    ``OUT_DIR/measured/<case>.json`` when nothing it depends on has changed: the label file's
    and its sidecar's bytes (sha256: labels edited by hand, a new label map, other spacing or
    timing), the case's subjects row and DICOM body data (:func:`_subject`, looked up anew),
    ``--no-basal-rule``, the case's id and input, and the software (medseg's source files,
    numpy and scipy versions). Anything else, or a store that cannot be read, measures again;
    a result is stored only when JSON gives it back unchanged (no tuples, no numpy numbers) and
    the files did not change while it was measured. ``labels``: the case's
    :class:`~medseg.batch.kept.label_reader`, used when the file is still the one it read."""
    from ..io import sidecar_path
    from .pages import drop_page, page_fresh, page_path

    who = _subject(case_id, options.subjects, case_input)
    key = _row_key(out, options, case_id, case_input, who)
    store = _row_store(options.out_dir, case_id)
    page = page_path(options.out_dir, case_id) if options.pdf else None  # --pdf: a missing or older page measures it again
    if key is not None:
        try:
            stored = json.loads(store.read_text(encoding="utf-8"))
            if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("result"), dict):
                if page is None or not stored["result"].get("cohort_row"):
                    if page is not None:
                        drop_page(page)  # not measured: no page
                    return stored["result"]
                if page_fresh(page, [out, sidecar_path(out)]):
                    return {**stored["result"], "pdf": str(page)}
        except (OSError, ValueError, RecursionError):
            pass  # none yet, or damaged: measured again (and stored anew)
    from .kept import file_stat

    if labels is not None and getattr(labels, "stat", None) != file_stat(Path(out)):  # saved over since the checks read it
        labels = None
    res = _measure(out, options, case_id, case_input, who=who, labels=labels, page=page)
    made = {k: res.pop(k) for k in ("pdf", "pdf_note") if k in res}  # the page is not stored: its file is
    if key is not None and _plain(res) and _row_key(out, options, case_id, case_input, who) == key:  # (not changed while measured)
        from .._files import write_text_atomic

        try:
            write_text_atomic(store, json.dumps({"key": key, "result": res}))
        except OSError:  # a read-only or full output folder: the case is measured again next time
            pass
    if page is not None and "pdf" not in made:
        drop_page(page)  # not measured, or its page failed: an older page must not stand for it
    return with_page(res, made)


def with_page(res: Result, made: dict[str, str]) -> Result:
    """A case's or study row's result with its page's path (``pdf``) or why it has none, added to
    its ``measure_note``."""
    if made.get("pdf_note"):
        res = {**res, "measure_note": _one_line("; ".join(n for n in (res.get("measure_note"), made["pdf_note"]) if n))}
    return {**res, **({"pdf": made["pdf"]} if made.get("pdf") else {})}


def _row_store(out_dir: str | Any, case_id: str) -> Path:
    """Where :func:`measured_row` keeps a case's measured result (a folder of its own: no name
    of it is a case's sidecar)."""
    from .._nfc import as_written

    return as_written(Path(out_dir) / "measured" / f"{case_id}.json")  # an earlier run's, named in another Unicode form (resume)


def _row_key(out: Path, options: BatchOptions, case_id: str, case_input: str | None, who: _Who) -> str | None:
    """sha256 of everything :func:`_measure` reads besides its code; None when the label file or
    its sidecar cannot be read (then it is measured, and says why)."""
    import hashlib

    from ..io import sidecar_path

    try:
        files = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (Path(out), sidecar_path(out))]
    except OSError:
        return None
    parts = [_ROW_FORMAT, _software_digest(), case_id, str(case_input or ""), *files, bool(options.basal_rule), repr(who)]
    return hashlib.sha256(json.dumps(parts).encode("utf-8", "surrogatepass")).hexdigest()


@functools.cache
def _software_digest() -> str:
    """sha256 of medseg's source files and the numpy and scipy versions: a row measured by other
    code is measured again (the version number alone stays the same between releases)."""
    import hashlib

    import numpy
    import scipy

    h = hashlib.sha256(f"{numpy.__version__} {scipy.__version__}".encode())
    root = Path(__file__).resolve().parents[1]
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode("utf-8", "surrogatepass") + b"\0" + f.read_bytes())
    return h.hexdigest()


def _plain(obj: Any) -> bool:
    """Whether JSON gives ``obj`` back exactly: dicts with text keys, lists, text, bool, int,
    float, None (a tuple comes back a list, a numpy number a float)."""
    if type(obj) is dict:
        return all(type(k) is str and _plain(v) for k, v in obj.items())
    if type(obj) is list:
        return all(_plain(v) for v in obj)
    return type(obj) in (str, int, float, bool, type(None))


def measure_clip_study(clips: dict[str, str], subject: _Who = _Who(), page: Path | None = None) -> Result | None:
    """The row of an echo study whose apical views are two clip cases (``<study>_A4C``,
    ``<study>_A2C``; ``clips``: "4ch"/"2ch" -> labels): biplane disks, each view's ED and ES found
    in its own clip with its own pixel spacing and frame times, as ``medseg measure A4C_CLIP --a2c
    A2C_CLIP`` gives them (:func:`medseg.measure.echo_clips.measure_echo_biplane_clips`). None when
    the two are not both one view over the cycle (single images: their own rows say why)."""
    from ..io import read_label_volume
    from ..measure.echo_clips import measure_clip_volumes
    from ..measure.export import report_row

    try:
        vols = {k: read_label_volume(p) for k, p in clips.items()}
        if not all(v.n_slices == 1 and v.n_frames > 1 for v in vols.values()):
            return None
        lmap = _shared_label_map([clips["4ch"], clips["2ch"]], "the clips'")
        rep, labels, frames = measure_clip_volumes(vols["4ch"], vols["2ch"], (Path(clips["4ch"]).name, Path(clips["2ch"]).name),
                                                   label_map=lmap, **_body(subject))
    except MedsegError as e:
        return {"measure_note": _one_line(f"not measured: {e}")}
    rep = _child_ranges(rep, subject)  # (the page's range flags as the row's)
    row = _with_subject(report_row(rep), subject)
    row["views"] = "4CH 2CH"  # as the four-file study row names its views (4CH_ED ...); clips.a4c.ed_frame ...: each clip's frames
    return _study_page({"cohort_row": row, "measure_note": _body_note(subject, rep)}, rep, page, labels,
                       lmap, frames, {"labels": clips["4ch"], "a2c": clips["2ch"]}, subject)


def _shared_label_map(outputs: Sequence[str], whose: str):
    """The one label map the outputs' sidecars give (with an ``lv``), else MedsegError."""
    from ..io import read_sidecar
    from ..labels import LabelMap

    maps = {json.dumps((read_sidecar(p) or {}).get("label_map"), sort_keys=True) for p in outputs}
    if len(maps) != 1 or maps == {"null"}:
        raise MedsegError(f"{whose} sidecars do not give one label map")
    lmap = LabelMap.parse(json.loads(maps.pop()))
    if "lv" not in lmap:
        raise MedsegError(f"the label map has no lv ({lmap.to_string()})")
    return lmap


def _study_page(res: Result, rep: dict[str, Any], page: Path | None, labels: dict[str, Any], lmap: Any, frames: dict[str, int],
                files: dict[str, str], subject: _Who) -> Result:
    """A study row's result, its cohort row with the notes of its label ``files`` (:func:`note_cells`),
    with its page (``--pdf``: ``page`` not None): :func:`medseg.batch.pages.write_page`."""
    if res.get("cohort_row") and (notes := note_cells(files.values())):
        res = {**res, "cohort_row": {**res["cohort_row"], **notes}}
    if page is None:
        return res
    from .pages import write_page

    return with_page(res, write_page(rep, page, labels, lmap, frames, files, page.stem, body=_given_body(subject), study=dict(subject.study)))

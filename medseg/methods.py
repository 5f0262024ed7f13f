"""A methods section for a paper, from what a run really did: ``OUT_DIR/METHODS.md`` at the end
of ``medseg batch``, ``medseg info LABELS --methods`` for one ``medseg segment`` output, and
:func:`methods_text` for either.

Every sentence comes from the run: its summary.json (options, counts, software), each study's
sidecar (model and adapter sha256, the prompts and operations its action log records, the mask
thresholds and the slices the anatomical rules removed, the review flags, edits), cohort.csv
(the measurement conventions each study's row records) and the code's constants (propagation
stops, rule margins, myocardial density, basal rule, disks, reference-range sources), imported
here, never typed. Studies made differently (a ``--resume`` with other options or weights) are
counted per kind, not merged into one claim. Citations: :mod:`medseg._methods_cite`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MedsegError

METHODS_FILE = "METHODS.md"


@dataclass
class Study:
    """What one study's sidecar says was done to it."""

    case: str
    command: str = ""
    model: tuple[Any, Any, Any, Any] = (None, None, None, None)  # model_id, model_sha256, adapter_id, adapter_sha256
    version: str | None = None
    device: str | None = None
    prompting: tuple[Any, ...] = ()  # (mode, prompt kinds, source, through, several frames, --frames text, ED/ES found)
    structures: tuple[str, ...] = ()
    thresholds: tuple[tuple[str, float], ...] = ()
    removed: Counter = field(default_factory=Counter)  # rule -> slices removed
    filled: int = 0
    probed: int = 0
    edited: bool = False
    edit_known: bool = True  # False: a label file whose sidecar records no digest to check it against
    flagged: bool = False
    flagged_volumes: int = 0
    flagged_slices: int = 0
    min_confidence: float | None = None
    handed_over: tuple[str, ...] = ()
    undone: bool = False  # its log holds an undo: counts of slices removed, filled, probed include undone operations


@dataclass
class Run:
    """A batch (its summary.json, sidecars and cohort.csv) or one ``segment`` output."""

    kind: str  # "batch" or "segment"
    studies: list[Study]
    counts: dict[str, int]
    settings: dict[str, Any]
    software: dict[str, Any]
    failed: Counter = field(default_factory=Counter)  # reason -> cases
    not_segmented: Counter = field(default_factory=Counter)  # skipped without an output: reason -> cases
    handed_over: int = 0
    kept: int = 0
    unreadable: list[str] = field(default_factory=list)
    cohort: list[dict[str, str]] | None = None
    created: str = ""


def methods_text(path: str | Path) -> str:
    """The methods section (Markdown: paragraphs, the facts behind them, a Cite list) of a batch
    output folder (or its summary.json) or of one label file medseg wrote (or its sidecar JSON).

    Raises:
        MedsegError: not a batch folder or labels with a medseg sidecar; a summary or sidecar
            that cannot be read.
    """
    from ._methods_text import compose

    return compose(gather(path))


def write_batch_methods(out_dir: str | Path) -> Path | None:
    """``OUT_DIR/METHODS.md`` of a batch that has ended (atomically); None when the batch wrote
    no summary.json (a caller that replaced the summary writer: nothing to describe).

    Raises:
        OutputDiskFull: it cannot be written (every case is done; --resume writes it again).
    """
    from ._files import write_text_atomic
    from .errors import OutputDiskFull

    if not (Path(out_dir) / "summary.json").is_file():
        return None
    text = methods_text(out_dir)
    try:
        return write_text_atomic(Path(out_dir) / METHODS_FILE, text)
    except OSError as e:
        raise OutputDiskFull(f"cannot write {METHODS_FILE} in {out_dir} ({e.strerror or e}): every case is done; "
                             "run the same command with --resume to write it") from None


def gather(path: str | Path) -> Run:
    """The :class:`Run` behind ``path`` (see :func:`methods_text`)."""
    from ._files import shown

    p = Path(path)
    if p.is_dir() or p.name == "summary.json":
        folder = p if p.is_dir() else p.parent
        if not (folder / "summary.json").is_file():
            raise MedsegError(f"{shown(folder)} holds no summary.json: not the output folder of a medseg batch")
        return _batch_run(folder)
    side = _read_json(p) if p.suffix.lower() == ".json" else _sidecar_of(p)
    prov = side.get("provenance") if isinstance(side, dict) else None
    if not isinstance(prov, dict) or not isinstance(side.get("label_map"), dict) or not (prov.get("model_sha256") or prov.get("actions")):
        raise MedsegError(f"{shown(p)}: its sidecar records no model or prompts (labels drawn by hand or imported?): "
                          "--methods needs labels a medseg model made")
    study = study_from(str(prov.get("case") or p.name), prov, side["label_map"])
    if p.suffix.lower() != ".json":  # the labels themselves: changed since medseg wrote them (ITK-SNAP, nibabel)?
        from .batch.kept import labels_differ

        differ = labels_differ(p, prov)
        study.edited = study.edited or bool(differ)
        study.edit_known = study.edited or differ is not None
    flagged = int(study.flagged)
    software = {k: prov.get(k) for k in ("medseg_version", "python_version", "torch_version", "numpy_version")}
    return Run("segment", [study], {"n_cases": 1, "n_needs_review": flagged}, {}, software, created=str(prov.get("created") or ""))


def _sidecar_of(labels: Path) -> dict[str, Any]:
    from ._files import shown
    from .io.writers import sidecar_path, sidecar_problem

    if not labels.is_file():
        raise MedsegError(f"{shown(labels)} is not a file")
    if not sidecar_path(labels).is_file():
        raise MedsegError(f"{shown(labels)} has no medseg sidecar ({shown(sidecar_path(labels).name)}): --methods needs labels medseg wrote "
                          "(or a batch's output folder)")
    problem = sidecar_problem(labels)
    if problem is not None:
        raise MedsegError(f"{shown(sidecar_path(labels).name)} {problem}: it cannot say how the labels were made")
    return _read_json(sidecar_path(labels))


def _read_json(path: Path) -> Any:
    """A summary.json or sidecar as every medseg reader reads it (:mod:`medseg._json_files`: a
    byte-order mark is fine); MedsegError naming it and what is wrong."""
    from ._json_files import read_json_file

    return read_json_file(path, expect=None, allow_nan=True)  # a NaN a script added is read, as read_sidecar reads it


def _batch_run(folder: Path) -> Run:
    from ._files import read_medseg_csv
    from ._runinfo import utc_timestamp

    summary = _read_json(folder / "summary.json")
    if not isinstance(summary, dict) or not isinstance(summary.get("cases"), list):
        raise MedsegError(f"{folder / 'summary.json'} is not a medseg batch summary (no cases)")
    counts = {k: int(v) for k, v in summary.items() if k.startswith("n_") and isinstance(v, int)}
    run = Run("batch", [], counts, summary.get("settings") or {}, summary.get("software") or {}, created=utc_timestamp())
    for row in summary["cases"]:
        status, reason, out = row.get("status"), _case_reason(row), row.get("output") or ""
        if status == "failed":
            run.failed[reason or "no reason recorded"] += 1
        elif status == "handed_over":
            run.handed_over += 1
        elif status == "skipped" and not out:
            run.not_segmented[reason] += 1
        if status not in ("ok", "skipped") or not out:
            continue
        try:
            side = _case_sidecar(folder, out)
            study = study_from(str(row.get("case")), side["provenance"], side["label_map"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            run.unreadable.append(str(row.get("case")))
            continue
        if reason.startswith("kept: "):  # labels corrected since the batch wrote them (napari, ITK-SNAP), not overwritten
            run.kept += 1
            study.edited = True
        run.studies.append(study)
    if run.settings.get("measure") and (folder / "cohort.csv").is_file():
        try:
            run.cohort = read_medseg_csv(folder / "cohort.csv")
        except (OSError, ValueError):
            run.cohort = None
    return run


def _case_sidecar(folder: Path, out: str) -> dict[str, Any]:
    """The sidecar of a case's labels as :func:`medseg.io.read_sidecar` reads it everywhere
    (``sidecar_problem``: not valid JSON, nested too deep, an invalid label map): the labels of
    that name in ``folder``, where a batch writes them (the output folder moved or copied since:
    the summary's path is the original's). Never those at the path the summary records: in a copy
    whose case was removed, that is the original folder's, perhaps run again since with other
    options. Raises ValueError when there is none or it cannot be read."""
    from .io.writers import read_sidecar, sidecar_problem

    labels = folder / Path(out).name  # a batch's labels lie in its output folder: this copy's, not the folder it was copied from
    if not labels.is_file():
        raise ValueError(f"no {labels.name} in the folder")
    problem = sidecar_problem(labels)
    side = read_sidecar(labels) if problem is None else None
    if side is None:
        raise ValueError(problem or "no medseg sidecar")
    return side


#: a folder of several studies: the list of their patient ids, dates and UIDs in its reason (summary.csv keeps it)
_STUDY_LIST = re.compile(r"(holds \d+ studies) \(.*?\)(?=, \d+ series)")


def _case_reason(row: dict[str, Any]) -> str:
    """A summary row's reason, its case's input path (a local folder, not for a paper) shortened to
    the file or folder name wherever the reason quotes it ("cannot read NIfTI file /home/..."), and
    the patient ids and study dates of a folder holding several studies left out."""
    reason, src = str(row.get("reason") or ""), str(row.get("input") or "")
    reason = _STUDY_LIST.sub(r"\1", reason)
    return reason.replace(src, Path(src).name) if src and Path(src).name else reason


def study_from(case: str, prov: dict[str, Any], label_map: dict[str, Any]) -> Study:
    """A :class:`Study` from a sidecar's provenance."""
    from .edits import edited_by_hand

    actions = [a for a in prov.get("actions") or [] if isinstance(a, dict)]
    review: dict[str, Any] = prov["review"] if isinstance(prov.get("review"), dict) else {}
    flags = [f for f in review.get("flags") or [] if isinstance(f, dict)]
    removed: Counter = Counter()
    filled = probed = 0
    for a in actions:
        for r in a.get("removed") or []:
            if isinstance(r, dict):
                removed[str(r.get("rule"))] += 1
        filled += len(a.get("filled") or [])
        probed += len(a.get("probed") or [])
    thresholds: dict[str, Any] = prov["mask_thresholds"] if isinstance(prov.get("mask_thresholds"), dict) else {}
    command = str(prov.get("command") or ("napari" if prov.get("tool") == "medseg-napari" else ""))
    model = [None if prov.get(k) is None else str(prov.get(k)) for k in ("model_id", "model_sha256", "adapter_id", "adapter_sha256")]
    model[0] = _model_id(model[0], model[1])
    return Study(
        case=case, command=command,
        model=tuple(model),  # type: ignore[arg-type]
        version=str(prov.get("medseg_version") or "") or None, device=str(prov.get("device") or "") or None, prompting=_prompting(prov, actions),
        structures=_segmented(actions, label_map), thresholds=tuple(sorted((str(k), float(v)) for k, v in thresholds.items())),
        removed=removed, filled=filled, probed=probed, edited=edited_by_hand(prov),
        flagged=bool(review.get("needs_review", prov.get("needs_review"))),
        flagged_volumes=sum(f.get("level") == "volume" for f in flags),
        flagged_slices=len({(f.get("structure"), f.get("frame"), f.get("slice")) for f in flags if f.get("slice") is not None}),
        min_confidence=prov.get("min_confidence"), handed_over=tuple(prov.get("handed_over") or ()),
        undone=any(a.get("op") == "undo" for a in actions))


def _model_id(model_id: str | None, sha256: str | None) -> str | None:
    """The recorded model id as medseg records it now: the shipped default's weights are ``default``
    however they were given (a sidecar of an earlier medseg, kept by ``--resume``, says
    ``checkpoints/medseg_default``; the text called the same weights two models)."""
    from .models.registry import shipped_sha256

    return "default" if model_id and sha256 and sha256 == shipped_sha256() else model_id


def _segmented(actions: list[dict[str, Any]], label_map: dict[str, Any]) -> tuple[str, ...]:
    """The structures the model was asked for (prompted, propagated, zero-click), in the label
    map's order; the whole map when the log names none. A napari save's map also lists the
    panel's structures nobody prompted: those were not segmented."""
    from ._session_replay import structures_in_log

    named = structures_in_log(actions)
    names = tuple(str(k) for k in label_map)
    return tuple(n for n in names if n in named) or names


def _prompting(prov: dict[str, Any], actions: list[dict[str, Any]]) -> tuple[Any, ...]:
    """How a study was prompted, from its action log: (mode, prompt kinds, source, propagation
    axes, several frames, --frames text, ED/ES found by a zero-click pass)."""
    prompts = [a.get("prompt") or {} for a in actions if a.get("op") == "prompt"]
    through = tuple(sorted({str(a.get("through")) for a in actions if a.get("op") == "propagate"}))
    auto = any(a.get("op") == "auto" for a in actions)
    per = Counter((p.get("structure"), p.get("frame")) for p in prompts)
    if auto:
        mode = "auto+prompts" if prompts else "auto"
    elif not prompts:
        mode = "none"
    elif through and max(per.values()) == 1:
        mode = "key"
    else:  # without propagation a box on every slice comes from reference labels only (batch, evaluate)
        mode = "propagated" if through else "every" if prov.get("reference") else "chosen"
    kinds = tuple(k for k, present in (("box", any("box" in p for p in prompts)), ("click", any("points" in p or "negative_points" in p for p in prompts))) if present)
    source = "reference" if prov.get("reference") else "file" if prov.get("prompts_file") else ""
    frames = {p.get("frame") for p in prompts}
    settings: dict[str, Any] = prov["settings"] if isinstance(prov.get("settings"), dict) else {}
    asked = settings.get("frames_asked") if isinstance(settings.get("frames_asked"), str) else None
    return (mode, kinds, source, through, len(frames) > 1, asked, bool(prov.get("frame_pick")))

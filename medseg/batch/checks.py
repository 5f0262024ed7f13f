"""The checks of a case's earlier output: whether ``--resume`` may keep it
(:func:`output_problem`, :func:`handed_over_record`) and the review fields of its summary row
(:func:`_review_fields`), from its sidecar or handed-over record. Used by :mod:`medseg.batch.run`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._files import sha256_path
from .._json_files import json_file_problem, read_json_file
from ..errors import MedsegError
from .cases import BatchOptions, CaseSpec, Result, dicom_seg_dir, handed_over_path, output_path, review_png_path
from .weights import _weights_changed


def output_problem(case: CaseSpec, options: BatchOptions, labels: Callable[[], Any] | None = None) -> str | None:
    """None when the case's output is complete and valid for these settings, else why not.
    ``labels``: what reads the case's label file (:func:`~medseg.batch.kept.label_reader`), shared with the other checks of the case."""
    from ..io import read_label_volume, read_sidecar, sidecar_path
    from ..io.writers import sidecar_problem

    out = output_path(options.out_dir, case.case)
    side = sidecar_path(out)
    if not out.is_file() and not side.is_file():
        return "no output yet"
    if not side.is_file():  # a run stopped while rewriting the case (its sidecar goes first), or a label file put there
        return "sidecar missing"
    if not out.is_file():
        return "label file missing"
    # read as every reader reads it (medseg._json_files: a byte-order mark is fine; empty, truncated, not UTF-8, NaN, a list are not)
    doc = read_sidecar(out) if sidecar_problem(out) is None else None
    prov = doc.get("provenance", {}) if doc is not None else None
    if not isinstance(prov, dict):  # no valid label map is no output either
        return "sidecar unreadable"
    if not _review_fields_readable(prov, options.dicom_seg):  # its summary row (confidence, flags) could not be made
        return "sidecar unreadable"
    if prov.get("command") != "batch" or prov.get("input_sha256") != sha256_path(case.input):
        return "input changed"
    if prov.get("batch_signature") != options.signature(_ref_sha(case)):
        return "settings changed"
    if (changed := _weights_changed(prov, options)) is not None:
        return changed
    try:
        lab = labels() if labels is not None else read_label_volume(out)
    except MedsegError as e:
        return f"label file unreadable ({e})"
    shape = prov.get("input_shape") or [0, 0, 0, 0]
    if list(lab.grid_shape) != list(shape[1:]) or lab.n_frames not in (1, shape[0]):
        return "label grid differs from the input"
    if options.review_png and not review_png_path(options.out_dir, case.case).is_file():
        return "no review PNG yet"
    if options.dicom_seg:
        seg = prov.get("dicom_seg")
        if not isinstance(seg, dict):
            return "no DICOM SEG yet"
        if not all((dicom_seg_dir(options.out_dir, case.case) / name).is_file() for name in seg.get("files", [])):
            return "DICOM SEG file missing"
    return None


def handed_over_record(case: CaseSpec, options: BatchOptions) -> dict[str, Any] | None:
    """The case's handed-over record (``OUT_DIR/handed_over/<case>.json``, written when every
    structure fell below ``--min-confidence``) when it is valid for these settings: it records
    ``command: batch``, this case, the input's current sha256 and the same settings signature
    (which holds ``--min-confidence``); else None (no record, or the case is to be run again)."""
    path = handed_over_path(options.out_dir, case.case)
    if not path.is_file():
        return None
    rec, _ = json_file_problem(path)  # damaged (truncated, empty, not JSON): the case is run again
    if not (isinstance(rec, dict) and rec.get("command") == "batch" and rec.get("case") == case.case):
        return None
    if rec.get("input_sha256") != sha256_path(case.input) or rec.get("batch_signature") != options.signature(_ref_sha(case)):
        return None
    if _weights_changed(rec, options) is not None:  # another model or adapter might keep a structure
        return None
    if not _review_fields_readable(rec):  # a damaged record: the case is run again
        return None
    return rec


def _sidecar_provenance(out: Path) -> dict[str, Any]:
    """The provenance in the sidecar of ``out`` ({} when it holds none); MedsegError naming the
    sidecar when it cannot be read (:func:`medseg._json_files.read_json_file`)."""
    from ..io import sidecar_path

    prov = read_json_file(sidecar_path(out), allow_nan=True).get("provenance", {})  # as read_sidecar reads it
    return prov if isinstance(prov, dict) else {}


def _review_fields(prov: dict[str, Any], dicom_seg: bool = False) -> Result:
    """needs_review / lowest volume confidence of the structures written / review flag codes and the structures they flag
    (:func:`medseg.evaluation_report.flagged_structures`: a flag naming no structure flags the
    structures it is about) / handed-over structures (and with ``dicom_seg`` the SEG files
    written, or why none), from the case's provenance (its sidecar's, or a handed-over record)."""
    from ..evaluation_report import flagged_structures

    conf = (prov.get("confidence") or {}).get("volume") or {}
    flags = (prov.get("review") or {}).get("flags", [])
    codes = sorted({f.get("code", "") for f in flags})
    lmap = prov.get("label_map")
    structures = list(conf) or (list(lmap) if isinstance(lmap, dict) else [])  # the case's: structure-less flags flag them all
    handed = prov.get("handed_over", [])
    # the lowest of the structures written (those --min-confidence handed over are in handed_over); a case
    # handed over whole (nothing written): the lowest of those handed over, why it was
    written = [v for k, v in conf.items() if k not in handed] or list(conf.values())
    res = {"needs_review": bool(prov.get("needs_review", False)), "confidence": round(min(written), 4) if written else "",
           "review_flags": " ".join(codes), "review_structures": " ".join(flagged_structures(flags, structures)),
           "handed_over": " ".join(handed)}
    if isinstance(prov.get("prompt_note"), str) and prov["prompt_note"]:  # how the prompts were made, when it needs saying
        res["prompt_note"] = prov["prompt_note"]
    if dicom_seg:
        seg = prov.get("dicom_seg") or {}
        res["dicom_seg"] = " ".join(seg.get("files", [])) or f"none: {seg.get('note', '?')}"
    return res


def _review_fields_readable(prov: dict[str, Any], dicom_seg: bool = False) -> bool:
    """Whether :func:`_review_fields` can read ``prov`` (a sidecar or record edited by hand or
    damaged: a confidence that is no number, flags that are no list): --resume redoes such a
    case rather than skip it with a summary row it cannot fill."""
    try:
        _review_fields(prov, dicom_seg)
    except Exception:  # TypeError, AttributeError, ValueError, ...: whatever the wrong types raise
        return False
    return True


def _ref_sha(case: CaseSpec) -> str | None:
    from .._files import sha256_file

    return sha256_file(case.reference) if case.reference else None

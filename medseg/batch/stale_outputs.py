"""What an earlier batch run wrote for a case that this run does not write again.

A case that fails through its own fault (unreadable now, no prompts for it now, nothing found)
or is handed over whole keeps no outputs of an earlier run: its summary row names none, and a
later ``--resume`` must not take them for this run's. Only what batch itself wrote for that case
and nobody changed since is removed (:func:`_own_outputs`): never labels corrected by hand or
saved by another command, never a file in a case's SEG folder that batch did not write, nothing
under ``--resume`` (a reference folder gone for a while must not cost a cohort's outputs).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .cases import RESERVED_CASE_IDS, BatchOptions, CaseSpec, dicom_seg_dir, handed_over_path, output_path, review_png_path
from .kept import labels_differ


def _remove_outputs(options: BatchOptions, case_id: str, out: Path) -> None:
    """A case's outputs from an earlier run (sidecar first: a label file without it is never
    taken as complete), with its ``--measure`` page and stored row (not its handed-over record)."""

    from ..io import sidecar_path
    from .measure_rows import _row_store
    from .pages import drop_page, page_path

    for path in (sidecar_path(out), out, review_png_path(options.out_dir, case_id)):
        path.unlink(missing_ok=True)
    _empty_seg_folder(dicom_seg_dir(options.out_dir, case_id), case_id)
    drop_page(page_path(options.out_dir, case_id))
    _row_store(options.out_dir, case_id).unlink(missing_ok=True)


def _empty_seg_folder(folder: Path, case_id: str) -> None:
    """Remove the files ``--dicom-seg`` writes in a case's SEG folder (``<case>.dcm``, one per
    frame ``<case>_frameNN.dcm``, their sidecars, the SR ``<case>_sr.dcm``), then the folder if
    nothing else is left: never a file batch did not write (a user's notes, an input folder
    given the folder's name)."""
    import re

    if not folder.is_dir() or folder.is_symlink():
        return
    own = re.compile(re.escape(case_id) + r"(_frame\d+)?\.(dcm|json)|" + re.escape(case_id) + r"_sr\.dcm")
    for p in folder.iterdir():
        if p.is_file() and not p.is_symlink() and own.fullmatch(p.name):
            p.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty


def _own_outputs(case_id: str, options: BatchOptions, out: Path) -> bool:
    """Whether ``out`` is labels an earlier batch wrote for this case and nobody changed since:
    its sidecar records ``command: batch`` and this case, and the labels' digest equals the
    recorded ``labels_sha256`` (an older sidecar without one, or a file that cannot be read, is
    not known to be unchanged: kept). No label file: True (nothing of the user's to lose)."""
    from .._json_files import json_file_problem
    from ..io import sidecar_path

    if case_id in RESERVED_CASE_IDS:
        return False
    if not out.exists() and not sidecar_path(out).exists():
        return True
    try:
        doc = json_file_problem(sidecar_path(out), allow_nan=True)[0] if sidecar_path(out).is_file() else None
    except OSError:
        return False
    prov = doc.get("provenance") if isinstance(doc, dict) else None
    return (isinstance(prov, dict) and prov.get("command") == "batch" and prov.get("case") == case_id
            and labels_differ(out, prov) is False)


def _earlier_outputs(case: CaseSpec, options: BatchOptions) -> str:
    """Removes what an earlier batch wrote for a case failing before it runs (``case.error``): labels
    (sidecar, sheet, SEG, page) whose sidecar records ``command: batch``, this case and labels not
    changed since, and its handed-over record; never a reserved id's. With ``--resume`` they are left
    to a later run's checks (a reference folder gone for a while must not cost a cohort's outputs):
    the words the reason then adds."""
    from .._json_files import json_file_problem
    from ..io import sidecar_path

    if case.case in RESERVED_CASE_IDS:
        return ""
    def mine(doc: Any) -> bool:
        return isinstance(doc, dict) and doc.get("command") == "batch" and doc.get("case") == case.case

    out = output_path(options.out_dir, case.case)
    try:
        doc = json_file_problem(sidecar_path(out), allow_nan=True)[0] if sidecar_path(out).is_file() else None
        prov = doc.get("provenance") if isinstance(doc, dict) else None
        labels = mine(prov) and labels_differ(out, prov) is False  # unknown (an older sidecar): kept
        record = handed_over_path(options.out_dir, case.case)
        record = record if record.is_file() and mine(json_file_problem(record)[0]) else None
        if options.resume:
            kept = "its labels" if labels else "its handed-over record" if record is not None else ""
            return f"; {kept} of an earlier run left as they were (--resume checks them again once the case runs)" if kept else ""
        if labels:
            _remove_outputs(options, case.case, out)
        if record is not None:
            record.unlink(missing_ok=True)
    except OSError:  # a read-only output folder: its failure says so elsewhere
        pass
    return ""

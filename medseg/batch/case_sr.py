"""``batch --measure --dicom-seg``: each DICOM case's measurements as a DICOM SR beside its SEG
files (``OUT_DIR/<case>_seg/<case>_sr.dcm``; :mod:`medseg.io.sr_writer`, as ``measure --dicom-sr``
writes it). The SR holds the case's cohort row (the numbers of ``cohort.csv``), joins the study
of the case's DICOM input and lists its SEG files and source images as evidence. Rules:
:mod:`medseg.batch`."""

from __future__ import annotations

from pathlib import Path

from ..errors import MedsegError
from .cases import Result, _one_line


def sr_path(folder: Path, case_id: str) -> Path:
    """Where a case's SR lies: in its SEG folder, named after the case (no SEG is so named)."""
    return folder / f"{case_id}_sr.dcm"


def write_case_sr(out: Path, folder: Path, case_id: str, res: Result, store: Path) -> Result:
    """The case's SR, written when it is missing or older than what it was made from (the labels,
    their sidecar, the SEG files, the stored measured row ``store``: a ``--resume`` with nothing
    changed keeps it, and its UIDs); the summary's ``dicom_seg`` with the SR's name added, or why
    there is none. Nothing for a case without measurements or SEG files."""
    from ..io import sidecar_path

    row = res.get("cohort_row")
    path = sr_path(folder, case_id)
    segs = sorted(p for p in folder.glob("*.dcm") if p != path) if folder.is_dir() else []
    if not isinstance(row, dict) or not segs:
        path.unlink(missing_ok=True)
        return {}
    said = str(res.get("dicom_seg") or "")
    made_from = [p for p in (out, sidecar_path(out), store, *segs) if p.is_file()]
    if path.is_file() and all(path.stat().st_mtime_ns > p.stat().st_mtime_ns for p in made_from):
        return {"dicom_seg": f"{said} {path.name}".strip()}
    from ..io.sr_writer import build_measurement_sr, save_sr, sr_context

    try:
        sr, _ = build_measurement_sr(row, sr_context([out, *segs]))
        save_sr(sr, path)
    except MedsegError as e:
        path.unlink(missing_ok=True)
        return {"dicom_seg": f"{said} (no SR: {_one_line(str(e))})".strip()}
    return {"dicom_seg": f"{said} {path.name}".strip()}

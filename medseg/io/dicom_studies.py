"""The studies of a DICOM export (patient / study / series folders, as a PACS or a CD writes
them), for ``medseg info EXPORT``: each study's patient, date and description, and its series
with the folder holding each. Headers only: no pixel is decoded here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .dicom_frames import is_image, read_header
from .dicom_meta import study_date, study_date_from
from .dicom_series import _quiet, _series_rows

#: sub-folders of an export searched for studies (patient / study / series is 3)
EXPORT_DEPTH = 6


@_quiet
def list_dicom_studies(folder: Path) -> list[dict[str, Any]]:
    """The studies below ``folder`` in (patient, date) order: ``patient_id``, ``study_date``
    (YYYY-MM-DD; ``study_date_from`` names the tag when it is not StudyDate), ``description``, ``uid``, ``folder`` (the folder holding its series, relative
    to ``folder``) and ``series`` (as :func:`medseg.io.dicom.list_dicom_series` gives them, each
    with its ``folder`` relative to ``folder``). Non-image objects (reports, presentation states,
    DICOMDIR) and files that do not read as DICOM are left out. A ``.zip`` of an export too."""
    from .archive import through_archive

    return through_archive(folder, _list_studies)


def _list_studies(folder: Path) -> list[dict[str, Any]]:
    by_study: dict[str, list[tuple[Path, Any]]] = {}
    for p, ds in _image_headers_below(folder):
        by_study.setdefault(str(ds.get("StudyInstanceUID", "") or ""), []).append((p, ds))
    out = []
    for uid, headers in by_study.items():
        ds = next((h for _, h in headers if study_date_from(h) == "StudyDate"), headers[0][1])  # a series with the study's own date
        out.append({"patient_id": str(ds.get("PatientID", "") or ""), "study_date": study_date(ds),
                    "description": str(ds.get("StudyDescription", "") or ""), "uid": uid,
                    "folder": _common([p.parent.relative_to(folder) for p, _ in headers]), "series": _series_rows(headers, folder),
                    **({"study_date_from": tag} if (tag := study_date_from(ds)) not in ("", "StudyDate") else {})})
    return sorted(out, key=lambda s: (s["patient_id"], s["study_date"], s["folder"]))


def _image_headers_below(folder: Path, depth: int = 0) -> list[tuple[Path, Any]]:
    out: list[tuple[Path, Any]] = []
    entries = sorted(q for q in folder.iterdir() if not q.name.startswith(".") and q.name.upper() != "DICOMDIR")
    for p in entries:
        if p.is_file():
            try:
                ds = read_header(p, strict=False)
            except Exception:  # a corrupt file: reading its series says so
                continue
            if ds is not None and is_image(ds):
                out.append((p, ds))
        elif p.is_dir() and depth < EXPORT_DEPTH:
            out.extend(_image_headers_below(p, depth + 1))
    return out


def _common(folders: list[Path]) -> str:
    """The deepest folder above all of ``folders`` (a study's folder above its series folders)."""
    parts = [f.parts for f in folders]
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return str(Path(*common)) if common else "."

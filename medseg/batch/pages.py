"""``medseg batch --measure --pdf``: each measured case's and study row's page
(:func:`medseg.measure.study_pdf.write_study_pdf`, as ``medseg measure --pdf`` writes it) in
``OUT_DIR/pdf/<case or study>.pdf``. A page that cannot be written is a note of its row, never a
failed case; a case or study measured without a page (not measured, or the page failed) keeps no
older page of it. Rules: :mod:`medseg.batch`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: OUT_DIR's folder of the pages
PDF_DIR = "pdf"


def page_path(out_dir: str | Path, case: str) -> Path:
    """Where the page of ``case`` (a case's id or a study row's) goes."""
    from .._nfc import as_written

    return as_written(Path(out_dir) / PDF_DIR / f"{case}.pdf")  # an earlier run's, named in another Unicode form (resume)


def page_fresh(page: Path, inputs: Sequence[str | Path]) -> bool:
    """Whether ``page`` is there and written after each of ``inputs`` (a label file and its
    sidecar): ``--resume`` writes a missing or older page (the case is measured again for it)."""
    try:
        made = page.stat().st_mtime_ns
        return all(Path(p).stat().st_mtime_ns <= made for p in inputs)
    except OSError:
        return False


def write_page(report: Mapping[str, Any], page: Path, labels: Mapping[str, Any], label_map: Any, frames: Mapping[str, int],
               files: Mapping[str, str | Path], case: str, modality: str | None = None, body: Mapping[str, Any] | None = None,
               study: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The page of ``report`` at ``page``: contours of ``labels`` (phase -> (Z, Y, X); ``frames``:
    phase -> cine frame) over the images the label ``files``' sidecars name (``labels`` or
    ``ed``, ``es``, ``a2c_ed``, ``a2c_es`` -> path, as ``medseg measure`` names them) when they are
    still there and fit (else contours alone), with the model's confidences from those sidecars.
    ``body``: height, weight and sex measured with (:func:`medseg.measure.study_pdf.study_page`'s);
    ``study``: the DICOM input's patient id, study date, ... (the header's patient line).
    ``{"pdf": path}``, or ``{"pdf_note": why}`` with no page left at ``page``."""
    from ..measure.input_notes import input_notes
    from .cases import _one_line

    notes = input_notes(files.values())  # the cautions they give (in the key: a page drawn before they were shown is drawn again)
    key = _page_key({**report, **({"input_notes": notes} if notes else {})}, labels, frames, files, case, modality, body, study, page.parent.parent)
    if key is not None and _page_current(page, key):  # --resume: a study row's page made from the same inputs
        return {"pdf": str(page)}
    try:
        from ..measure.source_images import sidecar_confidence
        from ..measure.study_pdf import write_study_pdf

        shown = [files[k] for k in ("labels", "ed", "es") if k in files]  # the files under the contour panels
        images = _images(shown, _first_label_volume(shown), frames)
        report = {**report, "inputs": _inputs(report, files, label_map, study, notes)}
        write_study_pdf(report, page, labels=labels, label_map=label_map, images=images, frames=dict(frames),
                        confidence=sidecar_confidence(report), case=case, source="cohort.csv",
                        modality=modality if modality in ("MR", "CT", "US") else None, body=dict(body or {}))
        _keep_key(page, key)
        return {"pdf": str(page)}
    except Exception as e:  # noqa: BLE001 (a page failing fails only that page: its row says why, the batch goes on)
        drop_page(page)
        return {"pdf_note": _one_line(f"study page not written: {e}")}


def _inputs(report: Mapping[str, Any], files: Mapping[str, str | Path], label_map: Any, study: Mapping[str, Any] | None,
            notes: Mapping[str, Any]) -> dict[str, Any]:
    """The report's ``inputs`` as ``medseg measure`` records those the page shows: the label
    files, their label map, ``notes`` (the label files' notes on how their images were read and
    the slices their DICOM series lacked: :func:`medseg.measure.input_notes.input_notes`, the
    page's cautions), the model each was made with (``segmentation``), those edited by hand since
    (``labels_edited``), the DICOM study, medseg's version."""
    from .. import __version__
    from ..labels import LabelMap
    from ..measure.compare import segmentation_record
    from .kept import labels_differ

    paths = {k: Path(p) for k, p in files.items()}
    edited = [k for k, p in paths.items() if labels_differ(p)]
    return {**(report.get("inputs") or {}), **{k: str(p) for k, p in paths.items()}, "label_map": LabelMap.parse(label_map).to_string(),
            **notes, "segmentation": segmentation_record(list(paths.items())), **({"labels_edited": edited} if edited else {}),
            **({"study": dict(study)} if study else {}), "medseg_version": __version__}


def drop_page(page: Path) -> None:
    """No page for a case or study not measured now: an older one must not stand for it."""
    for p in (page, _key_path(page)):
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


def _key_path(page: Path) -> Path:
    """Where the key of the inputs a page was drawn from is kept (OUT_DIR/measured/, beside the
    cases' stored rows; a ``.page.json`` name no case row has)."""
    return page.parent.parent / "measured" / f"{page.stem}.page.json"


def _page_key(report: Mapping[str, Any], labels: Mapping[str, Any], frames: Mapping[str, int], files: Mapping[str, str | Path],
              case: str, modality: str | None, body: Mapping[str, Any] | None, study: Mapping[str, Any] | None,
              out_dir: Path | None = None) -> str | None:
    """sha256 of what a page is drawn from: the report, the label arrays, the label files' and
    their sidecars' size and time (the images under the contours and the confidences are read
    through them), the header fields and medseg's version; None when a file cannot be stat'ed.
    A label file in ``out_dir`` (the batch's output folder) counts by its path there: the page
    shows its name, not where the folder lies, so a folder moved or copied with its files' times
    (``mv``, ``cp -a``, a cluster node mounting it elsewhere) keeps its pages on ``--resume``."""
    import hashlib
    import json

    import numpy as np

    from .. import __version__
    from ..io import sidecar_path

    h = hashlib.sha256()
    try:
        stats = {k: [[q.stat().st_size, q.stat().st_mtime_ns] for q in (Path(p), sidecar_path(p)) if q.exists()] for k, p in files.items()}
    except OSError:
        return None
    h.update(json.dumps([report, dict(frames), {k: _in_folder(v, out_dir) for k, v in files.items()}, stats, case, modality, dict(body or {}),
                         dict(study or {}), __version__], sort_keys=True, default=str).encode())
    for k in sorted(labels):
        a = np.ascontiguousarray(labels[k])
        h.update(f"{k}{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _in_folder(path: str | Path, out_dir: Path | None) -> str:
    """``path`` relative to ``out_dir`` when it lies there (as given: both absolute in a batch), else as it is."""
    if out_dir is not None:
        try:
            return Path(path).relative_to(out_dir).as_posix()
        except ValueError:
            pass
    return str(path)


def _page_current(page: Path, key: str) -> bool:
    """Whether ``page`` is there and its kept key is ``key`` (kept after the page was written)."""
    try:
        return page.is_file() and _key_path(page).read_text(encoding="utf-8").strip() == key and \
            _key_path(page).stat().st_mtime_ns >= page.stat().st_mtime_ns
    except OSError:
        return False


def _keep_key(page: Path, key: str | None) -> None:
    """Keep the key of the page just written (a read-only or full folder: the page is drawn again next time)."""
    from .._files import write_text_atomic

    try:
        if key is None:
            _key_path(page).unlink(missing_ok=True)
        else:
            write_text_atomic(_key_path(page), key)
    except OSError:
        pass


def _first_label_volume(label_files: Sequence[str | Path]) -> Any:
    from ..io import read_label_volume

    return read_label_volume(label_files[0]) if label_files else None


def _images(label_files: Sequence[str | Path], lab: Any, frames: Mapping[str, int]) -> dict[str, Any] | None:
    """Phase -> image under the contours: those the label files were segmented from, when their
    sidecars name them, they are still there and they fit the labels; else None."""
    from ..errors import MedsegError

    if lab is None or not frames:
        return None
    try:
        from ..measure.source_images import overlay_images, segmented_images

        found = segmented_images([Path(p) for p in label_files])
        if not found:
            return None
        return overlay_images(found[:1] if lab.n_frames > 1 else found, lab, dict(frames)) or None
    except (MedsegError, OSError, ValueError):
        return None

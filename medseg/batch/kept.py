"""Labels in OUT_DIR that a batch must not overwrite: a case's ``<case>.nii.gz`` saved over the
batch's output by hand (the napari plugin's *Save labels…*, after correcting it) or by another
medseg command. Their sidecar records no ``command: batch``; a run (with ``--resume`` or not)
keeps them, measures them and says so, instead of segmenting the case again (docs/batch.md,
*Correcting a batch*). So does it a batch's output whose labels differ from the ``labels_sha256``
its sidecar records (changed in another program, ITK-SNAP or 3D Slicer, the sidecar left as it was)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._files import sha256_path, shown
from ..errors import MedsegError
from .cases import BatchOptions, CaseSpec, review_png_path


def kept_labels(case: CaseSpec, out: Path, labels: Callable[[], Any] | None = None) -> str | None:
    """Why ``out`` (the case's label file) is kept as it is (the summary's ``reason``), or None
    when it is no such file (none there, no readable sidecar, or one a batch wrote: the usual
    resume rules apply). ``labels``: what reads ``out`` (:func:`medseg.io.read_label_volume`),
    so that its caller reads the file once for every check of the case.

    Raises:
        MedsegError: labels saved by hand (or another command) for another image than the case's
            input (its sha256 differs or is not recorded): the case fails, nothing is overwritten.
    """
    from ..io import sidecar_path

    side = sidecar_path(out)
    if not (out.is_file() and side.is_file()):
        return None
    from .._json_files import json_file_problem

    # as every sidecar reader reads it: one Notepad saved (a byte-order mark) or a script edited (a NaN field) still keeps the labels
    doc, _ = json_file_problem(side, allow_nan=True)
    prov = doc.get("provenance") if doc is not None else None  # none, or no valid sidecar: as before, the case is redone
    if not isinstance(prov, dict):
        return None
    if prov.get("command") == "batch":
        return _changed_since_batch(case, out, prov, labels)
    what = _who_saved(prov)
    redo = f"to segment it again, delete {shown(out.name)} and {shown(side.name)}"
    if prov.get("input_sha256") != sha256_path(case.input):
        raise MedsegError(f"{shown(out.name)} holds labels {what} for another image (its sidecar records "
                          f"{'no' if not prov.get('input_sha256') else 'another'} input sha256): not overwritten; {redo}")
    return f"kept: labels {what}; not segmented again ({redo})"


class label_reader:  # noqa: N801 (a function to its callers)
    """:func:`medseg.io.read_label_volume` of ``out`` that reads the file the first time it is
    called and gives the same Volume after (an error is raised again each time): a resumed case's
    checks and measure read its label file once. ``stat``: :func:`file_stat` of the file as it
    was read (a measure made later checks that it is still that file)."""

    def __init__(self, out: Path):
        self.out, self.stat, self._volume = Path(out), None, None

    def __call__(self) -> Any:
        if self._volume is None:
            from ..io import read_label_volume

            before = file_stat(self.out)
            self._volume, self.stat = read_label_volume(self.out), before
        return self._volume


def file_stat(path: Path) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime in ns) of ``path``, None when it cannot be read: a file saved
    over (or replaced) since is another."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def labels_sha256(labels: Any) -> str:
    """A digest of a label array's content (shape and values, whatever its file's format and
    compression): the batch's sidecar records it, so labels changed in another program (ITK-SNAP,
    3D Slicer) under the batch's own sidecar are told apart from the batch's output."""
    import hashlib

    import numpy as np

    a = np.ascontiguousarray(np.asarray(labels), dtype=np.uint16)
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()


def labels_differ(path: Path, prov: dict[str, Any] | None = None, labels: Callable[[], Any] | None = None) -> bool | None:
    """Whether the labels in ``path`` (NIfTI, MHA, NRRD) are no longer those its medseg sidecar
    (``prov``: its provenance, read when not given) records as written (``labels_sha256``, of
    ``segment`` and ``batch`` outputs): changed since, by hand (nibabel, ITK-SNAP, 3D Slicer)
    under the sidecar as it was. None when nothing is recorded (sidecars of earlier versions,
    and those of napari saves over the file (``edited_from``) from before napari's edit recorded the
    digest of the labels it saved: their digest is that of the labels before the edit) or the file cannot be read. ``labels``: what
    reads ``path`` (:func:`medseg.io.read_label_volume`), when its caller reads it once for several checks."""
    from ..io import read_label_volume, read_sidecar

    if prov is None:
        prov = (read_sidecar(path) or {}).get("provenance")
    recorded = prov.get("labels_sha256") if isinstance(prov, dict) else None
    if not isinstance(recorded, str):
        return None
    if prov.get("edited_from") and not any(isinstance(a, dict) and a.get("labels_sha256") == recorded for a in prov.get("actions") or []):
        return None
    try:
        return labels_sha256((labels() if labels is not None else read_label_volume(path)).array) != recorded
    except MedsegError:
        return None


def _changed_since_batch(case: CaseSpec, out: Path, prov: dict[str, Any], labels: Callable[[], Any] | None = None) -> str | None:
    """The reason to keep a batch's output whose labels are no longer those the batch wrote
    (``labels_sha256`` of its sidecar), or None (the same, unreadable, or a sidecar from before
    medseg recorded it: the usual resume rules apply)."""
    from ..io import sidecar_path

    if not labels_differ(out, prov, labels):  # None: unreadable (the resume check names it) or nothing recorded
        return None
    redo = f"to segment it again, delete {shown(out.name)} and {shown(sidecar_path(out).name)}"
    if prov.get("input_sha256") != sha256_path(case.input):
        raise MedsegError(f"{shown(out.name)} holds labels changed since the batch wrote them, for another image (its sidecar "
                          f"records another input sha256): not overwritten; {redo}")
    return f"kept: labels changed since the batch wrote them (edited in another program?); not segmented again ({redo})"


def _who_saved(prov: dict[str, Any]) -> str:
    """``"edited by hand in medseg-napari (2 edits, 4 flags reviewed, last saved 2026-12-06T19:25:01Z)"``
    or ``"saved by medseg segment (last saved ...)"``."""
    actions = [a for a in prov.get("actions") or [] if isinstance(a, dict)]
    edits = sum(a.get("op") == "edit" for a in actions)
    marks = prov.get("flags_reviewed")
    marks = marks if isinstance(marks, int) else sum(a.get("op") == "review" for a in actions)
    tool = prov.get("tool") or (f"medseg {prov['command']}" if isinstance(prov.get("command"), str) else "another program")
    parts = [f"{edits} edit{'' if edits == 1 else 's'}"] if edits else []
    parts += [f"{marks} flag{'' if marks == 1 else 's'} reviewed"] if marks else []
    times = [t for t in (prov.get("created"), *(a.get("time") for a in actions)) if isinstance(t, str)]
    parts += [f"last saved {max(times)}"] if times else []
    how = "edited by hand in" if edits or marks else "saved by"
    return f"{how} {tool}" + (f" ({', '.join(parts)})" if parts else "")


def refresh_outputs(case: CaseSpec, options: BatchOptions, out: Path) -> dict[str, str]:
    """The outputs made from a case's labels, remade from kept labels and their sidecar (the
    batch's showed the labels before they were corrected) unless made after they were saved:
    ``--review-png``'s review sheet, and ``--dicom-seg``'s SEG files (what goes to PACS must be
    the corrected labels). Returns the summary's ``dicom_seg`` value with ``--dicom-seg``."""
    from ..errors import GeometryError
    from ..io import read_label_volume, read_sidecar, read_volume, sidecar_path
    from ..io.archive import folder_like
    from ..io.geometry import check_same_grid
    from ..labels import LabelMap
    from ..review import review_png
    from .cases import dicom_seg_dir

    saved = max(out.stat().st_mtime_ns, sidecar_path(out).stat().st_mtime_ns)  # labels changed in ITK-SNAP keep the batch's sidecar
    sheet = review_png_path(options.out_dir, case.case)
    draw = options.review_png and not (sheet.is_file() and sheet.stat().st_mtime_ns > saved)
    folder = dicom_seg_dir(options.out_dir, case.case)
    from .case_sr import sr_path

    segs = sorted(p for p in folder.glob("*.dcm") if p != sr_path(folder, case.case)) if folder.is_dir() else []  # the SR is no SEG
    fresh_segs = bool(segs) and all(f.stat().st_mtime_ns > saved for f in segs)
    if not draw and (not options.dicom_seg or fresh_segs):
        return {"dicom_seg": " ".join(f.name for f in segs)} if options.dicom_seg else {}
    side = read_sidecar(out)
    if side is None:
        raise MedsegError(f"{shown(out.name)}: its sidecar names no label map; cannot remake its review sheet or DICOM SEG")
    prov = side.get("provenance") if isinstance(side.get("provenance"), dict) else {}
    series = case.series or options.series
    vol = read_volume(case.input, series=series if folder_like(case.input) else None, modality=options.modality)
    kept = read_label_volume(out)
    try:
        check_same_grid(vol, kept, f"{shown(out.name)} (kept)")
    except GeometryError as e:  # resampled or cropped elsewhere: the batch's sheet and SEG showed other labels; none drawn from these
        import shutil

        sheet.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise MedsegError(f"{e}; its review sheet and DICOM SEG (of the labels before the correction) were removed, not remade") from None
    labels, label_map = kept.array, LabelMap.parse(side["label_map"])
    if draw:
        review_png(vol, labels, label_map, prov, sheet, title=shown(case.case))
    if options.dicom_seg and not fresh_segs:
        from types import SimpleNamespace

        from .run import _write_dicom_seg

        seg = _write_dicom_seg(SimpleNamespace(labels=labels, label_map=label_map), vol, folder, case.case, prov)
        return {"dicom_seg": " ".join(seg["files"]) or f"none: {seg.get('note', '?')}"}
    return {"dicom_seg": " ".join(f.name for f in segs)} if options.dicom_seg else {}

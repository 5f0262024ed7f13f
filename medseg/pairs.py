"""The image / reference-label pairs ``medseg evaluate`` and ``medseg adapt`` read: a PAIRS.csv
(:func:`read_pairs`, read as a spreadsheet saves it), a folder of images with their labels
beside them (:func:`pairs_from_folder`), and the labels made before that ``--predicted`` scores
instead of running the model (:func:`with_predictions`)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ._nfc import nfc, on_disk
from .errors import ImageReadError, MedsegError


@dataclass
class Pair:
    image: Path
    label: Path
    case: str
    phase: str | None = None
    series: str | None = None  # a DICOM study folder's stack series (as batch finds them)
    modality: str | None = None  # --modality: read the image as this modality
    prediction: Path | None = None  # labels made before, scored instead of running the model
    case_id: str | None = None  # the batch case id of the image (before an _ED/_ES part became phase)
    handed_over: tuple[str, ...] | None = None  # --predicted: a case batch handed over entirely (no labels): its structures
    failed: str | None = None  # --predicted: why batch failed the case (no labels): not scored, listed
    absent: bool = False  # --predicted --skip-missing: no labels in the folder (a case one reader left out): listed
    frame: int | None = None  # PAIRS.csv's frame column: the frame of a cine image (from 0) that one-frame labels segment


def read_pairs(path: str | Path, left_out: list[str] | None = None, notes: list[str] | None = None) -> list[Pair]:
    """Read PAIRS.csv (columns image,label[,case,phase,frame][,prediction]; read as ``--subjects`` is,
    :func:`medseg._files.read_spreadsheet_csv`, ``notes`` as there; rows of empty cells, ``;;;``,
    skipped; paths: ``~`` expanded, relative to the CSV, Windows' ``\\`` read as ``/``, made
    absolute), or pair the images of a folder with their labels (:func:`pairs_from_folder`).
    Without a ``case`` cell a row's case is named as in folder mode: the image's batch case id,
    whose ``_ED`` / ``_ES`` part gives the phase (``p1_ED.nii.gz``: case p1, ED); cells win.
    ``frame``: the frame of a cine image, numbered from 0 as ``segment --frames`` does, that a
    row's one-frame labels segment (:attr:`Pair.frame`); that frame is scored.
    ``left_out``: a folder's images without labels are added to it (:func:`pairs_from_folder`)."""
    from ._files import read_spreadsheet_csv

    path = Path(path)
    if path.is_dir():
        return pairs_from_folder(path, left_out)
    if not path.is_file():
        raise ImageReadError(f"pairs file not found: {path}")
    table = read_spreadsheet_csv(path, "pairs file", notes)
    header = [h.strip().lower() for h in table[0]] if table else []
    rows = [(i + 1, dict(zip(header, (c.strip() for c in row)))) for i, row in enumerate(table[1:], start=1) if any(c.strip() for c in row)]
    if not rows:
        raise MedsegError(f"{path}: no rows (expected a header image,label[,case,phase,frame] and one row per pair)")
    if not {"image", "label"} <= set(header):
        raise MedsegError(f"{path}: needs columns 'image' and 'label', found {', '.join(header)}")
    has_pred = [bool(r.get("prediction")) for _, r in rows]
    if any(has_pred) and not all(has_pred):
        raise MedsegError(f"{path} row {rows[has_pred.index(False)][0]}: no prediction (give every row a prediction, or none)")
    pairs, seen = [], {}
    for (line, r), pred in zip(rows, has_pred):
        pair = _csv_pair(path, line, r, pred)
        for key, what in (((pair.image.resolve(), pair.label.resolve(), pair.case, pair.phase, pair.frame), "the same image, labels and case"),
                          ((nfc(pair.case), pair.phase) if pair.phase else None, f"case {pair.case} {pair.phase}")):
            if key is not None and key in seen:
                hint = "; name the cases in a 'case' column" if len(key) == 2 and not r.get("case") else ""
                raise MedsegError(f"{path} row {line} repeats row {seen[key]} ({what}): each would be counted twice{hint}")
            if key is not None:
                seen[key] = line
        pairs.append(pair)
    return pairs


def reference_frame(pair: Pair, cine, ref, seg_t: int | None):
    """(the frame of the cine ``cine`` that the reference ``ref`` segments, or None for labels of
    every frame or a one-frame image; ``ref`` cut to that frame): the pair's ``frame`` (PAIRS.csv),
    else ``seg_t``, the frame a DICOM SEG names. One-frame labels of a multi-frame image that
    name no frame are refused: copied to every frame, they scored (or taught) one phase's labels on
    every frame, frame 0 as ED and as ES. ``cine``, ``ref``: :class:`medseg.io.Volume` of the
    pair's image and its reference labels on its stack; ``seg_t``: :func:`medseg.io.seg_reader.seg_phase`."""
    from .errors import GeometryError

    n, t = cine.n_frames, pair.frame
    if t is None:
        if seg_t is None and n > 1 and ref.n_frames == 1 and ref.meta.get("format") != "dicom-seg":  # a SEG: the grid check says it
            raise GeometryError(f"labels of case {pair.case} ({Path(pair.label).name}) have 1 frame and the image ({Path(pair.image).name}) "
                                f"has {n}: add a 'frame' column to a pairs CSV (a folder of pairs: write one) naming the frame they segment (0 to {n - 1}, as "
                                "segment --frames numbers them), or give that frame's own 3-D image")
        return seg_t, ref
    if t >= n:
        raise MedsegError(f"case {pair.case}: frame {t} of {Path(pair.image).name}, which has {n} frame(s) (allowed: 0 to {n - 1})")
    if seg_t is not None and seg_t != t:
        raise MedsegError(f"case {pair.case}: the frame column says frame {t}, the DICOM SEG {Path(pair.label).name} segments frame {seg_t}")
    return t, (ref.phase(t) if ref.n_frames == n > 1 else ref)


def _csv_pair(path: Path, line: int, r: dict[str, str], pred: bool) -> Pair:
    """The pair of one PAIRS.csv row (``line``: its line number): files absolute and existing,
    case and phase from the cells or else from the image's name (:func:`read_pairs`)."""
    from .batch import case_id

    for col in ("image", "label"):
        if not r.get(col):
            raise MedsegError(f"{path} row {line}: the '{col}' cell is empty")
    cols = ("image", "label", *(("prediction",) if pred else ()))
    files = [_csv_path(path, r[col]) for col in cols]
    for p, col in zip(files, cols):
        if not p.exists():
            windows = _WINDOWS_ABSOLUTE.match(r[col])
            hint = f" ({r[col]} is a Windows path: write it relative to the CSV's folder, or as this machine names it)" if windows else ""
            raise ImageReadError(f"{path} row {line}: file not found: {p}{hint}")
    phase = (r.get("phase") or "").upper() or None
    if phase not in (None, "ED", "ES"):
        raise MedsegError(f"{path} row {line}: phase must be ED or ES, got {phase!r}")
    frame = r.get("frame") or None
    if frame is not None and not (frame.isascii() and frame.isdigit()):
        raise MedsegError(f"{path} row {line}: frame must be a frame number of the image, from 0 as segment --frames numbers them, got {frame!r}")
    cid = case_id(files[0])
    pair = Pair(files[0], files[1], r.get("case") or cid or files[0].name, phase, prediction=files[2] if pred else None, case_id=cid,
                frame=int(frame) if frame is not None else None)
    if not r.get("case"):  # named as folder mode names it: the _ED / _ES part of the name gives the phase
        named = _with_phase(pair)
        pair = replace(named, phase=phase or named.phase)
    return pair


#: a path a Windows machine wrote: a drive (``C:\\``, ``D:/``) or a network share (``\\\\server\\share``)
_WINDOWS_ABSOLUTE = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")


def _csv_path(csv_path: Path, cell: str) -> Path:
    """A PAIRS.csv cell as an absolute path: ``~`` expanded, relative to the CSV's folder, its
    folders resolved (``..``, links), its own name kept (a linked image keeps its case id). A
    relative path written on Windows, ``images\\p1.nii.gz``, is ``images/p1.nii.gz`` where no
    file is named with the backslash."""
    import os

    from ._files import resolved

    p = Path(os.path.expanduser(cell))
    p = p if p.is_absolute() else csv_path.parent / p
    if "\\" in cell and not p.exists() and not _WINDOWS_ABSOLUTE.match(cell):
        p = _csv_path(csv_path, cell.replace("\\", "/"))
    if not p.exists():  # a CSV of raw file-name bytes that are not UTF-8 (read as cp1252): the name as those bytes
        try:
            raw = Path(os.fsdecode(os.fspath(p).encode("cp1252")))
        except UnicodeEncodeError:
            raw = p
        p = raw if raw.exists() else p
    p = on_disk(p)  # typed in a spreadsheet (Unicode NFC), named on a Mac (NFD): the file as its folder names it
    return resolved(p) if p.name in ("", ".", "..") else resolved(p.parent) / p.name


def with_predictions(pairs: list[Pair], folder: str | Path, skip_missing: bool = False) -> list[Pair]:
    """``pairs`` with the label file of each case in ``folder`` as its ``prediction``: named by
    the case's batch id (``medseg batch`` writes ``OUT_DIR/<case>.nii.gz``), the image's file
    name or the case column, + nothing or one of :data:`medseg.batch.REFERENCE_SUFFIXES`, + a
    readable ending (as ``--prompts-from`` finds references). A case without labels that the
    batch summary in ``folder`` (``summary.json``, else ``summary.csv``) records as
    ``handed_over`` (every structure below ``--min-confidence``) keeps no ``prediction`` and gets
    ``handed_over`` = its structures: not scored, counted as handed over (:func:`evaluate_pairs`).
    One it records as ``failed`` gets ``failed`` = the summary's reason: not scored, listed (one
    failure in a cohort of hundreds stopped the evaluation of all of them). ``skip_missing``: a
    case with no labels there and no summary row (a reader who left a case out) gets ``absent``
    and ``failed`` = why, not scored, listed, instead of the error.

    Raises:
        MedsegError: ``folder`` is not a folder, cases have no labels there and were neither
            handed over nor failed (all named), or no case has labels (nothing to score).
    """
    from ._files import resolved
    from .batch import case_id, find_reference

    folder = resolved(folder)  # RESULT.json's `prediction` absolute, as its `image` and `label` are
    if not folder.is_dir():
        raise ImageReadError(f"--predicted must be a folder of label files, got: {folder}")
    rows = _summary_rows(folder)
    handed = {nfc(str(r["case"])): tuple(str(r.get("handed_over") or "").split()) for r in rows if r.get("status") == "handed_over"}
    failed = {nfc(str(r["case"])): str(r.get("reason") or "no reason recorded") for r in rows if r.get("status") == "failed"}
    out, missing = [], []
    for pair in pairs:
        names = dict.fromkeys(n for n in (pair.case_id, case_id(pair.image), pair.case) if n)
        for name in names:
            try:
                found = find_reference(name, folder, pair.image)
            except MedsegError:
                continue
            if found.resolve() == Path(pair.label).resolve():
                raise MedsegError(f"--predicted {folder}: the labels found there for case {pair.case} are its reference ({found.name}); "
                                  "give the folder of the labels to score")
            out.append(replace(pair, prediction=found))
            break
        else:
            name = next((nfc(n) for n in names if nfc(n) in handed), None)  # the summary's case ids in Unicode NFC, as the pairs'
            gone = next((nfc(n) for n in names if nfc(n) in failed), None)
            if name is not None:
                out.append(replace(pair, handed_over=handed[name]))
            elif gone is not None:
                out.append(replace(pair, failed=failed[gone]))
            elif skip_missing:
                out.append(replace(pair, failed=f"no labels in {folder.name}", absent=True))
            else:
                missing.append(next(iter(names), pair.case))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise MedsegError(f"no labels in {folder} for {len(missing)} of {len(pairs)} cases: {shown} "
                          "(looked for CASE.nii.gz etc., as medseg batch names its outputs, and found no batch summary there "
                          "recording them as failed or handed over; --skip-missing scores the others)")
    if out and all(p.prediction is None for p in out):
        n_failed = sum(p.failed is not None for p in out)
        n_absent = sum(p.absent for p in out)
        raise MedsegError(f"--predicted {folder}: none of the {len(out)} cases has labels ({len(out) - n_failed} handed over for manual "
                          f"review, {n_failed - n_absent} failed, by its batch summary" + (f", {n_absent} not there" if n_absent else "")
                          + "): nothing to score")
    return out


def _summary_rows(folder: Path) -> list[dict]:
    """The case rows of a batch summary in ``folder`` (``summary.json``, else ``summary.csv``;
    an unreadable or absent summary has none), those that name a case."""
    from ._json_files import json_file_problem

    doc, problem = json_file_problem(folder / "summary.json", allow_nan=True)  # damaged (nested thousands deep too): the CSV
    rows = (doc.get("cases") or []) if problem is None else None
    if not isinstance(rows, list):  # no summary.json, a damaged one, or cases that are no list
        from ._files import read_medseg_csv

        try:
            rows = read_medseg_csv(folder / "summary.csv")  # a case id "-x" is written "'-x" (formula guard)
        except (OSError, UnicodeDecodeError, csv.Error):
            rows = []
    return [r for r in rows if isinstance(r, dict) and r.get("case")]


def pairs_from_folder(root: str | Path, left_out: list[str] | None = None) -> list[Pair]:
    """Every image in ``root`` and its sub-folders (the cases ``medseg batch`` finds there) that
    has its labels beside it, named as for ``medseg batch --prompts-from`` (``C`` + one of
    :data:`medseg.batch.REFERENCE_SUFFIXES` + a readable ending, e.g. ACDC's
    ``patient001_frame01.nii.gz`` + ``patient001_frame01_gt.nii.gz``); images without labels
    (ACDC's ``_4d`` cine) are left out. Case = the batch case id (and without an ``_ED`` /
    ``_ES`` part, which gives the phase: :func:`_with_phase`). ``left_out``: the images left
    out are added to it as ``"CASE (why)"``, for the caller to say so (an image whose label
    file was forgotten would be left out of a training set unseen)."""
    from .batch import REFERENCE_SUFFIXES, discover_cases

    root = Path(root)
    cases = discover_cases(root, prompts_from=root)
    pairs = [_with_phase(Pair(Path(c.input), Path(c.reference), c.case, series=c.series, case_id=c.case)) for c in cases
             if c.reference and not c.error]
    if left_out is not None:
        left_out += [f"{c.case} ({'no labels beside it' if str(c.error or '').startswith('no reference labels') else c.error})"
                     for c in cases if not c.reference or c.error]
    if not pairs:
        raise MedsegError(f"{root}: no image with its labels beside it (for image C.nii.gz: C + one of "
                          f"{', '.join(REFERENCE_SUFFIXES)} and a readable ending)")
    return pairs


def _with_phase(pair: Pair) -> Pair:
    """A name with an ED or ES part (M&Ms-2's ``001_SA_ED``, ``p1_es``) gives the phase, and the
    name without it the case, so ED and ES of one study are scored together (LVEF, mass)."""
    from .batch import split_phase

    sp = split_phase(pair.case)
    return replace(pair, case=sp[0], phase=sp[1]) if sp else pair


def shared_images(train: list[Pair], val: list[Pair]) -> list[str]:
    """The cases of ``val`` whose image is one ``train`` holds: the same file, or a copy of it
    (the same bytes under another folder or name, as when a lab copies its cases into
    train/ and val/ folders). Sizes first, so only files of equal size are hashed."""
    from ._files import resolved, sha256_file

    def size(p: Path) -> int | None:
        return p.stat().st_size if p.is_file() else None

    paths = {resolved(p.image) for p in train}
    sizes: dict[int, list[Path]] = {}
    for p in train:
        if (n := size(Path(p.image))) is not None:
            sizes.setdefault(n, []).append(Path(p.image))
    digests: dict[Path, str] = {}

    def digest(p: Path) -> str:
        if p not in digests:
            digests[p] = sha256_file(p)
        return digests[p]

    both = []
    for q in val:
        same = resolved(q.image) in paths
        n = size(Path(q.image))
        if not same and n in sizes:
            same = any(digest(Path(q.image)) == digest(p) for p in sizes[n])
        if same:
            both.append(q.case + (f"_{q.phase}" if q.phase else ""))
    return sorted(set(both))

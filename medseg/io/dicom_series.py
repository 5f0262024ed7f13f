"""Finding the DICOM series of a folder: the image headers of a folder or of a study's series
sub-folders, the selection of a series (``--series``: number, description or UID), their
listing (``medseg info``, error messages), the check that several series tile one volume (or,
for ``medseg batch``, that sibling series folders are one stack's slices), and the body data of
a DICOM input's first header. Headers only: no pixel is decoded here.
"""

from __future__ import annotations

import functools
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydicom.dataset import Dataset

from ..errors import GeometryError, ImageReadError, ManyStudiesError, MixedSeriesError, MixedStudiesError
from .dicom_frames import (
    FrameInfo,
    _floats,
    broken_image_error,
    frames_from_classic,
    is_broken_image,
    is_enhanced,
    is_image,
    n_frames,
    read_header,
    require_geometry,
)
from .dicom_meta import _num, body_of, scanner_of, study_date, study_date_from
from .dicom_stack import _check_uniform, _cluster_tolerance, _position_clusters
from .geometry import dicom_directions

_F = TypeVar("_F", bound=Callable[..., Any])


class NoDicomImagesError(ImageReadError):
    """A folder holds no DICOM image, but ``images``, files of another image format (a NIfTI, a
    PNG): ``--series`` names them in its refusal (:func:`medseg.io.readers.read_volume`)."""

    def __init__(self, message: str, images: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.images = images


def _quiet(fn: _F) -> _F:
    """Silence pydicom's validation warnings (e.g. non-conformant UIDs in real data)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


#: A study folder's series sub-folders are searched this deep (study / series is 1; DICOMDIR-like
#: exports nest a level or two more).
STUDY_DEPTH = 3


def _folder_headers(folder: Path) -> list[tuple[Path, Dataset]]:
    """The DICOM image headers of ``folder``: its files, or, when it holds none, those of its
    sub-folders (a study exported as one folder per series, such as a short-axis cine saved as
    one series per slice), as long as they are one study's."""
    entries = list(folder.iterdir())
    if not entries:
        raise ImageReadError(f"folder is empty: {folder}")
    files = sorted(p for p in entries if p.is_file() and not p.name.startswith("."))
    headers = image_headers(files)
    if headers:
        return headers
    from .readers import EXTENSIONS

    images = [p.name for p in files if any(p.name.lower().endswith(e) for e, kind in EXTENSIONS.items() if kind != "dicom")]
    if not images and any(p.is_dir() for p in entries):
        headers = _subfolder_headers(folder)
        if headers and headers[-1][1] is None:  # stopped at a second study
            raise ManyStudiesError(f"{folder}: its sub-folders hold more than one study; give one study's folder (or one series folder), "
                                 "or the folder to medseg batch, which takes each one")
        if headers:
            return headers
    from .contours import is_contour_folder

    if not images and is_contour_folder(folder):
        raise ImageReadError(f"{folder} holds contour polygons (i-contours/, o-contours/: Sunnybrook's layout), no images: "
                             "examples/sunnybrook_references.py makes reference labels of them on their DICOM series "
                             "(docs/io.md, Expert contour polygons)")
    hint = (f"; it holds {len(images)} image file(s) ({', '.join(images[:3])}{', ...' if len(images) > 3 else ''}): give one of them, "
            "or the folder to medseg batch") if images else ""
    subs = sum(p.is_dir() for p in entries)
    hint += (f"; nor do its {subs} sub-folders ({STUDY_DEPTH} levels searched): give one image file, "
             "or the folder to medseg batch, which takes every image file and DICOM folder below it as a case") if subs and not images else ""
    raise NoDicomImagesError(f"no DICOM images in folder {folder} ({len(files)} files checked){hint}", tuple(images))


def _subfolder_headers(folder: Path) -> list[tuple[Path, Any]]:
    """DICOM image headers in the sub-folders of ``folder``, up to :data:`STUDY_DEPTH` levels
    (hidden entries and DICOMDIR index files skipped). At the first image of a second study
    the search stops, and the list ends with ``(that path, None)``."""
    out: list[tuple[Path, Any]] = []
    study = None
    level = [folder]
    for _ in range(STUDY_DEPTH):
        subs = sorted(q for d in level for q in d.iterdir() if q.is_dir() and not q.name.startswith("."))
        for d in subs:
            for p in sorted(q for q in d.iterdir() if q.is_file() and not q.name.startswith(".") and q.name.upper() != "DICOMDIR"):
                ds = read_header(p, strict=False)
                if ds is not None and is_broken_image(ds):
                    raise broken_image_error(p, ds)
                if ds is not None and is_image(ds):
                    uid = str(ds.get("StudyInstanceUID", ""))
                    if study is not None and uid != study:
                        return [*out, (p, None)]
                    study = uid
                    out.append((p, ds))
        level = subs
    return unique_instances(out)


def image_headers(paths: list[Path]) -> list[tuple[Path, Dataset]]:
    """The image headers among ``paths``, each SOP instance once (:func:`unique_instances`).

    Raises:
        ImageReadError: a file is an image cut short (:func:`is_broken_image`): leaving it out
            would lose a slice or a frame without a word.
    """
    out = []
    for p in paths:
        ds = read_header(p, strict=False)
        if ds is None:
            continue
        if is_broken_image(ds):
            raise broken_image_error(p, ds)
        if is_image(ds):
            out.append((p, ds))
    return unique_instances(out)


#: the header values that tell two images apart: files sharing a SOPInstanceUID are copies of one
#: image only when these agree (:func:`unique_instances`)
INSTANCE_FIELDS = ("ImagePositionPatient", "TriggerTime", "InstanceNumber", "Rows", "Columns", "NumberOfFrames")


def unique_instances(headers: list[tuple[Any, Dataset]]) -> list[tuple[Any, Dataset]]:
    """``headers`` with each SOPInstanceUID once (the first file): a study copied twice into one
    folder is that study, not a cine of identical frames.

    Raises:
        ImageReadError: files that share a SOPInstanceUID differ in a header value of
            :data:`INSTANCE_FIELDS` (position, trigger time, instance number, size): they are
            different images under one UID (a tool that wrote one UID into every file), which
            keeping the first would silently reduce to one image.
    """
    groups: dict[str, list[tuple[Any, Dataset]]] = {}
    out = []
    for p, ds in headers:
        uid = str(ds.get("SOPInstanceUID", "") or "") if ds is not None else ""
        if uid and uid in groups:
            groups[uid].append((p, ds))
            continue
        if uid:
            groups[uid] = [(p, ds)]
        out.append((p, ds))
    for uid, same in groups.items():
        key = _instance_key(same[0][1])
        other = next(((p, ds) for p, ds in same[1:] if _instance_key(ds) != key), None)
        if other is not None:
            (p0, ds0), (p1, ds1) = same[0], other
            fields = [f for f, a, b in zip(INSTANCE_FIELDS, key, _instance_key(ds1)) if a != b]
            raise ImageReadError(
                f"{len(same)} files share SOPInstanceUID {uid} but hold different images: {_name(p0)} and {_name(p1)} differ in "
                f"{', '.join(f'{f} ({_shown(ds0.get(f))} vs {_shown(ds1.get(f))})' for f in fields)}; files may share a "
                "SOPInstanceUID only as copies of one image (a study copied twice): give each image its own UID, or export the series again"
            )
    return out


def _instance_key(ds: Dataset) -> tuple[str, ...]:
    """The :data:`INSTANCE_FIELDS` of a header as comparable text (numbers as floats, so "12.5"
    and "12.50" agree; NaN equals NaN)."""
    out = []
    for name in INSTANCE_FIELDS:
        value = ds.get(name)
        nums = _floats(value, len(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else 1)
        out.append(repr(nums) if nums is not None else repr(str(value) if value is not None else None))
    return tuple(out)


def _name(p: Any) -> str:
    return str(getattr(p, "name", p))


def _shown(value: Any) -> str:
    """A header value as plain text: ``[-40.0, 25.0, 60.0]``, ``400``, ``(not set)``."""
    if value is None:
        return "(not set)"
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def series_matches(ds: Dataset, selector: str) -> bool:
    """Whether an image belongs to the series ``selector`` names: its SeriesNumber (digits), its
    SeriesInstanceUID (or its end after ``...``, as listings show it: ``...50405``), or its
    SeriesDescription (case-insensitive; a part of it, or a glob pattern with ``*``/``?``:
    ``"*sax*cine*"``); ``A|B`` matches either."""
    import fnmatch

    if "|" in selector:  # alternatives: "7|8|9", or the UIDs of a stack's series
        return any(series_matches(ds, part) for part in selector.split("|") if part.strip())
    sel = selector.strip()
    uid = str(ds.get("SeriesInstanceUID", ""))
    if sel.isdigit():
        return _num(ds.get("SeriesNumber")) == int(sel)
    if sel == uid or (sel.startswith("...") and len(sel) > 3 and uid.endswith(sel[3:])):
        return True
    desc = str(ds.get("SeriesDescription", "") or "").lower()
    return fnmatch.fnmatch(desc, sel.lower()) if any(c in sel for c in "*?[") else sel.lower() in desc


@_quiet
def list_dicom_series(folder: Path) -> list[dict[str, Any]]:
    """The image series of a DICOM folder, in SeriesNumber order: number, description, uid,
    modality, images, rows x columns (headers only; for ``medseg info`` and error messages); a
    ``.zip`` of a folder too (:func:`medseg.io.archive.through_archive`)."""
    from .archive import through_archive

    return through_archive(folder, lambda f: _series_rows(_folder_headers(f)))


def _series_rows(headers: list[tuple[Path, Dataset]], root: Path | None = None) -> list[dict[str, Any]]:
    """A row per series of ``headers``; its ``folder``: the name of the folder holding it, or
    its path relative to ``root``."""
    rows: dict[str, dict[str, Any]] = {}
    for p, ds in headers:
        uid = str(ds.get("SeriesInstanceUID", ""))
        where = str(p.parent.relative_to(root)) if root is not None else p.parent.name
        r = rows.setdefault(uid, {"number": _num(ds.get("SeriesNumber")), "description": str(ds.get("SeriesDescription", "") or ""),
                                  "uid": uid, "modality": str(ds.get("Modality", "") or ""), "images": 0,
                                  "size": f"{ds.get('Rows', '?')} x {ds.get('Columns', '?')}", "folder": where})
        r["images"] += n_frames(ds)
    return sorted(rows.values(), key=lambda r: (r["number"] is None, r["number"] or 0, r["description"]))


def _listing(headers: list[tuple[Path, Dataset]]) -> str:
    rows = _series_rows(headers)
    where = len({p.parent for p, _ in headers}) > 1  # a study folder: say which sub-folder holds each series
    items = [(f"#{r['number']:g} " if r["number"] is not None else "") + f"'{r['description']}' ...{r['uid'][-8:]} ({r['images']} images"
             + (f" in {r['folder']}/)" if where else ")") for r in rows]
    return "; ".join(items[:8]) + (f"; and {len(items) - 8} more" if len(items) > 8 else "")


def _studies_of(headers: list[tuple[Path, Dataset]]) -> list[str]:
    """The studies the images of ``headers`` belong to, told apart by PatientID and StudyDate
    (:func:`study_date`: a series without one by its SeriesDate, ..., so that it is not a study of its own;
    not by StudyInstanceUID alone: an anonymiser may give each series a new one), each shown as
    its patient id, date and first StudyInstanceUID's end (``PAT1 2012-03-15 ...95756756``), in date order.
    A header missing one of the two tags (a series stripped by an export) is another study only
    where a tag it has differs; one with neither tells nothing and is left out."""
    seen: dict[tuple[str, str], str] = {}
    for _, ds in sorted(headers, key=lambda h: -sum(map(bool, (study_date(h[1]), str(h[1].get("PatientID", "") or "").strip())))):
        key = (study_date(ds), str(ds.get("PatientID", "") or "").strip())
        if not any(key) or any(all(a == b for a, b in zip(key, k) if a and b) for k in seen if k != key):
            continue
        uid = str(ds.get("StudyInstanceUID", "") or "").strip()
        seen.setdefault(key, " ".join(v for v in (key[1], key[0], f"...{uid[-8:]}" if uid else "") if v))
    return [seen[k] for k in sorted(seen)]


@_quiet
def series_folders_form_a_stack(folders: list[Path]) -> bool:
    """Whether sibling series folders are the slices of one stack, as a short-axis cine exported
    one series per slice in its own folder is: one study, the same image size, orientation and
    pixel spacing, one slice position per folder (first, middle and last file checked) and a
    different position in each. A check for ``medseg batch`` to take their parent as one case;
    reading the parent checks every image."""
    if len(folders) < 2:
        return False
    keys, positions = set(), []
    for d in folders:
        files = sorted(q for q in d.iterdir() if q.is_file() and not q.name.startswith(".") and q.name.upper() != "DICOMDIR")
        frames = []
        for p in dict.fromkeys(files[i] for i in (0, len(files) // 2, -1)) if files else ():
            ds = read_header(p, strict=False)
            if ds is None or not is_image(ds) or is_enhanced(ds) or n_frames(ds) > 1:
                return False
            frames.extend(frames_from_classic(ds, p))
            keys.add((str(ds.get("StudyInstanceUID", "")), frames[-1].rows, frames[-1].cols))
        if not frames or any(f.ipp is None or f.iop is None or f.pixel_spacing is None for f in frames):
            return False
        positions.append(frames)
    if len(keys) != 1:
        return False
    flat = [f for fs in positions for f in fs]
    try:
        require_geometry(flat)  # an orientation that is none, a position that is not finite: no stack (reading says why)
        _check_uniform(flat)
    except (GeometryError, ImageReadError):
        return False
    normal = dicom_directions(flat[0].iop)[2]  # type: ignore[arg-type]
    per_folder = [[float(np.dot(f.ipp, normal)) for f in fs] for fs in positions]  # type: ignore[arg-type]
    centres = sorted(float(np.median(v)) for v in per_folder)
    tol = _cluster_tolerance(np.concatenate(per_folder))  # the scatter one slice's positions may have (_position_clusters)
    if any(max(v) - min(v) > tol for v in per_folder):
        return False  # a folder holds several positions: a stack of its own
    return all(b - a > tol for a, b in zip(centres, centres[1:]))


def _check_series(frames: list[FrameInfo], folder: Path, headers: list[tuple[Path, Dataset]]) -> None:
    """Several series may only be merged when they tile one volume; otherwise list them."""
    by_series: dict[str, list[FrameInfo]] = defaultdict(list)
    for f in frames:
        by_series[f.series_uid].append(f)
    if len(by_series) == 1:
        return
    studies = _studies_of(headers)
    if len(studies) > 1:  # a baseline and a follow-up (or two patients) in one folder: never one volume, whatever their geometry
        raise MixedStudiesError(
            f"{folder}: folder holds {len(studies)} studies ({'; '.join(studies)}), {len(by_series)} series: {_listing(headers)}; "
            "put each study's files in a folder of its own (medseg batch takes each folder as one case; medseg info lists the studies), "
            "or read one series with --series NUMBER or ...UID")
    reason = None
    try:
        _check_uniform(frames)
        require_geometry(frames)
        for cluster in _position_clusters(frames):
            if len({frames[i].series_uid for i in cluster}) > 1:
                reason = "two series share a slice position"
                break
    except (GeometryError, ImageReadError) as e:
        reason = str(e)
    if reason:
        raise MixedSeriesError(
            f"{folder}: folder holds {len(by_series)} series that do not form one volume ({reason}): {_listing(headers)}; "
            "choose one with --series NUMBER, DESCRIPTION or ...UID (a *glob* may pick several that form one volume; medseg info lists them), "
            + ("or give one series' folder" if len({p.parent for p, _ in headers}) > 1 else "or put each series in its own folder")
        )


@_quiet
def dicom_body(path: str | Path) -> dict[str, Any]:
    """Height (cm), weight (kg) and sex a DICOM input's first image header records
    (PatientSize in metres, PatientWeight, PatientSex M/F), for BSA-indexed measurements; {}
    for other inputs. Values a scanner leaves as placeholders (0, an implausible size) are left
    out. A folder is searched as the reader searches it (series sub-folders too)."""
    ds = _input_header(Path(path))
    return body_of(ds) if ds is not None else {}


@_quiet
def dicom_study(path: str | Path) -> dict[str, Any]:
    """What tells a patient's studies and series apart in ``cohort.csv`` (a baseline and a
    follow-up) and pairs them: the PatientID, StudyDate (YYYY-MM-DD), StudyInstanceUID and
    SeriesDescription a DICOM input's first image header records, and its scanner
    (:func:`medseg.io.dicom_meta.scanner_of`: manufacturer, model, field strength in tesla, a
    number), those it has; {} for other inputs.
    A header without a StudyDate gives its SeriesDate, AcquisitionDate or ContentDate as
    ``study_date``, and ``study_date_from`` names that tag (a visit paired by another date is seen)."""
    ds = _input_header(Path(path))
    if ds is None:
        return {}
    out = {"patient_id": str(ds.get("PatientID", "") or "").strip(), "study_date": study_date(ds),
           "study_uid": str(ds.get("StudyInstanceUID", "") or "").strip(),
           "series_description": str(ds.get("SeriesDescription", "") or "").strip(), **scanner_of(ds),
           "study_date_from": tag if (tag := study_date_from(ds)) != "StudyDate" else ""}
    return {k: v for k, v in out.items() if v}


def _input_header(p: Path) -> Dataset | None:
    """The first image header of a DICOM input (a folder searched as the reader searches it,
    series sub-folders too), None for other inputs."""
    return _first_image_header(p, STUDY_DEPTH) if p.is_dir() else (read_header(p, strict=False) if p.suffix.lower() in ("", ".dcm", ".ima") else None)


def _first_image_header(folder: Path, depth: int) -> Dataset | None:
    files = sorted(q for q in folder.iterdir() if not q.name.startswith("."))
    for q in files:
        if q.is_file():
            ds = read_header(q, strict=False)
            if ds is not None and is_image(ds):
                return ds
    if depth > 0:
        for q in files:
            if q.is_dir() and (ds := _first_image_header(q, depth - 1)) is not None:
                return ds
    return None

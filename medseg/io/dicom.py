"""DICOM reading (pydicom): series folders, single files, classic and enhanced multi-frame.

How a stack is built (see docs/io.md):

* headers are read without pixels; non-DICOM files and non-image DICOM objects are ignored;
* images are sorted by their position along the slice normal, ``dot(IPP, row_dir x col_dir)``,
  never by file name or InstanceNumber; images within 0.05 mm form one slice position;
* at each position the images are ordered by TriggerTime and the phase index is the rank, so
  slightly different trigger times between slices (281.25 vs 284.81 ms) are no problem; every
  position must have the same number of phases;
* the slice step is the centre-to-centre vector between positions (not SliceThickness); a
  single slice uses SliceThickness (1 mm when absent) along the normal;
* pixels get RescaleSlope/Intercept and become float32; colour images become luminance;
* ``frame_times_s`` are the TriggerTimes (ms -> s) at the first position.

Several series in one folder are merged only when they form one volume (same size,
orientation and spacing, each position from one series: e.g. one series per cine slice). A
folder without DICOM files whose sub-folders hold one study's series (a study exported as one
folder per series) is read as if their images were in it.
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydicom.dataset import Dataset

from ..errors import GeometryError, ImageReadError, MixedSeriesError, SeriesNotFoundError
from .dicom_frames import (
    FrameInfo,
    broken_image_error,
    check_pixel_memory,
    converted_value,
    frames_from_classic,
    frames_from_enhanced,
    image_headers,
    is_broken_image,
    is_enhanced,
    is_image,
    n_frames,
    read_dicom,
    read_header,
    require_geometry,
    unique_instances,
)
from .geometry import ORIENTATION_ATOL, affine_from_dicom, dicom_directions
from .volume import Volume

POSITION_TOL_MM = 0.05

_F = TypeVar("_F", bound=Callable[..., Any])


def _quiet(fn: _F) -> _F:
    """Silence pydicom's validation warnings (e.g. non-conformant UIDs in real data)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@_quiet
def read_dicom_folder(folder: Path, series: str | None = None) -> Volume:
    """Read the DICOM series in ``folder`` (files directly inside it) as a (T, Z, Y, X) Volume;
    ``series`` keeps only the images of the series it names (:func:`series_matches`)."""
    headers = _folder_headers(folder)
    if series is not None:
        kept = [(p, ds) for p, ds in headers if series_matches(ds, series)]
        if not kept:
            raise SeriesNotFoundError(f"{folder}: no series matches --series {series!r}; it holds {_listing(headers)}")
        headers = kept
    if len(headers) == 1:
        return _read_one(*headers[0])
    multi = [p.name for p, ds in headers if n_frames(ds) > 1 and not is_enhanced(ds)]
    if multi and len(multi) == len(headers):
        raise ImageReadError(f"{folder}: holds {len(multi)} multi-frame clips ({', '.join(multi[:3])}{', ...' if len(multi) > 3 else ''}), "
                             "each a recording of its own: open one file (medseg batch takes each clip as a case)")
    if multi:
        raise ImageReadError(f"{folder}: folder mixes multi-frame files ({', '.join(multi[:3])}) with other images; open one file")
    frames = [f for p, ds in headers for f in (frames_from_enhanced(ds, p) if is_enhanced(ds) else frames_from_classic(ds, p))]
    _check_series(frames, folder, headers)
    return _build_stack(frames, dict(headers), folder)


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
            raise ImageReadError(f"{folder}: its sub-folders hold more than one study; give one study's folder (or one series folder), "
                                 "or the folder to medseg batch, which takes each one")
        if headers:
            return headers
    hint = (f"; it holds {len(images)} image file(s) ({', '.join(images[:3])}{', ...' if len(images) > 3 else ''}): give one of them, "
            "or the folder to medseg batch") if images else ""
    subs = sum(p.is_dir() for p in entries)
    hint += (f"; nor do its {subs} sub-folders ({STUDY_DEPTH} levels searched): give one image file, "
             "or the folder to medseg batch, which takes every image file and DICOM folder below it as a case") if subs and not images else ""
    raise ImageReadError(f"no DICOM images in folder {folder} ({len(files)} files checked){hint}")


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
    modality, images, rows x columns (headers only; for ``medseg info`` and error messages)."""
    return _series_rows(_folder_headers(folder))


def _series_rows(headers: list[tuple[Path, Dataset]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for p, ds in headers:
        uid = str(ds.get("SeriesInstanceUID", ""))
        r = rows.setdefault(uid, {"number": _num(ds.get("SeriesNumber")), "description": str(ds.get("SeriesDescription", "") or ""),
                                  "uid": uid, "modality": str(ds.get("Modality", "") or ""), "images": 0,
                                  "size": f"{ds.get('Rows', '?')} x {ds.get('Columns', '?')}", "folder": p.parent.name})
        r["images"] += n_frames(ds)
    return sorted(rows.values(), key=lambda r: (r["number"] is None, r["number"] or 0, r["description"]))


def _listing(headers: list[tuple[Path, Dataset]]) -> str:
    rows = _series_rows(headers)
    where = len({p.parent for p, _ in headers}) > 1  # a study folder: say which sub-folder holds each series
    items = [(f"#{r['number']:g} " if r["number"] is not None else "") + f"'{r['description']}' ...{r['uid'][-8:]} ({r['images']} images"
             + (f" in {r['folder']}/)" if where else ")") for r in rows]
    return "; ".join(items[:8]) + (f"; and {len(items) - 8} more" if len(items) > 8 else "")


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
        _check_uniform(flat)
    except (GeometryError, ImageReadError):
        return False
    normal = dicom_directions(flat[0].iop)[2]  # type: ignore[arg-type]
    per_folder = [[float(np.dot(f.ipp, normal)) for f in fs] for fs in positions]  # type: ignore[arg-type]
    if any(max(v) - min(v) >= POSITION_TOL_MM for v in per_folder):
        return False  # a folder holds several positions: a stack of its own
    centres = sorted(v[0] for v in per_folder)
    return all(b - a >= POSITION_TOL_MM for a, b in zip(centres, centres[1:]))


@_quiet
def read_dicom_file(path: Path) -> Volume:
    """Read one DICOM file: a single image, an enhanced multi-frame stack/cine, or a legacy
    multi-frame clip (frames = time, e.g. ultrasound)."""
    ds = read_header(path, strict=True)
    if ds is not None and is_broken_image(ds):
        raise broken_image_error(path, ds)
    if ds is None or not is_image(ds):
        sop = ds.get("SOPClassUID", "?") if ds is not None else "?"
        raise ImageReadError(f"{path}: DICOM file holds no image (SOP class {sop})")
    return _read_one(path, ds)


def _read_one(path: Path, ds: Dataset) -> Volume:
    if is_enhanced(ds):
        return _build_stack(frames_from_enhanced(ds, path), {path: ds}, path)
    info = frames_from_classic(ds, path)
    if n_frames(ds) == 1 and info[0].ipp and info[0].iop and info[0].pixel_spacing:
        return _build_stack(info, {path: ds}, path)
    return _read_unpositioned(path, ds)


# -- stacks -----------------------------------------------------------------------------
def _check_series(frames: list[FrameInfo], folder: Path, headers: list[tuple[Path, Dataset]]) -> None:
    """Several series may only be merged when they tile one volume; otherwise list them."""
    by_series: dict[str, list[FrameInfo]] = defaultdict(list)
    for f in frames:
        by_series[f.series_uid].append(f)
    if len(by_series) == 1:
        return
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


def _check_uniform(frames: list[FrameInfo]) -> None:
    sizes = Counter(f"{f.cols}x{f.rows}" for f in frames)
    if len(sizes) > 1:
        raise ImageReadError("images have different sizes: " + ", ".join(f"{k} ({n} images)" for k, n in sizes.items()))
    ref = frames[0]
    for f in frames[1:]:
        if f.iop and ref.iop and not np.allclose(f.iop, ref.iop, atol=ORIENTATION_ATOL):
            raise GeometryError(f"images have different orientations ({ref.path.name} vs {f.path.name}); cannot stack them")
        if f.pixel_spacing and ref.pixel_spacing and not np.allclose(f.pixel_spacing, ref.pixel_spacing, rtol=1e-4):
            raise GeometryError(
                f"images have different PixelSpacing ({list(ref.pixel_spacing)} vs {list(f.pixel_spacing)} mm in {f.path.name})"
            )


def _position_clusters(frames: list[FrameInfo]) -> list[list[int]]:
    """Indices of ``frames`` grouped by position along the normal, in increasing position."""
    normal = dicom_directions(frames[0].iop)[2]  # type: ignore[arg-type]
    pos = np.array([np.dot(f.ipp, normal) for f in frames])  # type: ignore[arg-type]
    clusters: list[list[int]] = []
    for i in np.argsort(pos, kind="stable"):
        if clusters and pos[i] - pos[clusters[-1][0]] < POSITION_TOL_MM:
            clusters[-1].append(int(i))
        else:
            clusters.append([int(i)])
    return clusters


def _arrange(frames: list[FrameInfo]) -> list[list[FrameInfo]]:
    """Frames as a [t][z] grid: z by position along the normal, t by TriggerTime rank."""
    clusters = _position_clusters(frames)
    counts = Counter(len(c) for c in clusters)
    if len(counts) > 1:
        summary = ", ".join(f"{n} phase(s) at {k} position(s)" for n, k in sorted(counts.items()))
        raise ImageReadError(
            f"slice positions have different numbers of phases ({summary}); the series is incomplete or mixes acquisitions"
        )
    inf = float("inf")
    columns = [sorted((frames[i] for i in c), key=lambda f: (f.trigger_ms if f.trigger_ms is not None else inf, f.order)) for c in clusters]
    return [[col[t] for col in columns] for t in range(len(columns[0]))]


def _slice_step(grid: list[list[FrameInfo]]) -> np.ndarray:
    """LPS vector between consecutive slice centres; checks that slices are evenly spaced."""
    first = grid[0]
    _, _, normal = dicom_directions(first[0].iop)  # type: ignore[arg-type]
    n = len(first)
    if n == 1:
        thick = first[0].thickness
        return normal * (thick if thick and thick > 0 else 1.0)
    ipps = np.array([f.ipp for f in first], dtype=np.float64)
    step = (ipps[-1] - ipps[0]) / (n - 1)
    dev = np.linalg.norm(ipps - (ipps[0] + np.arange(n)[:, None] * step), axis=1).max()
    if dev > max(POSITION_TOL_MM, 0.02 * np.linalg.norm(step)):
        gaps = np.round(np.diff(ipps @ normal), 3)
        raise GeometryError(f"slices are not evenly spaced along the normal (gaps {', '.join(f'{g:g}' for g in gaps)} mm); a slice may be missing")
    return step


def _build_stack(frames: list[FrameInfo], headers: dict[Path, Dataset], source: Path) -> Volume:
    """Sort, group and load ``frames`` into a Volume; ``headers`` maps each path to its header."""
    require_geometry(frames)
    _check_uniform(frames)
    grid = _arrange(frames)
    ref = grid[0][0]
    affine = affine_from_dicom(ref.ipp, ref.iop, ref.pixel_spacing, _slice_step(grid))  # type: ignore[arg-type]
    check_pixel_memory(source, headers[ref.path], len(grid) * len(grid[0]))  # before any pixel is decoded
    array = _load_pixels(grid)
    trig = [row[0].trigger_ms for row in grid]
    times = np.asarray(trig, dtype=np.float64) / 1000.0 if all(t is not None for t in trig) and len(trig) > 1 else None
    if times is not None and np.any(np.diff(times) <= 0):
        times = None
    ds0 = headers[ref.path]
    meta = _meta(ds0, source, grid)
    return Volume(array=array, affine=affine, frame_times_s=times, modality=_modality(ds0), spacing_known=True, meta=meta)


def _meta(ds0: Dataset, source: Path, grid: list[list[FrameInfo]]) -> dict[str, Any]:
    uids = list(dict.fromkeys(f.series_uid for row in grid for f in row))
    return {
        "format": "dicom",
        "path": str(source),
        "source_ndim": 4 if len(grid) > 1 else 3,
        "positioned": True,  # every image has position + orientation (needed for DICOM SEG)
        "series_description": grid[0][0].series_description or None,
        "series_instance_uid": uids[0] or None,
        "series_instance_uids": uids,
        "study_instance_uid": str(ds0.get("StudyInstanceUID", "")) or None,
        "patient_id": str(ds0.get("PatientID", "")) or None,
        "frame_of_reference_uid": str(ds0.get("FrameOfReferenceUID", "")) or None,
        "patient_body": body_of(ds0),  # height, weight, sex for BSA (napari's measurement panel); never written out
        "heart_rate": _num(ds0.get("HeartRate", converted_value(ds0, "HeartRate"))),
        "nominal_interval": _num(ds0.get("NominalInterval", converted_value(ds0, "NominalInterval"))),
        "files": [[str(f.path) for f in row] for row in grid],
        "frame_numbers": [[f.frame for f in row] for row in grid],
        "sop_instance_uids": [[f.sop_uid for f in row] for row in grid],
        "trigger_times_ms": [[f.trigger_ms for f in row] for row in grid],
    }


def _num(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _modality(ds: Dataset) -> str:
    mod = str(ds.get("Modality", "") or "").upper()
    return mod if mod in ("MR", "CT", "US") else "OT"


# -- pixels -----------------------------------------------------------------------------
def _pixels(path: Path) -> tuple[Dataset, np.ndarray]:
    """Full dataset and its pixel array; colour (..., 3) becomes float32 luminance."""
    ds: Dataset | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = read_dicom(path)
            arr = ds.pixel_array
    except Exception as e:  # truncated pixel data, missing decoder, ...
        ts = ds.file_meta.get("TransferSyntaxUID") if ds is not None and hasattr(ds, "file_meta") else None
        extra = f" (transfer syntax {getattr(ts, 'name', ts)})" if ts else ""
        hint = _decoder_hint(ts) if getattr(ts, "is_compressed", False) else ""
        import re

        why = " ".join(str(e).split())
        short = re.search(r"less than expected \((\d+) vs (\d+) bytes\)", why)
        if short:  # pydicom checks the length before it allocates the array
            raise ImageReadError(f"cannot decode pixels of {path}{extra}: the pixel data is truncated ({int(short[1]):,} bytes, where its "
                                 f"header's Rows x Columns x frames need {int(short[2]):,}): a copy cut short, or a wrong header") from None
        raise ImageReadError(f"cannot decode pixels of {path}{extra}: {type(e).__name__}: "
                             f"{why[:160]}{'...' if len(why) > 160 else ''}{hint}") from None
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        a = arr.astype(np.float32)
        arr = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    elif str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1" and _modality(ds) != "CT":
        arr = _monochrome1_to_2(arr, ds)
    return ds, arr


def _decoder_hint(ts: Any) -> str:
    """Which Python package decodes a compressed transfer syntax pydicom could not."""
    name = str(getattr(ts, "name", "") or "")
    if "2000" in name:
        return "; JPEG 2000 needs pylibjpeg with pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)"
    if "JPEG" in name:  # baseline, extended (12 bit), lossless, JPEG-LS
        return "; for JPEG (12-bit and JPEG-LS too) install pylibjpeg with pylibjpeg-libjpeg (pip install pylibjpeg pylibjpeg-libjpeg)"
    return "; install python-gdcm, or decompress the series first (e.g. gdcmconv --raw, dcmdjpeg)"


def _monochrome1_to_2(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """MONOCHROME1 (the lowest value is shown white) as MONOCHROME2, the way a viewer shows it:
    the stored values mirrored within their bit range, before the rescale. Not for CT, whose
    rescaled values are Hounsfield units whatever their display."""
    bits = int(ds.get("BitsStored", 0) or 0) or 8 * arr.dtype.itemsize
    if int(ds.get("PixelRepresentation", 0) or 0):  # signed: -2^(b-1) .. 2^(b-1) - 1
        return (-1 - arr.astype(np.int64)).astype(np.float32)
    return ((1 << bits) - 1 - arr.astype(np.int64)).astype(np.float32)


def _load_pixels(grid: list[list[FrameInfo]]) -> np.ndarray:
    """(T, Z, Y, X) float32 with RescaleSlope/Intercept applied; each file decoded once.

    The output is allocated only once the first file has been decoded: its pixel data, checked
    against the Rows x Columns (x frames) its header declares, shows that size is real (all
    images of a stack have one size). A header declaring 65535 x 65535 over a few bytes of pixel
    data is then the one-line "truncated" error, not a MemoryError or an allocation of gigabytes."""
    ref = grid[0][0]
    out: np.ndarray | None = None
    by_path: dict[Path, list[tuple[int, int, FrameInfo]]] = defaultdict(list)
    for t, row in enumerate(grid):
        for z, f in enumerate(row):
            by_path[f.path].append((t, z, f))
    for path, items in by_path.items():
        _, arr = _pixels(path)
        if out is None:
            out = np.empty((len(grid), len(grid[0]), ref.rows, ref.cols), dtype=np.float32)
        for t, z, f in items:
            plane = arr if f.frame is None else (arr[f.frame] if arr.ndim == 3 else arr)
            if plane.shape != (ref.rows, ref.cols):
                raise ImageReadError(f"{path.name}: pixel data shape {plane.shape} does not match Rows x Columns")
            out[t, z] = plane.astype(np.float32) * np.float32(f.slope) + np.float32(f.intercept)
    assert out is not None  # a grid holds at least one image
    return out


def _read_unpositioned(path: Path, header: Dataset) -> Volume:
    """A single image or legacy multi-frame clip (frames = time) -> (T, 1, Y, X)."""
    info = frames_from_classic(header, path)[0]
    affine, known = _unpositioned_geometry(header, info)
    check_pixel_memory(path, header, n_frames(header))  # before the pixels are decoded
    ds, arr = _pixels(path)
    frames = arr if n_frames(ds) > 1 else arr[None]
    array = frames.astype(np.float32) * np.float32(info.slope) + np.float32(info.intercept)
    n = array.shape[0]
    meta = _meta(ds, path, [[info]])
    meta.update(source_ndim=3 if n > 1 else 2, positioned=False, files=[[str(path)]] * n, frame_numbers=[[i] for i in range(n)] if n > 1 else [[None]])
    return Volume(array=array[:, None], affine=affine, frame_times_s=_clip_times(ds, n),
                  modality=_modality(ds), spacing_known=known, meta=meta)


def _unpositioned_geometry(ds: Dataset, info: FrameInfo) -> tuple[np.ndarray, bool]:
    """Geometry of an image without a stack: full DICOM geometry, else ultrasound-region
    calibration, else (US / OT only) 1 mm pixels with ``spacing_known=False``."""
    if info.ipp and info.iop and info.pixel_spacing:
        normal = dicom_directions(info.iop)[2]
        return affine_from_dicom(info.ipp, info.iop, info.pixel_spacing, normal * (info.thickness or 1.0)), True
    region = _us_region_spacing_mm(ds)
    if region is not None:
        return np.diag([region[1], region[0], 1.0, 1.0]), True
    if _modality(ds) in ("US", "OT"):
        return np.eye(4), False
    require_geometry([info])  # raises GeometryError naming what is missing
    return np.eye(4), False


def _us_region_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """(dy, dx) mm from the first ultrasound region calibrated in cm, else None."""
    for region in ds.get("SequenceOfUltrasoundRegions", []) or []:
        if region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
            dx, dy = abs(float(region.PhysicalDeltaX)) * 10.0, abs(float(region.PhysicalDeltaY)) * 10.0
            if dx > 0 and dy > 0:
                return dy, dx
    return None


def _clip_times(ds: Dataset, n: int) -> np.ndarray | None:
    if n < 2:
        return None
    vec = ds.get("FrameTimeVector")
    if vec is not None and len(vec) == n:
        return np.cumsum(np.asarray(vec, dtype=np.float64)) / 1000.0
    ft = _num(ds.get("FrameTime"))
    return np.arange(n, dtype=np.float64) * ft / 1000.0 if ft and ft > 0 else None


@_quiet
def dicom_body(path: str | Path) -> dict[str, Any]:
    """Height (cm), weight (kg) and sex a DICOM input's first image header records
    (PatientSize in metres, PatientWeight, PatientSex M/F), for BSA-indexed measurements; {}
    for other inputs. Values a scanner leaves as placeholders (0, an implausible size) are left
    out. A folder is searched as the reader searches it (series sub-folders too)."""
    p = Path(path)
    ds = _first_image_header(p, STUDY_DEPTH) if p.is_dir() else (read_header(p, strict=False) if p.suffix.lower() in ("", ".dcm", ".ima") else None)
    return body_of(ds) if ds is not None else {}


def body_of(ds: Dataset) -> dict[str, Any]:
    """Height (cm), weight (kg) and sex (M/F) of one DICOM header, placeholders left out."""
    from ..measure.volumes import HEIGHT_RANGE_CM, WEIGHT_RANGE_KG

    out: dict[str, Any] = {}
    size, weight = _num(ds.get("PatientSize")), _num(ds.get("PatientWeight"))
    if size and HEIGHT_RANGE_CM[0] <= size * 100.0 <= HEIGHT_RANGE_CM[1]:
        out["height_cm"] = round(size * 100.0, 1)
    if weight and WEIGHT_RANGE_KG[0] <= weight <= WEIGHT_RANGE_KG[1]:
        out["weight_kg"] = weight
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    if sex in ("M", "F"):
        out["sex"] = sex
    return out


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

"""DICOM reading (pydicom): series folders, single files, classic and enhanced multi-frame.

How a stack is built (see docs/io.md):

* headers are read without pixels; non-DICOM files and non-image DICOM objects are ignored;
* images are sorted by their position along the slice normal, ``dot(IPP, row_dir x col_dir)``,
  never by file name or InstanceNumber; images following each other within 0.1 mm form one
  slice position when slices lie 1 mm or more apart (within 0.05 mm in thinner stacks);
* at each position the images are ordered by TriggerTime and the phase index is the rank, so
  slightly different trigger times between slices (281.25 vs 284.81 ms) are no problem; every
  position must have the same number of phases; without TriggerTime on every image, all
  slices are ordered by InstanceNumber (no frame times); two images at one position and
  trigger time are refused;
* an MR series of magnitude and phase images (ImageType ...\\M\\... and ...\\P\\..., a flow
  series) is read as its magnitude images, with a note (``time_note``): phase images are
  velocity maps, not anatomy, and would double the cine; a series of phase images alone is
  refused;
* the slice step is the centre-to-centre vector between positions (not SliceThickness); a
  single slice uses SliceThickness (1 mm when absent) along the normal;
* pixels get RescaleSlope/Intercept and become float32; colour images become luminance;
  PixelPaddingValue pixels become their frame's lowest other value (background);
* ``frame_times_s`` are the TriggerTimes (ms -> s) at the first position; the heart rate is
  the series' median HeartRate, or 60000 / NominalInterval when the two disagree.

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
from .volume import Volume, luminance

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
    centres = sorted(float(np.median(v)) for v in per_folder)
    tol = _cluster_tolerance(np.concatenate(per_folder))  # the scatter one slice's positions may have (_position_clusters)
    if any(max(v) - min(v) > tol for v in per_folder):
        return False  # a folder holds several positions: a stack of its own
    return all(b - a > tol for a, b in zip(centres, centres[1:]))


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


#: the positions along the normal that one slice's images may scatter over (scanners write them
#: rounded, or recompute them per frame: +-0.03 mm), when the slice step is at least
#: :data:`JITTER_MIN_STEP_MM`; thinner stacks keep :data:`POSITION_TOL_MM`
JITTER_TOL_MM = 0.1
JITTER_MIN_STEP_MM = 1.0


def _cluster_tolerance(pos: np.ndarray) -> float:
    """How far apart (mm along the normal) two images of one slice may lie, for images at
    ``pos``: :data:`JITTER_TOL_MM` when some of them lie :data:`JITTER_MIN_STEP_MM` or more
    apart with none between (slices at least that far apart), or when they all lie within
    :data:`JITTER_TOL_MM` (one slice); else (a stack thinner than 1 mm) :data:`POSITION_TOL_MM`."""
    p = np.sort(np.asarray(pos, dtype=np.float64))
    if len(p) < 2 or p[-1] - p[0] <= JITTER_TOL_MM or np.diff(p).max() >= JITTER_MIN_STEP_MM:
        return JITTER_TOL_MM
    return POSITION_TOL_MM


def _position_clusters(frames: list[FrameInfo]) -> list[list[int]]:
    """Indices of ``frames`` grouped by position along the normal, in increasing position.

    Images whose positions follow each other within :data:`JITTER_TOL_MM` form one slice when
    the slices lie at least :data:`JITTER_MIN_STEP_MM` apart (a thinner stack: images within
    :data:`POSITION_TOL_MM` of the slice's first image).

    Raises:
        GeometryError: the images of one slice spread over more than :data:`JITTER_TOL_MM`
            (their positions drift between frames).
    """
    normal = dicom_directions(frames[0].iop)[2]  # type: ignore[arg-type]
    pos = np.array([np.dot(f.ipp, normal) for f in frames])  # type: ignore[arg-type]
    order = np.argsort(pos, kind="stable")
    clusters: list[list[int]] = []
    if _cluster_tolerance(pos) < JITTER_TOL_MM:  # slices under 1 mm apart: within 0.05 mm of a slice's first image
        for i in order:
            if clusters and pos[i] - pos[clusters[-1][0]] < POSITION_TOL_MM:
                clusters[-1].append(int(i))
            else:
                clusters.append([int(i)])
        return clusters
    tol = JITTER_TOL_MM
    for i in order:  # chains: each image within JITTER_TOL_MM of the one before it
        if clusters and pos[i] - pos[clusters[-1][-1]] <= tol:
            clusters[-1].append(int(i))
        else:
            clusters.append([int(i)])
    for c in clusters:
        spread = pos[c[-1]] - pos[c[0]]
        if spread > tol:
            a, b = frames[c[0]], frames[c[-1]]
            raise GeometryError(
                f"the positions of one slice drift by {spread:.2f} mm between frames ({_where(a)} at {pos[c[0]]:.2f} mm, "
                f"{_where(b)} at {pos[c[-1]]:.2f} mm along the normal; images within {tol:g} mm are one slice): "
                "the series is not one stack"
            )
    return clusters


def _where(f: FrameInfo) -> str:
    return f.path.name + (f" frame {f.frame + 1}" if f.frame is not None else "")


def _arrange(frames: list[FrameInfo]) -> tuple[list[list[FrameInfo]], str | None]:
    """Frames as a [t][z] grid: z by position along the normal, t by TriggerTime rank; and a
    note when the frames were ordered without their TriggerTimes (there are then no frame
    times).

    Images without TriggerTime are ordered by InstanceNumber (an enhanced file's frames by
    TemporalPositionIndex). When only some images have one, every slice is ordered so (never a
    mix of the two orders), once that order is seen to agree with the TriggerTimes there are;
    a series whose images share one TriggerTime per slice (a placeholder, e.g. 0 on every
    image of an ungated cine) is ordered so too."""
    clusters = _position_clusters(frames)
    _check_duplicates(frames, clusters)
    counts = Counter(len(c) for c in clusters)
    if len(counts) > 1:
        summary = ", ".join(f"{n} phase(s) at {k} position(s)" for n, k in sorted(counts.items()))
        raise ImageReadError(
            f"slice positions have different numbers of phases ({summary}); the series is incomplete or mixes acquisitions"
        )
    by = "InstanceNumber" if all(f.frame is None for f in frames) else "InstanceNumber / TemporalPositionIndex"
    timed = sum(f.trigger_ms is not None for f in frames)
    note = None
    if 0 < timed < len(frames) and len(clusters[0]) > 1:  # (one image per slice: no order to choose)
        columns = [sorted((frames[i] for i in c), key=lambda f: f.order) for c in clusters]
        untimed = next(f for f in frames if f.trigger_ms is None)
        for col in columns:
            times = [f for f in col if f.trigger_ms is not None]
            bad = next(((a, b) for a, b in zip(times, times[1:]) if b.trigger_ms <= a.trigger_ms), None)  # type: ignore[operator]
            if bad:
                raise ImageReadError(
                    f"{len(frames) - timed} of {len(frames)} images have no TriggerTime (e.g. {_where(untimed)}), and the {by} order "
                    f"disagrees with the TriggerTimes of the others ({_where(bad[0])} at {bad[0].trigger_ms:g} ms comes before "
                    f"{_where(bad[1])} at {bad[1].trigger_ms:g} ms): the phase of those images is unknown; export the series with its trigger times"
                )
        note = f"{len(frames) - timed} of {len(frames)} images have no TriggerTime: frames ordered by {by}, frame times left out"
    elif timed and len(clusters[0]) > 1 and all(len({frames[i].trigger_ms for i in c}) == 1 for c in clusters):
        columns = [sorted((frames[i] for i in c), key=lambda f: f.order) for c in clusters]
        one = sorted({frames[c[0]].trigger_ms for c in clusters})  # type: ignore[type-var]
        note = (f"the images of each slice share one TriggerTime ({', '.join(f'{t:g}' for t in one[:3])}{', ...' if len(one) > 3 else ''} ms): "
                f"frames ordered by {by}, frame times left out")
    else:
        inf = float("inf")
        columns = [sorted((frames[i] for i in c), key=lambda f: (f.trigger_ms if f.trigger_ms is not None else inf, f.order)) for c in clusters]
    return [[col[t] for col in columns] for t in range(len(columns[0]))], note


def _check_duplicates(frames: list[FrameInfo], clusters: list[list[int]]) -> None:
    """Refuse images that share a slice position and a TriggerTime: two image types of one
    acquisition (other than magnitude and phase, which :func:`_magnitude_images` separates), or
    an acquisition repeated within one series, would read as a cine of twice the phases,
    interleaved. Images without TriggerTime are not compared (they are ordered by
    InstanceNumber), nor is a series of one image type whose images share one TriggerTime per
    slice (a placeholder: :func:`_arrange`)."""
    groups: dict[tuple[int, float], list[FrameInfo]] = defaultdict(list)
    for z, c in enumerate(clusters):
        for i in c:
            if frames[i].trigger_ms is not None:
                groups[(z, frames[i].trigger_ms)].append(frames[i])  # type: ignore[index]
    dups = [g for g in groups.values() if len(g) > 1]
    if not dups:
        return
    types = sorted({f.image_type for g in dups for f in g})
    placeholder = all(len({frames[i].trigger_ms for i in c}) == 1 and frames[c[0]].trigger_ms is not None for c in clusters)
    if placeholder and len(types) == 1:
        return
    n = sum(len(g) for g in dups)
    if len(types) > 1:
        sizes = {len(g) for g in dups}
        where = (f"{sizes.pop()} images at each position and trigger time" if len(dups) == len(groups) and len(sizes) == 1
                 else f"{n} images share a position and trigger time")
        raise ImageReadError(f"{where}, ImageType {' and '.join(t or '(not set)' for t in types[:4])}{' and more' if len(types) > 4 else ''}: "
                             "the series mixes image types; export one")
    a, b = dups[0][:2]
    raise ImageReadError(f"{n} images share a position and trigger time (e.g. {_where(a)} and {_where(b)}, {a.trigger_ms:g} ms): "
                         "the series repeats images or mixes acquisitions; export one")


def _slice_step(grid: list[list[FrameInfo]]) -> np.ndarray:
    """LPS vector between consecutive slice centres; checks that slices are evenly spaced."""
    first = grid[0]
    _, _, normal = dicom_directions(first[0].iop)  # type: ignore[arg-type]
    n = len(first)
    if n == 1:
        thick = first[0].thickness
        return normal * (thick if thick and thick > 0 else 1.0)
    # each slice at the mean of its frames' positions: scanners that round or recompute them per
    # frame scatter one slice by up to JITTER_TOL_MM (_position_clusters), more than 2 % of a 1 mm step
    ipps = np.array([[f.ipp for f in row] for row in grid], dtype=np.float64).mean(axis=0)
    step = (ipps[-1] - ipps[0]) / (n - 1)
    dev = np.linalg.norm(ipps - (ipps[0] + np.arange(n)[:, None] * step), axis=1).max()
    along = np.array([np.dot(f.ipp, normal) for row in grid for f in row])  # type: ignore[arg-type]
    jitter = _cluster_tolerance(along)  # the scatter the slice grouping accepted (_position_clusters)
    if dev > max(POSITION_TOL_MM, 0.02 * np.linalg.norm(step), jitter):
        gaps = np.round(np.diff(ipps @ normal), 3)
        raise GeometryError(f"slices are not evenly spaced along the normal (gaps {', '.join(f'{g:g}' for g in gaps)} mm); a slice may be missing")
    return step


def _build_stack(frames: list[FrameInfo], headers: dict[Path, Dataset], source: Path) -> Volume:
    """Sort, group and load ``frames`` into a Volume; ``headers`` maps each path to its header."""
    frames, type_note = _magnitude_images(frames)
    require_geometry(frames)
    _check_uniform(frames)
    grid, time_note = _arrange(frames)
    ref = grid[0][0]
    affine = affine_from_dicom(ref.ipp, ref.iop, ref.pixel_spacing, _slice_step(grid))  # type: ignore[arg-type]
    check_pixel_memory(source, headers[ref.path], len(grid) * len(grid[0]))  # before any pixel is decoded
    array = _load_pixels(grid)
    trig = [row[0].trigger_ms for row in grid]
    times = np.asarray(trig, dtype=np.float64) / 1000.0 if all(t is not None for t in trig) and len(trig) > 1 and not time_note else None
    if times is not None and np.any(np.diff(times) <= 0):
        times = None
    ds0 = headers[ref.path]
    meta = _meta(ds0, source, grid, [headers[p] for p in dict.fromkeys(f.path for row in grid for f in row)])
    if time_note or type_note:
        meta["time_note"] = "; ".join(n for n in (type_note, time_note) if n)
    return Volume(array=array, affine=affine, frame_times_s=times, modality=_modality(ds0), spacing_known=True, meta=meta)


def _magnitude_images(frames: list[FrameInfo]) -> tuple[list[FrameInfo], str | None]:
    """The images of ``frames`` to read, and a note when some are left out: of an MR series of
    magnitude and phase images (every image one or the other, :func:`mr_component`: a flow
    series, or a cine reconstructed both ways) the magnitude images, whether or not they have
    TriggerTimes (without, InstanceNumber interleaved both kinds into a cine of twice the
    frames; with, two images shared each position and trigger time). Other mixes of image
    types are left to :func:`_check_duplicates`.

    Raises:
        ImageReadError: every image is a phase image (velocity maps: no anatomy to segment).
    """
    kinds = Counter(f.component for f in frames)
    if kinds["P"] == len(frames):
        raise ImageReadError(f"the series holds phase images only ({len(frames)} image(s), ImageType {frames[0].image_type}, e.g. "
                             f"{_where(frames[0])}): phase images are velocity maps, not anatomy; read the acquisition's magnitude images")
    if not (kinds["M"] and kinds["P"]) or kinds["M"] + kinds["P"] != len(frames):
        return frames, None
    kept = [f for f in frames if f.component == "M"]
    types = sorted({f.image_type for f in frames if f.component == "P"})
    return kept, (f"the series holds magnitude and phase images: the {kinds['M']} magnitude images read, the {kinds['P']} phase images "
                  f"(ImageType {' and '.join(types[:2])}{' and more' if len(types) > 2 else ''}: velocity maps, not anatomy) left out")


def _meta(ds0: Dataset, source: Path, grid: list[list[FrameInfo]], datasets: list[Dataset] | None = None) -> dict[str, Any]:
    """What a DICOM Volume's ``meta`` records; ``datasets`` are the headers of all its files
    (for the heart rate: :func:`_cardiac_timing`), ``ds0``'s alone when not given."""
    uids = list(dict.fromkeys(f.series_uid for row in grid for f in row))
    heart_rate, nominal_interval, timing_note = _cardiac_timing(datasets or [ds0])
    meta = {
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
        "heart_rate": heart_rate,
        "nominal_interval": nominal_interval,
        "files": [[str(f.path) for f in row] for row in grid],
        "frame_numbers": [[f.frame for f in row] for row in grid],
        "sop_instance_uids": [[f.sop_uid for f in row] for row in grid],
        "trigger_times_ms": [[f.trigger_ms for f in row] for row in grid],
    }
    if timing_note:
        meta["cardiac_timing_note"] = timing_note
    return meta


#: HeartRate and 60000 / NominalInterval further apart than this (relative) are noted, and
#: NominalInterval's taken
HEART_RATE_DISAGREE = 0.10


def _cardiac_timing(datasets: list[Dataset]) -> tuple[float | None, float | None, str | None]:
    """(heart rate beats/min, RR interval ms, note): the median HeartRate and the median
    NominalInterval over the images' headers (each image records the beats of its own
    acquisition: Sunnybrook's slices 76-80/min); placeholders (0) are left out of the median.
    When both are heart rates (20-300/min) and they differ by more than 10 %, the heart rate
    becomes 60000 / NominalInterval (the RR interval the scanner gated on, which measure's
    cardiac output then uses) and the note says so."""
    from ..measure.volumes import HEART_RATE_RANGE_BPM

    def median(attr: str) -> float | None:
        values = [v for ds in datasets if (v := _num(ds.get(attr, converted_value(ds, attr)))) is not None]
        positive = [v for v in values if v > 0]
        return float(np.median(positive)) if positive else (values[0] if values else None)

    hr, rr = median("HeartRate"), median("NominalInterval")
    lo, hi = HEART_RATE_RANGE_BPM
    if hr is None or rr is None or not (lo <= hr <= hi and rr > 0 and lo <= 60000.0 / rr <= hi):
        return hr, rr, None
    hr_rr = 60000.0 / rr
    if abs(hr - hr_rr) <= HEART_RATE_DISAGREE * hr_rr:
        return hr, rr, None
    note = (f"HeartRate {hr:g} beats/min and NominalInterval {rr:g} ms ({hr_rr:.1f} beats/min) differ by more than "
            f"{HEART_RATE_DISAGREE:.0%}: {hr_rr:.1f} beats/min taken, from the RR interval the scanner gated on")
    return hr_rr, rr, note


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
        return ds, luminance(arr)
    padding = _padding_mask(ds, arr)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1" and _modality(ds) != "CT":
        arr = _monochrome1_to_2(arr, ds)
    if padding is not None:
        arr = _fill_padding(arr, padding)
    return ds, arr


def _padding_mask(ds: Dataset, arr: np.ndarray) -> np.ndarray | None:
    """Where a grayscale image holds its PixelPaddingValue (or a value between it and
    PixelPaddingRangeLimit, inclusive), in stored values before the rescale: the pixels
    outside the image (a frame of 4095 around an MR, -2000 outside a CT's circular field of
    view); None when the header declares no padding or no pixel holds it."""
    value = _stored_value(ds, "PixelPaddingValue")
    if value is None or not np.issubdtype(arr.dtype, np.integer):
        return None
    limit = _stored_value(ds, "PixelPaddingRangeLimit")
    lo, hi = (min(value, limit), max(value, limit)) if limit is not None else (value, value)
    a = arr.astype(np.int64, copy=False)
    mask = (a >= lo) & (a <= hi)
    return mask if mask.any() else None


def _stored_value(ds: Dataset, name: str) -> int | None:
    """A US-or-SS attribute (PixelPaddingValue) as a stored pixel value: signed when
    PixelRepresentation is 1 (a value written as US, 63536 for -2000, read back as its
    two's complement within BitsAllocated or BitsStored), unsigned otherwise."""
    if name not in ds:
        return None
    raw = ds[name].value
    signed = str(ds.get("PixelRepresentation", 0)).strip() == "1"
    if isinstance(raw, (bytes, bytearray)):  # a VR pydicom could not resolve
        if len(raw) < 2:
            return None
        raw = int.from_bytes(bytes(raw[:2]), "little", signed=signed)
    if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue":
        raw = raw[0] if len(raw) else None
    try:
        v = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    alloc = int(ds.get("BitsAllocated", 16) or 16)
    stored = int(ds.get("BitsStored", alloc) or alloc)
    if signed:
        if v >= 1 << (alloc - 1):
            v -= 1 << alloc
        elif v >= 1 << (stored - 1):
            v -= 1 << stored
    elif v < 0:
        v += 1 << alloc
    return v


def _fill_padding(arr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``arr`` with its padding pixels (``mask``) set to the lowest value of the other pixels
    of their frame (of the file, for a frame that is all padding): background, which the
    intensity scaling then treats as such."""
    out = np.array(arr, copy=True)
    frames, masks = out.reshape(-1, *out.shape[-2:]), mask.reshape(-1, *mask.shape[-2:])
    if masks.all():
        return out  # nothing but padding: a blank image, as it was
    lowest = out[~mask].min()
    for plane, m in zip(frames, masks):
        if m.any():
            plane[m] = plane[~m].min() if not m.all() else lowest
    return out


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

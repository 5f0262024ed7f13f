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
  single slice uses SliceThickness (1 mm when absent) along the normal; a stack whose gaps are
  whole multiples of one step (a slice missing from the export) gets a blank slice at each
  missing position (:mod:`medseg.io.dicom_gaps`);
* pixels get RescaleSlope/Intercept and become float32; colour images become luminance;
  PixelPaddingValue pixels become their frame's lowest other value (background);
* ``frame_times_s`` are the TriggerTimes (ms -> s) at the first position; the heart rate is
  the series' median HeartRate, or 60000 / NominalInterval when the two disagree.

Several series in one folder are merged only when they form one volume (same size,
orientation and spacing, each position from one series: e.g. one series per cine slice). A
folder without DICOM files whose sub-folders hold one study's series (a study exported as one
folder per series) is read as if their images were in it.

The work is shared with the modules beside this one: :mod:`medseg.io.dicom_series` (the series
of a folder, their selection and listing), :mod:`medseg.io.dicom_stack` (images into a (t, z)
grid and the slice step), :mod:`medseg.io.dicom_pixels` (decoding) and
:mod:`medseg.io.dicom_meta` (what ``meta`` records); :mod:`medseg.io.dicom_frames` parses the
headers; :mod:`medseg.io.dicom_single` places an image read without a stack. This module reads a folder or a file into a Volume, and its public names stay importable
from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ..errors import GeometryError, ImageReadError, SeriesNotFoundError
from .dicom_frames import (
    FrameInfo,
    broken_image_error,
    check_pixel_memory,
    frames_from_classic,
    frames_from_enhanced,
    is_broken_image,
    is_enhanced,
    is_image,
    n_frames,
    read_header,
    require_geometry,
)
from .dicom_gaps import fill_missing_slices
from .dicom_meta import HEART_RATE_DISAGREE, _meta, _modality, _num, body_of
from .dicom_pixels import _load_pixels, _pixels
from .dicom_series import (
    STUDY_DEPTH,
    _check_series,
    _folder_headers,
    _listing,
    _quiet,
    dicom_body,
    dicom_study,
    list_dicom_series,
    series_folders_form_a_stack,
    series_matches,
)
from .dicom_single import single_image_geometry
from .dicom_stack import JITTER_MIN_STEP_MM, JITTER_TOL_MM, POSITION_TOL_MM, _arrange, _check_uniform, _magnitude_images, _slice_grid
from .dicom_times import realtime_frame_times
from .geometry import affine_from_dicom
from .us_region import add_region
from .volume import Volume

__all__ = [
    "read_dicom_folder",
    "read_dicom_file",
    "list_dicom_series",
    "series_matches",
    "series_folders_form_a_stack",
    "dicom_body",
    "dicom_study",
    "body_of",
    "STUDY_DEPTH",
    "POSITION_TOL_MM",
    "JITTER_TOL_MM",
    "JITTER_MIN_STEP_MM",
    "HEART_RATE_DISAGREE",
]


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
    try:
        _check_series(frames, folder, headers)
        vol = _build_stack(frames, dict(headers), folder)
    except (ImageReadError, GeometryError) as e:
        unread = _unread_files(folder, headers) if any(s in str(e) for s in INCOMPLETE_SERIES) else []
        if not unread:
            raise
        raise type(e)(f"{e}; {_unread_text(unread)}") from None
    if vol.meta.get("missing_slices") and (unread := _unread_files(folder, headers)):  # the lost image: a broken copy?
        vol.meta["geometry_note"] += f"; {_unread_text(unread)}"
    return vol


def _unread_text(unread: list[Path]) -> str:
    shown = ", ".join(f"{p.name} ({p.stat().st_size:,} bytes)" for p in unread[:3]) + (", ..." if len(unread) > 3 else "")
    return f"{len(unread)} file(s) of the folder were not read as DICOM images: {shown}"


#: what the stacking errors of a series with an image missing say (:func:`read_dicom_folder` then
#: names the folder's files it did not read: an empty or cut-short copy of the missing image)
INCOMPLETE_SERIES = ("the series is incomplete", "a slice may be missing")


def _unread_files(folder: Path, headers: list[tuple[Path, Dataset]]) -> list[Path]:
    """The files directly in ``folder`` (not hidden, not DICOMDIR) that gave no image header."""
    read = {p for p, _ in headers}
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"
                  and p not in read)


@_quiet
def read_dicom_file(path: Path) -> Volume:
    """Read one DICOM file: a single image, an enhanced multi-frame stack/cine, or a legacy
    multi-frame clip (frames = time, e.g. ultrasound)."""
    ds = read_header(path, strict=True)
    if ds is not None and is_broken_image(ds):
        raise broken_image_error(path, ds)
    if ds is None or not is_image(ds):
        raise ImageReadError(f"{path}: DICOM file holds no image ({_sop_class(ds)})" + (
            "; a DICOMDIR is the index of an export: give the folder it lies in (medseg info lists its studies, "
            "medseg batch segments them)" if path.name.upper() == "DICOMDIR" else ""))
    return _read_one(path, ds)


def _sop_class(ds: Dataset | None) -> str:
    """The SOP class a header declares, by name where pydicom knows it (Comprehensive SR Storage)."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = (ds.get("SOPClassUID") if ds is not None else None) or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    if not uid:
        return "no SOP class"
    name = UID(str(uid)).name
    return f"SOP class {name}" if name and name != str(uid) else f"SOP class {uid}"


def _read_one(path: Path, ds: Dataset) -> Volume:
    if is_enhanced(ds):
        return _build_stack(frames_from_enhanced(ds, path), {path: ds}, path)
    info = frames_from_classic(ds, path)
    if n_frames(ds) == 1 and info[0].ipp and info[0].iop and info[0].pixel_spacing:
        vol = _build_stack(info, {path: ds}, path)
        add_region(vol.meta, ds, vol.shape[2:])  # an echo image with a position: its ultrasound region too (us_region)
        return vol
    return _read_unpositioned(path, ds)


def _build_stack(frames: list[FrameInfo], headers: dict[Path, Dataset], source: Path) -> Volume:
    """Sort, group and load ``frames`` into a Volume; ``headers`` maps each path to its header."""
    frames, type_note = _magnitude_images(frames)
    require_geometry(frames)
    _check_uniform(frames)
    grid, time_note = _arrange(frames)
    ref = grid[0][0]
    step, at = _slice_grid(grid)  # at: each slice's index on the grid (a slice missing from the series: a gap, dicom_gaps)
    affine = affine_from_dicom(ref.ipp, ref.iop, ref.pixel_spacing, step)  # type: ignore[arg-type]
    check_pixel_memory(source, headers[ref.path], len(grid) * (int(at[-1]) + 1))  # before any pixel is decoded (blank slices too)
    array = _load_pixels(grid)
    trig = [row[0].trigger_ms for row in grid]
    times = np.asarray(trig, dtype=np.float64) / 1000.0 if all(t is not None for t in trig) and len(trig) > 1 and not time_note else None
    if times is not None and np.any(np.diff(times) <= 0):
        times = None
    if times is None:  # no trigger times: a real-time cine's frame date-times (dicom_times)
        times, time_note = realtime_frame_times(grid, time_note)
    ds0 = headers[ref.path]
    meta = _meta(ds0, source, grid, [headers[p] for p in dict.fromkeys(f.path for row in grid for f in row)])
    if time_note or type_note:
        meta["time_note"] = "; ".join(n for n in (type_note, time_note) if n)
    array, meta = fill_missing_slices(array, meta, at, float(np.linalg.norm(step)))
    return Volume(array=array, affine=affine, frame_times_s=times, modality=_modality(ds0), spacing_known=True, meta=meta)


def _read_unpositioned(path: Path, header: Dataset) -> Volume:
    """A single image or legacy multi-frame clip (frames = time) -> (T, 1, Y, X)."""
    info = frames_from_classic(header, path)[0]
    geometry = single_image_geometry(header, info, n_frames(header))  # where ITK puts it (dicom_single)
    check_pixel_memory(path, header, n_frames(header))  # before the pixels are decoded
    ds, arr = _pixels(path)
    frames = arr if n_frames(ds) > 1 else arr[None]
    array = frames.astype(np.float32, copy=not frames.flags.writeable)  # no second copy of a float32 (luminance, MONOCHROME1) clip
    array *= np.float32(info.slope)
    array += np.float32(info.intercept)
    n = array.shape[0]
    meta = _meta(ds, path, [[info]])
    meta.update(source_ndim=3 if n > 1 or geometry.placed else 2, positioned=False, **({"placed_without_spacing": True} if geometry.placed else {}), files=[[str(path)]] * n, frame_numbers=[[i] for i in range(n)] if n > 1 else [[None]])
    add_region(meta, ds, array.shape[1:])  # where the 2-D image lies on the screen: zero-click looks only there (us_region)
    if geometry.note:
        meta["geometry_note"] = geometry.note
    return Volume(array=array[:, None], affine=geometry.affine, frame_times_s=_clip_times(ds, n),
                  modality=_modality(ds), spacing_known=geometry.spacing_known, meta=meta)


def _clip_times(ds: Dataset, n: int) -> np.ndarray | None:
    if n < 2:
        return None
    vec = ds.get("FrameTimeVector")
    if vec is not None and len(vec) == n:
        times = np.cumsum(np.asarray(vec, dtype=np.float64)) / 1000.0
        return times if np.all(np.isfinite(times)) else None  # a nan or inf interval: no times, as without the tag
    ft = _num(ds.get("FrameTime"))
    return np.arange(n, dtype=np.float64) * ft / 1000.0 if ft and np.isfinite(ft) and ft > 0 else None

"""Path dispatch for reading images and label files.

This module is light: each format's library (pydicom, nibabel, SimpleITK, Pillow, imageio)
is imported only when a file of that format is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import ImageReadError, LabelMapError, MedsegError
from .volume import Volume

#: file name ending -> reader kind (longest ending wins; files without a known ending are
#: read as DICOM when they carry the 'DICM' marker).
EXTENSIONS: dict[str, str] = {
    ".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom",
    ".nii": "nifti", ".nii.gz": "nifti",
    ".mha": "itk", ".mhd": "itk", ".nrrd": "itk", ".nhdr": "itk", ".seg.nrrd": "itk",  # .seg.nrrd: 3D Slicer's labels (C_gt.seg.nrrd: case C_gt)
    ".png": "raster", ".jpg": "raster", ".jpeg": "raster", ".bmp": "raster", ".tif": "raster", ".tiff": "raster",
    ".avi": "video", ".mp4": "video",
    ".zip": "archive",  # read as the DICOM folder or the one image file it holds (medseg.io.archive)
}

SUPPORTED_TEXT = "a DICOM folder or file, " + ", ".join(EXTENSIONS)


#: what ``--modality`` may say
MODALITIES = ("CT", "MR", "US", "OT")


def read_volume(path: str | os.PathLike[str], series: str | None = None, modality: str | None = None) -> Volume:
    """Read an image into a :class:`Volume` with array (T, Z, Y, X) and a RAS affine.

    ``path`` is a DICOM series folder, a DICOM file (single-frame, multi-frame or enhanced
    multi-frame), NIfTI (.nii/.nii.gz, 2-4-D, 4th axis = time), MHA/MHD/NRRD, a 2-D
    PNG/JPEG/BMP/TIFF (grayscale; RGB -> luminance; spacing unknown) or an AVI/MP4 echo clip
    ((T, 1, Y, X), modality "US", spacing unknown), or a ``.zip`` holding a DICOM folder or one
    such file (:mod:`medseg.io.archive`). See docs/io.md. ``series`` picks one series
    of a DICOM folder (or zip) that holds several (SeriesNumber, SeriesInstanceUID or a part of / glob
    pattern for SeriesDescription: :func:`medseg.io.dicom.series_matches`). ``modality``
    (``--modality``: CT, MR, US or OT) overrides the file's; a NIfTI / MHA / NRRD, which do not
    record one, is taken for CT when its intensities are Hounsfield units
    (:func:`in_hounsfield_units`; ``meta["modality_from"]`` says so).

    Raises:
        ImageReadError: missing, empty, corrupt, unsupported or non-finite input.
        GeometryError: missing/zero spacing or geometry that cannot form one grid.
    """
    p = _as_path(path)
    if series is not None and str(series).strip():
        if _kind_of_name(p) == "archive" and p.is_file():
            from .archive import read_archive

            vol = _call(lambda q: read_archive(q, lambda f: _read_series(f, str(series), q)), p)
        else:
            vol = _read_series(p, str(series), p)
    else:
        vol = _read(p, labels=False)
    _check_finite(vol.array, p)
    if modality:
        return vol.with_array(vol.array, modality=check_modality(modality), meta={**vol.meta, "modality_from": "--modality"})
    if vol.modality == "OT" and vol.meta.get("format") in ("nifti", "itk") and in_hounsfield_units(vol.array):
        # NIfTI / MHA / NRRD do not record the modality; a CT read as "OT" would get the MR
        # intensity normalisation and segment far worse (docs/io.md)
        vol = vol.with_array(vol.array, modality="CT", meta={**vol.meta, "modality_from": FROM_INTENSITIES})
    return vol


#: ``meta["modality_from"]`` of an image taken for CT by its intensities (a guess ``segment`` says)
FROM_INTENSITIES = "intensities (Hounsfield units)"


#: how every refusal of ``--series`` for an input without DICOM series starts (a file, a zip of one, a folder of image files)
SERIES_DICOM_ONLY = "--series picks a series of a DICOM folder (or a zip of one)"


def _read_series(p: Path, series: str, given: Path) -> Volume:
    if not p.is_dir():
        raise ImageReadError(f"{SERIES_DICOM_ONLY}; {given} " + ("holds one image file" if given != p else "is not a folder"))
    from .dicom import read_dicom_folder
    from .dicom_series import NoDicomImagesError

    try:
        return _call(lambda q: read_dicom_folder(q, series=series), p)
    except NoDicomImagesError as e:  # a folder holding a NIfTI or a PNG: refused in the words a zip of one gets
        if not e.images:
            raise
        n = len(e.images)
        names = ", ".join(e.images[:3]) + (", ..." if n > 3 else "")
        raise ImageReadError(f"{SERIES_DICOM_ONLY}; {given} holds {'one image file' if n == 1 else f'{n} image files'} "
                             f"({names}), no DICOM images") from None


def check_modality(text: str) -> str:
    """``--modality`` in upper case; a one-line :class:`ImageReadError` for one medseg does not know."""
    if text.upper() not in MODALITIES:
        raise ImageReadError(f"--modality must be one of {', '.join(MODALITIES)}, got {text!r}")
    return text.upper()


def modality_facts(vol: Volume) -> dict[str, str]:
    """The provenance of the modality an image was segmented as: ``modality`` and, when it
    was not the file's, ``modality_from`` (``--modality`` or the intensities)."""
    return {"modality": vol.modality, **({"modality_from": vol.meta["modality_from"]} if vol.meta.get("modality_from") else {})}


def in_hounsfield_units(array: np.ndarray) -> bool:
    """Whether an image whose file does not say its modality holds CT Hounsfield units: air or
    lung (at least 1 % of the voxels at -500 HU or below: every cardiac field of view holds
    lung, or air or padding outside the body), at least 5 % of the voxels negative, and contrast
    blood or bone well above zero (99th percentile 150-4000). MR magnitude images have no
    negative values, normalised MR no values that high, ultrasound neither; an MR stored with a
    negative offset (scl_inter -100, a 12-bit range shifted by -200) has no air at -500 and
    stays MR (it was segmented as CT: myocardium lost)."""
    a = np.asarray(array).reshape(-1)
    if a.size > 2_000_000:
        a = a[:: int(np.ceil(a.size / 2_000_000))]
    a = a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a
    if a.size == 0 or float(a.min()) >= 0:
        return False
    p1, p99 = np.percentile(a, (1.0, 99.0))
    return bool(np.mean(a < 0) >= 0.05 and p1 <= -500.0 and 150.0 <= p99 <= 4000.0)


def read_label_volume(path: str | os.PathLike[str]) -> Volume:
    """Read a label file into a :class:`Volume` whose (T, Z, Y, X) array has an integer dtype.

    Integer files keep their dtype; float files whose values are all whole numbers become
    uint8/uint16/int32 (the smallest that fits). Palette PNGs give their palette indices.
    ``spacing_known`` is False when the file's medseg sidecar says its image had no physical
    spacing (labels of a PNG or a video written as NIfTI: 1 mm pixels nobody measured); the
    sidecar's heart rate / RR interval of the image (``cardiac_timing``) go into ``meta``, and
    its ``frame_times_s`` (the image's, e.g. a DICOM cine's trigger times) become the Volume's
    when there is one per frame of the labels. A DICOM SEG and a 3D Slicer segmentation (``.seg.nrrd``) name their segments in
    ``meta["label_map"]``.

    Raises:
        LabelMapError: non-integer, non-finite or negative values, or a colour label image
            (the message names the file).
    """
    p = _as_path(path)
    vol = _read(p, labels=True)
    from .writers import CARDIAC_TIMING, read_sidecar

    prov = (read_sidecar(p) or {}).get("provenance") or {}
    if vol.spacing_known and prov.get("spacing_known") is False:
        vol = vol.with_array(vol.array, spacing_known=False)
    timing = prov.get("cardiac_timing") if isinstance(prov.get("cardiac_timing"), dict) else {}
    extra = {k: float(v) for k in CARDIAC_TIMING if not (vol.meta or {}).get(k) and isinstance(v := timing.get(k), (int, float)) and v > 0}
    if extra:
        vol = vol.with_array(vol.array, meta={**(vol.meta or {}), **extra})
    # the image's frame times (a DICOM cine's trigger times) when the sidecar has one finite number
    # per frame: they win over a NIfTI's pixdim[4], which is only their mean step, counted from 0
    times = prov.get("frame_times_s")
    if (vol.n_frames > 1 and isinstance(times, list) and len(times) == vol.n_frames
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times) and np.all(np.isfinite(times))):
        vol = vol.with_array(vol.array, frame_times_s=np.asarray(times, dtype=np.float64))
    arr = vol.array
    if arr.dtype == bool:
        return vol.with_array(arr.astype(np.uint8))
    if not np.issubdtype(arr.dtype, np.integer):
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise LabelMapError(f"{p}: label file has {n_bad} non-finite values (NaN/inf); labels must be integers")
        frac = arr != np.round(arr)
        if np.any(frac):
            raise LabelMapError(
                f"{p}: label file holds non-integer values (e.g. {float(arr[frac].flat[0])!r}); labels must be integers"
            )
    lo, hi = (float(arr.min()), float(arr.max()))
    if lo < 0:
        raise LabelMapError(f"{p}: label file holds negative values (min {lo:g}); labels must be >= 0")
    if not np.issubdtype(arr.dtype, np.integer):
        if hi > np.iinfo(np.int32).max:  # a cast would overflow (a numpy warning, and a wrong label)
            raise LabelMapError(f"{p}: label file holds values too large for labels (max {hi:g}); labels must be below 2^31")
        dtype = np.uint8 if hi < 256 else (np.uint16 if hi < 65536 else np.int32)
        return vol.with_array(arr.astype(dtype))
    return vol


def _as_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or an :class:`ImageReadError` naming what was given (an array, a Volume or
    None gave a TypeError from pathlib)."""
    if isinstance(path, (str, os.PathLike)):
        return Path(path).expanduser()
    got = f"a numpy array of shape {path.shape}" if isinstance(path, np.ndarray) else type(path).__name__
    hint = {np.ndarray: "; an array in memory needs no reading: medseg.io.Volume(array (T, Z, Y, X), affine) wraps it",
            Volume: "; a Volume is read already"}.get(type(path), "")
    raise ImageReadError(f"path must be a file or folder name (str or os.PathLike), got {got}{hint}")


def _read(p: Path, labels: bool) -> Volume:
    if not p.exists():
        raise ImageReadError(f"no such file or folder: {p}")
    if p.is_dir():
        from .dicom import read_dicom_folder

        return _call(read_dicom_folder, p)
    if p.stat().st_size == 0:
        raise ImageReadError(f"file is empty (0 bytes): {p}")
    kind = _kind(p)
    if kind == "archive":
        from .archive import read_archive

        return _call(lambda q: read_archive(q, lambda f: _read(f, labels)), p)
    if kind == "raster":
        from .png import read_raster

        return _call(lambda q: read_raster(q, labels=labels), p)
    if kind == "dicom" and labels:
        from .seg_reader import is_dicom_seg, read_dicom_seg

        if is_dicom_seg(p):
            return _call(read_dicom_seg, p)
    if kind == "itk" and labels:
        from .slicer_seg import is_slicer_seg, read_slicer_seg

        if is_slicer_seg(p):  # a 3D Slicer segmentation: its layers as one label array, its segments named
            return _call(read_slicer_seg, p)
    return _call(_reader(kind), p)


def _reader(kind: str) -> Callable[[Path], Volume]:
    if kind == "dicom":
        from .dicom import read_dicom_file

        return read_dicom_file
    if kind == "nifti":
        from .nifti import read_nifti

        return read_nifti
    if kind == "itk":
        from .itk import read_itk

        return read_itk
    from .video import read_video

    return read_video


def _kind_of_name(p: Path) -> str | None:
    name = p.name.lower()
    return next((EXTENSIONS[ext] for ext in sorted(EXTENSIONS, key=len, reverse=True) if name.endswith(ext)), None)


def _kind(p: Path) -> str:
    name = p.name.lower()
    if (kind := _kind_of_name(p)) is not None:
        return kind
    if has_dicm_marker(p):
        return "dicom"
    if name.endswith(".json"):  # a COCO annotation file given as reference labels
        raise ImageReadError(f"{p}: a JSON file is no image or label file (COCO polygons: examples/annotation_references.py "
                             f"writes them as label images); supported: {SUPPORTED_TEXT}")
    raise ImageReadError(f"unsupported file type {p.suffix or '(no extension)'!r}: {p}; supported: {SUPPORTED_TEXT}")


def has_dicm_marker(p: Path) -> bool:
    """True when a file carries the DICOM preamble's ``DICM`` marker, or is DICOM without the
    Part-10 preamble (:func:`is_bare_dicom`: old exports and research archives)."""
    try:
        if not p.is_file():  # a FIFO or a device would block the read
            return False
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return (len(head) == 132 and head[128:] == b"DICM") or is_bare_dicom(head)


#: groups a DICOM data set without a preamble starts with: file meta (0002), identification (0008)
BARE_GROUPS = (0x0002, 0x0008)


def is_bare_dicom(head: bytes) -> bool:
    """Whether the first bytes of a file are a DICOM data set written without the 128-byte
    preamble and ``DICM`` marker (little endian): a group 0002 or 0008 element, with an explicit
    VR of two capital letters or an implicit length that fits the element."""
    if len(head) < 8 or int.from_bytes(head[0:2], "little") not in BARE_GROUPS:
        return False
    if head[4:6].isalpha() and head[4:6].isupper():  # explicit VR
        return True
    return int.from_bytes(head[4:8], "little") < 1024  # implicit VR: a short value (a UID, a code string)


def _call(reader: Callable[[Path], Volume], p: Path) -> Volume:
    """Run ``reader``; errors raised while building the Volume get the path prepended."""
    try:
        return reader(p)
    except MedsegError as e:
        msg = str(e)
        if str(p) in msg:
            raise
        raise type(e)(f"{p}: {msg}") from None


def _check_finite(array: np.ndarray, p: Path | str, what: str = "the file") -> None:
    """Reject images with NaN/inf voxels (all of them, or some: never replaced silently), and
    float64 values beyond float32's range (they would become inf when medseg casts them).
    ``p`` starts the message, ``what`` names what to fix (a library caller's array)."""
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return
    n_finite = int(np.count_nonzero(np.isfinite(array)))
    if n_finite == 0:
        raise ImageReadError(f"{p}: image contains no finite values (all {array.size} voxels are NaN/inf)")
    if n_finite < array.size:
        raise ImageReadError(
            f"{p}: image contains {array.size - n_finite} non-finite voxels (NaN/inf) out of {array.size}; "
            f"medseg does not replace them silently: fix or mask {what} first"
        )
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:  # float64: finite values float32 (what medseg computes in) cannot hold would become inf
        big = float(np.finfo(np.float32).max)
        if float(array.max()) > big or float(array.min()) < -big:
            beyond = np.abs(array) > big
            raise ImageReadError(
                f"{p}: image contains {int(np.count_nonzero(beyond))} voxels beyond float32's range (|value| > {big:.3g}, e.g. "
                f"{float(array[beyond].flat[0]):.3g}) out of {array.size}; medseg computes in float32 and does not clip them "
                f"silently: fix or rescale {what} first"
            )

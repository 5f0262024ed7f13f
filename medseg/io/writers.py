"""Writing label arrays in the exact grid of the image they were made on.

Formats by file ending: ``.nii``/``.nii.gz`` (nibabel), ``.mha``/``.nrrd`` (SimpleITK, LPS),
``.png`` (one 2-D slice), ``.dcm`` (DICOM SEG, see :mod:`medseg.io.seg_writer`). Every label
file gets a sidecar ``<stem>.json`` with ``{"label_map": {...}, "provenance": {...}}``. All
files are written atomically (temporary name + rename); inputs are validated before anything
is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._files import _jsonable, write_json_atomic
from ..errors import GeometryError, ImageWriteError, LabelMapError
from ..labels import LabelMap
from .volume import Volume

#: output ending -> writer kind
OUTPUT_FORMATS: dict[str, str] = {
    ".nii.gz": "nifti", ".nii": "nifti", ".mha": "itk", ".nrrd": "itk", ".png": "png", ".dcm": "dicom-seg",
}


def output_kind(path: str | os.PathLike) -> str:
    """The writer kind for ``path`` ('nifti', 'itk', 'png', 'dicom-seg'); raises for others."""
    name = Path(path).name.lower()
    for ext in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return OUTPUT_FORMATS[ext]
    raise ImageWriteError(f"cannot write labels to {Path(path).name!r}: supported endings are {', '.join(OUTPUT_FORMATS)}")


def check_output(path: str | os.PathLike, like: Volume) -> str:
    """The writer kind for labels of ``like`` written to ``path``, after every check that needs
    only the image (the ending; DICOM SEG: a positioned DICOM source; PNG: one 2-D slice), so
    a command can refuse an output it cannot write before it segments anything."""
    kind = output_kind(path)
    if kind == "dicom-seg":
        from .seg_writer import check_dicom_source

        check_dicom_source(like)
    elif kind == "png" and like.n_frames * like.n_slices != 1:
        raise ImageWriteError(
            f"{Path(path).name}: PNG holds one 2-D slice, this image has {like.n_frames} frame(s) x {like.n_slices} slice(s); "
            "write .nii.gz instead"
        )
    return kind


def sidecar_path(path: str | os.PathLike) -> Path:
    """``labels.nii.gz`` -> ``labels.json`` (the label-map/provenance sidecar)."""
    p = Path(path)
    name = p.name
    for ext in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    return p.with_name(p.stem + ".json")


def validate_labels(labels: np.ndarray, like: Volume, label_map: LabelMap) -> np.ndarray:
    """Check a label array against the image grid and the label map; return it as uint8/uint16.

    Args:
        labels: (Z, Y, X) or (T, Z, Y, X) integer (or bool) array; T is 1 or ``like.n_frames``.
            A (Y, X) array is accepted for single-slice images (Z = 1) and returned as (1, Y, X).
        like: the image the labels were made on.
        label_map: the values allowed besides 0 (background).
    """
    a = np.asarray(labels)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        raise LabelMapError(f"labels must be an integer array, got dtype {a.dtype}")
    if a.ndim == 2 and like.n_slices == 1:
        a = a[None]
    ok = (a.ndim == 3 and a.shape == like.grid_shape) or (
        a.ndim == 4 and a.shape[1:] == like.grid_shape and a.shape[0] in (1, like.n_frames)
    )
    if not ok:
        raise GeometryError(
            f"labels shape {a.shape} does not fit the image (T,Z,Y,X) {like.shape}: "
            f"expected (Z,Y,X) {like.grid_shape} or (T,Z,Y,X) with T = 1 or {like.n_frames}"
        )
    values = np.unique(a)
    if values.size and values[0] < 0:
        raise LabelMapError(f"labels hold negative values (min {int(values[0])})")
    unknown = sorted(set(int(v) for v in values) - {0} - set(label_map.values.values()))
    if unknown:
        raise LabelMapError(f"label values {unknown} are not in the label map ({label_map.to_string()})")
    return a.astype(np.uint8 if a.max(initial=0) < 256 else np.uint16)


def write_labels(
    labels: np.ndarray,
    like: Volume,
    path: str | os.PathLike,
    label_map: LabelMap | str | Mapping[str, int],
    provenance: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``labels`` in exactly ``like``'s grid, plus the sidecar JSON.

    Args:
        labels: (Z, Y, X) or (T, Z, Y, X) integer array on ``like``'s grid (T = 1 or all frames);
            (Y, X) for a single-slice image.
        like: the image (its affine, and for NIfTI inputs its header, are reused).
        path: output file; the ending picks the format (.nii.gz, .nii, .mha, .nrrd, .png, .dcm).
        label_map: structure -> value of ``labels`` (a LabelMap, "lv=1,myo=2" or a mapping).
        provenance: JSON-able facts stored in the sidecar under "provenance".

    Returns:
        [label file, sidecar JSON].

    A NIfTI written for a 3-D input is 3-D, for a 4-D input 4-D (3-D for one frame), for a 2-D
    input 2-D; a NIfTI input's header geometry (sform/qform and codes) is reused verbatim, other
    inputs get ``like.affine``. MHA/NRRD carry the LPS geometry. ``.dcm`` writes a DICOM SEG
    (one phase per SEG: for cine labels one file per labelled frame, ``<stem>_frameNN.dcm``,
    each with its sidecar; the returned list then holds all of them).
    """
    out = Path(path)
    kind = output_kind(out)
    lm = LabelMap.parse(label_map)
    arr = validate_labels(labels, like, lm)
    sidecar_obj = {"label_map": lm.to_dict(), "provenance": dict(provenance or {})}
    try:
        json.dumps(_jsonable(sidecar_obj), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ImageWriteError(f"provenance cannot be written as JSON: {e}") from None
    if kind == "dicom-seg" and arr.ndim == 4 and arr.shape[0] > 1:
        return _write_seg_per_frame(arr, like, out, lm, sidecar_obj)
    if kind == "dicom-seg":
        from .seg_writer import write_dicom_seg

        written = write_dicom_seg(arr, like, out, lm)
    elif kind == "nifti":
        from .nifti import write_nifti_labels

        written = write_nifti_labels(arr, like, out)
    elif kind == "itk":
        from .itk import write_itk_labels

        written = write_itk_labels(arr, like, out)
    else:
        from .png import write_png_labels

        written = write_png_labels(arr, like, out)
    sidecar = sidecar_path(out)
    try:
        write_json_atomic(sidecar, sidecar_obj)
    except BaseException:
        written.unlink(missing_ok=True)  # never leave a label file without its label map
        raise
    return [written, sidecar]


def _write_seg_per_frame(arr: np.ndarray, like: Volume, out: Path, lm: LabelMap, sidecar_obj: dict[str, Any]) -> list[Path]:
    """One DICOM SEG (+ sidecar) per labelled frame of (T, Z, Y, X) cine labels."""
    from .seg_writer import write_dicom_seg

    frames = [t for t in range(arr.shape[0]) if arr[t].any()] or [0]
    written: list[Path] = []
    try:
        for t in frames:
            target = out.with_name(f"{out.name[:-4]}_frame{t:02d}.dcm")
            seg = write_dicom_seg(arr[t], like, target, lm, frame=t)
            written.append(seg)
            obj = {**sidecar_obj, "provenance": {**sidecar_obj["provenance"], "frame": t}}
            written.append(write_json_atomic(sidecar_path(seg), obj))
    except BaseException:
        for path in written:  # all frames or none: never a cine with some phases missing
            path.unlink(missing_ok=True)
        raise
    return written

"""Writing label arrays in the exact grid of the image they were made on.

Formats by file ending: ``.nii``/``.nii.gz`` (nibabel), ``.mha``/``.nrrd`` (SimpleITK, LPS),
``.seg.nrrd`` (3D Slicer segmentation, see :mod:`medseg.io.slicer_seg`), ``.png`` (one 2-D
slice), ``.dcm`` (DICOM SEG, see :mod:`medseg.io.seg_writer`). Every label file gets a sidecar
``<stem>.json`` (``seg.seg.nrrd`` -> ``seg.json``) with ``{"label_map": {...}, "provenance": {...}}``. All
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

from .._files import _jsonable, atomic_path, write_json_atomic
from ..errors import GeometryError, ImageWriteError, LabelMapError, MedsegError
from ..labels import LabelMap
from .geometry import pixel_axes_angle
from .volume import Volume, require_volume

#: output ending -> writer kind
OUTPUT_FORMATS: dict[str, str] = {
    ".nii.gz": "nifti", ".nii": "nifti", ".mha": "itk", ".nrrd": "itk", ".seg.nrrd": "slicer-seg", ".png": "png", ".dcm": "dicom-seg",
}

#: Volume.meta keys of a DICOM image's heart rate (beats/min) and RR interval (ms) that a label
#: file's sidecar keeps (``provenance.cardiac_timing``) and :func:`read_label_volume` gives back.
CARDIAC_TIMING = ("heart_rate", "nominal_interval")

#: Volume.meta notes on how the image was read (which voxel size, frame order and images, heart
#: rate were taken; an echo screen's ultrasound region clipped, ignored or one of several) that a
#: label file's sidecar keeps (``provenance.image_notes``), for whoever reads the labels later
#: (``medseg measure`` puts them in its report's inputs)
IMAGE_NOTES = ("geometry_note", "time_note", "cardiac_timing_note", "frame_of_reference_note", "us_region_note")


def output_kind(path: str | os.PathLike) -> str:
    """The writer kind for ``path`` ('nifti', 'itk', 'slicer-seg', 'png', 'dicom-seg'); raises for others."""
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
    if kind == "dicom-seg" and like.n_frames > 1:  # a cine: one SEG + sidecar per labelled frame
        for t in range(like.n_frames):
            check_sidecar_free(seg_frame_path(path, t))
    else:
        check_sidecar_free(path)
    check_format(path, like, kind)
    return kind


def check_format(path: str | os.PathLike, like: Volume, kind: str) -> None:
    """Refuse labels of ``like`` that format ``kind`` cannot hold (see :func:`check_output`),
    whatever the sidecar beside ``path`` holds (:func:`write_labels` checks that itself)."""
    if kind == "dicom-seg":
        from .seg_writer import check_dicom_source

        check_dicom_source(like)
        return
    if kind in ("itk", "slicer-seg"):
        check_grid(path, like, kind)
    if kind == "itk" and Path(path).name.lower().endswith(".nrrd") and like.n_frames > 1:
        raise ImageWriteError(
            f"{Path(path).name}: a 4-D NRRD (SimpleITK's) has no anatomical space, so other tools would not place a cine's "
            f"labels ({like.n_frames} frames): write .nii.gz (4-D) or .mha"
        )
    if kind == "slicer-seg" and like.n_frames > 1:
        raise ImageWriteError(
            f"{Path(path).name}: a 3D Slicer segmentation (.seg.nrrd) is 3-D, this image is a cine of {like.n_frames} frames: "
            "write one frame's labels, or .nii.gz (4-D)"
        )
    if kind == "png" and like.n_frames * like.n_slices != 1:
        raise ImageWriteError(
            f"{Path(path).name}: PNG holds one 2-D slice, this image has {like.n_frames} frame(s) x {like.n_slices} slice(s); "
            "write .nii.gz instead"
        )
    if kind == "png":
        check_grid(path, like, kind)


def check_grid(path: str | os.PathLike, like: Volume, kind: str) -> None:
    """Refuse labels of ``like`` whose grid format ``kind`` cannot hold where other tools place
    the image, whichever frames the labels hold (:func:`write_labels` always checks this):
    .mha / .nrrd / .seg.nrrd for parallelogram pixels or a NIfTI that ITK-based tools place
    elsewhere (:func:`medseg.io.nifti_itk.itk_misplacement`), .png for a known pixel spacing."""
    name = Path(path).name
    if kind in ("itk", "slicer-seg") and (angle := pixel_axes_angle(like.affine)) is not None:
        raise ImageWriteError(
            f"{name}: the image's row and column axes are {angle:.2f} degrees apart (a NIfTI sform that makes pixels "
            "parallelograms): .mha / .nrrd hold only right angles and medseg would refuse the file it wrote; write .nii.gz"
        )
    if kind in ("itk", "slicer-seg") and like.meta.get("format") == "nifti":
        from .nifti_itk import itk_misplacement

        if (where := itk_misplacement(like)) is not None:
            raise ImageWriteError(
                f"{name}: ITK-based tools (SimpleITK, 3D Slicer, ITK-SNAP) place this NIfTI image {where} from where medseg does "
                "(its qform, or a negative pixdim: see its geometry note), and .mha / .nrrd labels would lie off it there; write .nii.gz"
            )
    if kind == "png" and like.spacing_known:
        sp = like.spacing
        raise ImageWriteError(
            f"{name}: a PNG records no pixel spacing and this image's is known ({sp[1]:.4g} x {sp[2]:.4g} mm), "
            "which measurements of the labels would lose: write .nii.gz (or .mha, .nrrd)"
        )


def seg_frame_path(path: str | os.PathLike, frame: int) -> Path:
    """``seg.dcm`` -> ``seg_frameNN.dcm``: frame ``frame``'s DICOM SEG of cine labels."""
    out = Path(path)
    return out.with_name(f"{out.name[:-4]}_frame{frame:02d}.dcm")


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``labels.nii.gz`` -> ``labels.json`` (the label-map/provenance sidecar). ``.`` (or an empty
    path) is the current folder by its own name, as written out; the root folder has no sidecar."""
    p = Path(path)
    if not p.name:  # `-o .`, `measure ""`: Path.with_name raised "PosixPath('.') has an empty name"
        p = Path(os.path.abspath(p))
        if not p.name:
            raise ImageWriteError(f"{path} is a folder, not a file: give a file name")
    name = p.name
    for ext in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    return p.with_name(p.stem + ".json")


def _sidecar_json(labels_path: str | os.PathLike) -> tuple[Any, str | None]:
    """The parsed sidecar JSON beside a label file (None when there is none), and why it could
    not be read (None when it could, or there is none; see :func:`sidecar_problem`): read as
    every JSON file medseg reads back (:func:`medseg._json_files.json_file_problem`: a
    byte-order mark as Windows Notepad saves one is fine; a folder of the sidecar's name, an
    empty or truncated file are not). NaN and Infinity are read, as ``json.loads`` reads them:
    medseg writes none, but a script that added a field with Python's ``json.dump`` may have
    (a NaN label value is still refused by the label map's own check)."""
    from .._json_files import json_file_problem

    side = sidecar_path(labels_path)
    if side == Path(labels_path) or not (side.is_file() or side.is_dir()):
        return None, None
    return json_file_problem(side, expect=None, allow_nan=True)  # a list, a string, null: not medseg's (read_sidecar: None)


def read_sidecar(labels_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The medseg sidecar JSON of a label file (``seg.nii.gz`` -> ``seg.json``), or None when
    there is none, it is not medseg's (no ``label_map`` object) or it cannot be read (see
    :func:`sidecar_problem`: callers that rely on its label map refuse that)."""
    obj, _ = _sidecar_json(labels_path)
    return obj if isinstance(obj, dict) and isinstance(obj.get("label_map"), dict) else None


def sidecar_problem(labels_path: str | os.PathLike) -> str | None:
    """Why the sidecar JSON beside a label file cannot give the labels' label map: it is not
    valid JSON (a truncated or empty file), cannot be read (a folder of its name), or is a JSON
    object whose ``label_map`` is no valid label map (``{"lv": -1}``); None when there is none,
    it is fine, or it is not medseg's (a JSON object without ``label_map``, such as dcm2niix's
    BIDS sidecar of an image, or no JSON object: a list, null). The
    reason follows the sidecar's name: ``"is not valid JSON (Expecting ',' delimiter at line 3,
    column 5)"``."""
    obj, problem = _sidecar_json(labels_path)
    if problem is not None or not isinstance(obj, dict) or "label_map" not in obj:
        return problem
    try:
        if not isinstance(obj["label_map"], dict):
            raise LabelMapError(f"label_map is {'null' if obj['label_map'] is None else type(obj['label_map']).__name__}, "
                                "not an object like {\"lv\": 1}")
        LabelMap.parse(obj["label_map"])
    except (MedsegError, TypeError, ValueError) as e:
        return f"has an invalid label map ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return None


def is_medseg_labels(path: str | os.PathLike[str]) -> bool:
    """A label file medseg wrote: its sidecar JSON names it (or, from before sidecars named
    their files, is a medseg sidecar with provenance)."""
    side = read_sidecar(path)
    if side is None:
        return False
    owners = side.get("labels")
    return Path(path).name in owners if isinstance(owners, list) else "provenance" in side


def own_label_map(labels_path: str | os.PathLike, strict: bool = True, flag: str = "--label-map") -> tuple[Any, Path] | None:
    """The label map a label file names itself, and where from: a DICOM SEG's segments (its
    sidecar's values are those of the labels before they became a SEG), else a 3D Slicer
    segmentation's segments (``.seg.nrrd``: medseg's agree with its sidecar; one edited in
    Slicer says what it holds now), else its medseg sidecar JSON; None when it names none.

    A sidecar beside the labels that is not valid JSON, or whose label map is invalid
    (:func:`sidecar_problem`), raises LabelMapError naming it and ``flag``, the option that
    would give the map instead (``strict``, for callers that rely on it: no ``--label-map``
    given), else counts as none."""
    from .seg_reader import seg_label_map
    from .slicer_seg import slicer_label_map

    p = Path(labels_path)
    seg_map = seg_label_map(p) if p.is_file() else None
    if seg_map is None:
        seg_map = slicer_label_map(p)
    if seg_map is not None:
        return LabelMap.parse(seg_map), p
    problem = sidecar_problem(p)
    if problem is not None:
        if strict:
            raise LabelMapError(f"{sidecar_path(p)} beside the labels {problem}: give {flag} or repair/remove it")
        return None
    obj = read_sidecar(p)
    return (LabelMap.parse(obj["label_map"]), sidecar_path(p)) if obj else None


def check_sidecar_free(path: str | os.PathLike, sidecar_obj: dict[str, Any] | None = None) -> list[str]:
    """The label files ``path``'s sidecar JSON will list: ``path`` and, when the sidecar already
    describes other label files still there (``seg.nii.gz`` and ``seg.dcm`` share ``seg.json``)
    with the same label map and provenance as ``sidecar_obj`` (one segmentation in two formats),
    those too. ImageWriteError when it describes another segmentation's files, or when
    ``sidecar_obj`` is None (a check before segmenting: the provenance will differ): writing
    would replace their label map and provenance. A sidecar of ``path`` alone (a re-run) may
    be replaced."""
    out = Path(path)
    old = read_sidecar(out)
    if old is None:  # none, or not a medseg sidecar
        return [out.name]
    owners = old.get("labels")  # absent in sidecars from before they named their labels
    owners = [owners] if isinstance(owners, str) else owners if isinstance(owners, list) else []
    others = [o for o in owners if isinstance(o, str) and o != out.name and (out.parent / o).exists()]
    if not others:
        return [out.name]
    same = sidecar_obj is not None and all(old.get(k) == json.loads(json.dumps(_jsonable(sidecar_obj[k]))) for k in ("label_map", "provenance"))
    if not same:
        raise ImageWriteError(f"{sidecar_path(out)} is the sidecar of {out.parent / others[0]} (same name, other ending), another segmentation; "
                              f"write {out.name} under another name, or remove {others[0]} first")
    return [*others, out.name]


def validate_labels(labels: np.ndarray, like: Volume, label_map: LabelMap) -> np.ndarray:
    """Check a label array against the image grid and the label map; return it as uint8/uint16.

    Args:
        labels: (Z, Y, X) or (T, Z, Y, X) integer (or bool) array; T is 1 or ``like.n_frames``.
            A (Y, X) array is accepted for single-slice images (Z = 1) and returned as (1, Y, X).
            A label :class:`Volume` (``read_label_volume``) on ``like``'s grid gives its array.
        like: the image the labels were made on (a :class:`Volume`; anything else is a MedsegError).
        label_map: the values allowed besides 0 (background).
    """
    like = require_volume(like, "like (the image the labels were made on)")
    if isinstance(labels, Volume):  # a label Volume (read_label_volume): on like's grid, then its array
        from .geometry import check_same_grid

        check_same_grid(like, labels, "labels")
        labels = labels.array
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
    path: str | os.PathLike[str],
    label_map: LabelMap | str | Mapping[str, int],
    provenance: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``labels`` in exactly ``like``'s grid, plus the sidecar JSON.

    Args:
        labels: (Z, Y, X) or (T, Z, Y, X) integer array on ``like``'s grid (T = 1 or all frames);
            (Y, X) for a single-slice image; or a label Volume on that grid. Values: 0 background,
            else a value of ``label_map``.
        like: the image (its affine, and for NIfTI inputs its header, are reused).
        path: output file; the ending picks the format (.nii.gz, .nii, .mha, .nrrd, .seg.nrrd, .png, .dcm).
        label_map: structure -> value of ``labels`` (a LabelMap, "lv=1,myo=2" or a mapping).
        provenance: JSON-able facts stored in the sidecar under "provenance"; the image's
            ``spacing_known``, heart rate (``cardiac_timing``), DICOM scanner (``scanner``), frame times and notes on how it
            was read (``image_notes``: :data:`IMAGE_NOTES`) are added.

    Returns:
        [label file, sidecar JSON].

    A NIfTI written for a 3-D input is 3-D, for a 4-D input 4-D (3-D for one frame), for a 2-D
    input 2-D; a NIfTI input's header geometry (sform/qform and codes) is reused verbatim, other
    inputs get ``like.affine``. MHA/NRRD carry the LPS geometry; ``.seg.nrrd`` is a NRRD whose
    header names a 3D Slicer segment per structure (3-D only). ``.dcm`` writes a DICOM SEG
    (one phase per SEG: for cine labels one file per labelled frame, ``<stem>_frameNN.dcm``,
    each with its sidecar; the returned list then holds all of them).
    """
    out = Path(path)
    kind = output_kind(out)
    lm = LabelMap.parse(label_map)
    if provenance is not None and not isinstance(provenance, Mapping):
        raise ImageWriteError(f"provenance must be a dict (e.g. SegmentResult.provenance, Session.provenance()) or None, "
                              f"got {type(provenance).__name__}")
    arr = validate_labels(labels, like, lm)
    if kind in ("itk", "slicer-seg") and arr.ndim == 4 and arr.shape[0] > 1:
        # a 4-D NRRD or Slicer segmentation is refused; the sidecar is checked below, knowing the provenance
        # (check_output's check before segmenting refused a cine's .mha beside its .nii.gz: "another segmentation")
        check_format(out, like, kind)
    else:  # one frame's labels of a cine may be written where the cine's may not; the grid's checks hold for all
        check_grid(out, like, kind)
    # spacing_known: a NIfTI written for a PNG or a video has 1 mm pixels it never measured;
    # `medseg measure` and `batch --measure` read this to report no millimetre volumes
    # the heart rate the image's DICOM gives (HeartRate, NominalInterval): cardiac output from
    # the labels alone (`medseg measure`, `batch --measure`), which a NIfTI cannot carry
    timing = {k: float(v) for k in CARDIAC_TIMING if isinstance(v := (like.meta or {}).get(k), (int, float)) and v > 0}
    notes = {k: v for k in IMAGE_NOTES if isinstance(v := (like.meta or {}).get(k), str) and v}
    missing = [int(z) for z in (like.meta or {}).get("missing_slices") or []]  # slices the DICOM series lacked (dicom_gaps)
    # the DICOM image's manufacturer, model and field strength (a multi-centre study's per-vendor results)
    scanner = {k: v for k, v in ((like.meta or {}).get("scanner") or {}).items() if v not in (None, "")}
    sidecar_obj = {"labels": [out.name], "label_map": lm.to_dict(),
                   "provenance": {**dict(provenance or {}), "spacing_known": bool(like.spacing_known), **({"cardiac_timing": timing} if timing else {}),
                                  **({"scanner": scanner} if scanner else {}),
                                  **({"image_notes": notes} if notes else {}), **({"missing_slices": missing} if missing else {}),
                                  **_frame_times(arr, like, provenance)}}
    try:
        json.dumps(_jsonable(sidecar_obj), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ImageWriteError(f"provenance cannot be written as JSON: {e}") from None
    seg_opts: dict[str, Any] = {}
    if kind == "dicom-seg":
        from .seg_writer import segment_numbers

        sidecar_obj["dicom_seg_segments"] = segment_numbers(lm)  # the SEG numbers its segments 1..N, not by label value
        seg_opts["automatic"] = _zero_click(sidecar_obj["provenance"])
        seg_opts["algorithm_parameters"] = {k: str(v) for k in ("model_id", "model_sha256", "adapter_id", "adapter_sha256")
                                            if (v := sidecar_obj["provenance"].get(k))}
    if kind == "dicom-seg" and arr.ndim == 4 and arr.shape[0] > 1:
        return _write_seg_per_frame(arr, like, out, lm, sidecar_obj, seg_opts)
    sidecar_obj["labels"] = check_sidecar_free(out, sidecar_obj)
    sidecar, written = sidecar_path(out), None
    try:
        # the sidecar's text is on disk before the label file is replaced, and renamed onto the
        # old sidecar after it: a write that fails (a full disk) leaves an earlier pair as it was
        with atomic_path(sidecar) as side_tmp:
            side_tmp.write_text(json.dumps(_jsonable(sidecar_obj), indent=2, allow_nan=False) + "\n")
            written = _write_label_file(kind, arr, like, out, lm, seg_opts)
    except BaseException:
        if written is not None:
            written.unlink(missing_ok=True)  # never leave a label file without its label map
        raise
    return [written, sidecar]


def _frame_times(arr: np.ndarray, like: Volume, provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    """The image's frame times for the sidecar (seconds, to 0.1 ms): ``frame_times_s`` for labels
    of every frame of a cine (a NIfTI keeps only their mean step, pixdim[4], from 0: a DICOM
    cine's trigger times 30, 70, ... ms came back as 0, 49.5, ...; :func:`read_label_volume`
    gives them back), ``frame_time_s`` for one frame's labels whose ``provenance`` names the frame."""
    times = like.frame_times_s
    if times is None or like.n_frames < 2 or not np.all(np.isfinite(times)):
        return {}
    if arr.ndim == 4 and arr.shape[0] == like.n_frames:
        return {"frame_times_s": [round(float(t), 4) for t in times]}
    frame = (provenance or {}).get("frame")
    if isinstance(frame, int) and not isinstance(frame, bool) and 0 <= frame < like.n_frames:
        return {"frame_time_s": round(float(times[frame]), 4)}
    return {}


def _zero_click(provenance: Mapping[str, Any]) -> bool:
    """Labels made by zero-click alone (every model action of the log is ``auto``): a DICOM
    SEG's segments are then AUTOMATIC, else SEMIAUTOMATIC."""
    ops = [a.get("op") for a in provenance.get("actions") or [] if isinstance(a, Mapping)]
    made = [op for op in ops if op not in ("lock", "review")]
    return bool(made) and all(op == "auto" for op in made)


def _write_label_file(kind: str, arr: np.ndarray, like: Volume, out: Path, lm: LabelMap, seg_opts: dict[str, Any] | None = None) -> Path:
    if kind == "dicom-seg":
        from .seg_writer import write_dicom_seg

        return write_dicom_seg(arr, like, out, lm, **(seg_opts or {}))
    if kind == "nifti":
        from .nifti import write_nifti_labels

        return write_nifti_labels(arr, like, out)
    if kind == "itk":
        from .itk import write_itk_labels

        return write_itk_labels(arr, like, out)
    if kind == "slicer-seg":
        from .slicer_seg import write_slicer_seg

        return write_slicer_seg(arr, like, out, lm)
    from .png import write_png_labels

    return write_png_labels(arr, like, out)


def _write_seg_per_frame(arr: np.ndarray, like: Volume, out: Path, lm: LabelMap, sidecar_obj: dict[str, Any],
                         seg_opts: dict[str, Any] | None = None) -> list[Path]:
    """One DICOM SEG (+ sidecar) per labelled frame of (T, Z, Y, X) cine labels: instances 1, 2,
    ... of one series, each naming its frame."""
    import highdicom as hd

    from .seg_writer import write_dicom_seg

    frames = [t for t in range(arr.shape[0]) if arr[t].any()] or [0]
    objs = {}
    times = sidecar_obj["provenance"].get("frame_times_s")
    for t in frames:
        target = seg_frame_path(out, t)
        prov = {k: v for k, v in sidecar_obj["provenance"].items() if k != "frame_times_s"}  # one frame per SEG: its own time
        obj = {**sidecar_obj, "provenance": {**prov, "frame": t, **({"frame_time_s": times[t]} if times else {})}}
        objs[target] = {**obj, "labels": check_sidecar_free(target, obj)}
    written: list[Path] = []
    series = str(hd.UID())
    try:
        for i, (t, (target, obj)) in enumerate(zip(frames, objs.items())):
            seg = write_dicom_seg(arr[t], like, target, lm, frame=t, series_instance_uid=series, instance_number=i + 1, **(seg_opts or {}))
            written.append(seg)
            written.append(write_json_atomic(sidecar_path(seg), obj))
    except BaseException:
        for path in written:  # all frames or none: never a cine with some phases missing
            path.unlink(missing_ok=True)
        raise
    return written

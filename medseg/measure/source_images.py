"""The images under a report's contours and the model's confidences, found through the label
files' medseg sidecars (``provenance.input``, ``provenance.confidence``): shared by ``medseg
measure --plots/--pdf`` (:mod:`medseg.cli`) and ``batch --measure --pdf``
(:mod:`medseg.batch.pages`), so neither layer reaches into the other."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryError, MedsegError

#: the report's ``inputs`` keys of the label files
LABEL_KEYS = ("labels", "ed", "es", "a2c_ed", "a2c_es", "a2c")  # a2c: the 2-chamber clip of measure LABELS --a2c


def segmented_images(paths: list[Path], on_missing: Callable[[Path, str], None] | None = None) -> list[tuple[Path, str | None, int | None]] | None:
    """The images the label files were segmented from, as their medseg sidecars record them
    (``provenance.input``, with the DICOM series and, for one phase of a cine written alone as
    ``seg_frameNN.dcm``, its frame), when every one of them is still there; else None
    (``on_missing(label file, image)`` is called for an image a sidecar names that is gone)."""
    from ..io import read_sidecar

    found = []
    for p in paths:
        prov = (read_sidecar(p) or {}).get("provenance") or {}
        src = prov.get("input")
        if not isinstance(src, str) or not Path(src).exists():
            if isinstance(src, str) and on_missing is not None:
                on_missing(p, src)
            return None
        frame = prov.get("frame") if isinstance(prov.get("frame"), int) and not isinstance(prov.get("frame"), bool) else None
        found.append((Path(src), prov.get("series"), frame))  # the series segmented, of a DICOM folder that holds several
    return found or None


def overlay_images(paths: list, vol: Any, frames: dict[str, int]) -> dict[str, np.ndarray]:
    """Phase -> (Z, Y, X) image: frames of a cine image, or one image per phase in order
    (``paths``: --image paths, or (path, DICOM series, frame) from the labels' sidecars: the
    frame of a cine that labels of one phase segment)."""
    if len(paths) > len(frames):
        raise MedsegError(f"got {len(paths)} --image files for {len(frames)} phase(s)")
    from ..io.geometry import grid_difference, same_placement

    pairs = [p if isinstance(p, tuple) else (p, None, None) for p in paths]
    imgs = [_like_labels(_read_image(p, series), vol, p) for p, series, _ in pairs]
    paths = [p for p, _, _ in pairs]
    for p, img in zip(paths, imgs):
        if img.grid_shape != vol.grid_shape or not same_placement(img, vol):  # a PNG beside labels on its earlier placement too
            raise GeometryError(f"--image {p} is not on the labels' grid: {grid_difference(img, vol)}")
    from ..review import display_array

    arrays = [display_array(img) for img in imgs]  # a CT in its cardiac window
    at = [f for _, _, f in pairs]
    if len(imgs) == len(frames) and all(f is not None and f < img.n_frames for f, img in zip(at, imgs)):
        return {k: a[f] for k, a, f in zip(frames, arrays, at)}  # each phase's own frame of the cine(s) it was segmented from
    if len(imgs) == 1 and imgs[0].n_frames > 1:
        if vol.n_frames == 1:  # labels of one frame each: which of the cine's frames they are is not known
            raise MedsegError(f"--image {paths[0]} is a cine ({imgs[0].n_frames} frames) and the labels are one frame "
                              f"each: give the {' and the '.join(frames)} image{'s' if len(frames) > 1 else ''} (one --image per phase)")
        return {k: arrays[0][f] for k, f in frames.items() if f < imgs[0].n_frames}
    if len(imgs) < len(frames):
        raise MedsegError(f"got {len(imgs)} --image file(s) for {len(frames)} phases ({', '.join(frames)}): give one per phase, "
                          "in that order, or the cine they come from")
    return {k: a[0] for k, a in zip(frames, arrays)}


def sidecar_confidence(report: dict) -> dict[str, Any]:
    """Label file key -> the ``confidence`` its medseg sidecar's provenance records (the model's,
    per structure), for the files the report says a model made (``inputs.segmentation``)."""
    from ..io import read_sidecar

    inputs = report.get("inputs") or {}
    out = {}
    for key in LABEL_KEYS:
        if key not in (inputs.get("segmentation") or {}) or not inputs.get(key):
            continue
        try:
            conf = ((read_sidecar(Path(inputs[key])) or {}).get("provenance") or {}).get("confidence")
        except MedsegError:
            continue
        if isinstance(conf, dict):
            out[key] = conf
    return out


def _like_labels(img: Any, vol: Any, path: Path) -> Any:
    """The image as the labels read it: a 3-D file's slices as the frames of one view when the
    labels are read so (``measure --clip``), and an image without pixel spacing (a PNG, a video)
    under labels given one (``--pixel-spacing`` to this run, or to ``segment`` / ``batch`` that
    wrote them: their sidecar) given the same."""
    from ..io.geometry import with_labels_spacing

    return with_labels_spacing(_as_clip_like(img, vol, path), vol, f"--image {path}")


def _as_clip_like(img: Any, vol: Any, path: Path) -> Any:
    """Under labels whose 3-D file ``measure --clip`` read as one view over the cycle
    (``meta["clip_from_slices"]``), a 3-D image (``*_half_sequence.nii.gz``) read so too:
    its (1, Z, Y, X) slices as (Z, 1, Y, X) frames; other images as they are."""
    if not vol.meta.get("clip_from_slices") or img.n_frames != 1 or img.n_slices < 2:
        return img
    if img.n_slices != vol.n_frames:
        raise GeometryError(f"--image {path} has {img.n_slices} slices and the clip labels {vol.n_frames} frames (--clip reads a "
                            "3-D file's slices as frames): give the clip the labels segment")
    from ..io import Volume

    return Volume(array=img.array[0][:, None], affine=img.affine, frame_times_s=None, modality=img.modality,
                  spacing_known=img.spacing_known, meta={**img.meta, "clip_from_slices": True})


def _read_image(path: Path, series: str | None = None) -> Any:
    from ..io import read_volume

    return read_volume(path, series=series)

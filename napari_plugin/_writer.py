"""napari writers: label layers to NIfTI (in the source image's geometry) or DICOM SEG.

The geometry comes from the label layer's ``metadata["medseg_volume"]`` (set by the
segmentation widget, or by the reader on the image the labels were made on); a label layer
without it is written on a diagonal grid from its ``scale``/``translate``. Every file gets
the provenance sidecar ``<stem>.json`` (``{"label_map": ..., "provenance": ...}``).

DICOM SEG holds one cardiac phase: a cine (T > 1) label layer gives one file per labelled
frame, ``<stem>_frameNN.dcm``, each referencing that frame's source images.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import META_LABEL_FILE, META_PROVENANCE, as_4d, has_default_rows, label_map_for_layer, volume_for_layer


def write_labels_nifti(path: str, data: Any, attributes: Mapping[str, Any]) -> list[str]:
    """npe2 single-layer writer: a label layer to ``.nii.gz``/``.nii`` + sidecar JSON."""
    return [str(p) for p in write_label_layer(path, data, attributes)]


def write_labels_dicom_seg(path: str, data: Any, attributes: Mapping[str, Any]) -> list[str]:
    """npe2 single-layer writer: a label layer (of a DICOM image) to DICOM SEG + sidecar JSON."""
    return [str(p) for p in write_label_layer(path, data, attributes)]


def write_label_layer(path: str | os.PathLike, data: Any, attributes: Mapping[str, Any]) -> list[Path]:
    """Write a label layer's ``data`` with its ``attributes`` (napari's layer attributes:
    ``metadata``, ``scale``, ``translate``); the file ending picks the format.

    Returns the files written (label file(s) first, then sidecars). Raises
    :class:`medseg.errors.MedsegError` naming the problem (napari shows it).
    """
    meta = dict(attributes.get("metadata") or {})
    labels = np.asarray(data)
    like = volume_for_layer(labels, attributes.get("scale"), attributes.get("translate"), meta)
    lmap = label_map_for_layer(meta, labels)
    provenance = dict(meta.get(META_PROVENANCE) or {})
    opened = meta.get(META_LABEL_FILE)  # a label file medseg wrote, opened by the reader (a batch case to correct)
    if opened and not provenance and Path(opened).is_file():
        provenance = edited_file_provenance(opened, as_4d(labels))
    return write_labels_volume(as_4d(labels), like, path, lmap, provenance, label_file=opened, default_rows=has_default_rows(meta))


def edited_file_provenance(label_file: str | os.PathLike, labels: np.ndarray) -> dict[str, Any]:
    """The provenance of labels opened from ``label_file`` (medseg's, with its sidecar) and saved
    again: the file's own, with what was painted since (``labels`` (T, Z, Y, X) against the file
    on disk) appended as an ``edit`` action (:mod:`medseg.edits`, replayable) and, when anything
    changed, its ``command`` (``batch``, ``segment``) moved to ``edited_from``: the labels are no
    longer that command's output, so ``medseg batch`` keeps them instead of segmenting the case
    again (docs/batch.md, *Correcting a batch*). The edit records the ``labels_sha256`` of the
    labels saved (so does the sidecar: :func:`write_labels_volume`), so labels changed after the
    save (in ITK-SNAP, 3D Slicer) are told apart (:func:`medseg.batch.kept.labels_differ`)."""
    from medseg._runinfo import utc_timestamp
    from medseg.edits import runs_of
    from medseg.errors import MedsegError
    from medseg.io import read_label_volume, read_sidecar

    side = read_sidecar(label_file) or {}
    prov = dict(side["provenance"]) if isinstance(side.get("provenance"), dict) else {}
    try:
        before = np.asarray(read_label_volume(label_file).array)
    except MedsegError:
        return prov
    if before.shape != labels.shape:
        return prov
    changed = np.argwhere((before != labels).any(axis=(2, 3)))
    if changed.size == 0:
        return prov
    from medseg.batch.kept import labels_sha256

    edit = {"op": "edit", "slices": [{"frame": int(t), "slice": int(z), "runs": runs_of(before[t, z], labels[t, z])} for t, z in changed],
            "time": utc_timestamp(), "labels_sha256": labels_sha256(labels)}  # of the labels saved: measure trusts the sidecar's
    prov["actions"] = [*(prov.get("actions") if isinstance(prov.get("actions"), list) else []), edit]
    if "command" in prov:
        prov["edited_from"] = prov.pop("command")
    if prov.get("input"):
        prov.setdefault("source", prov["input"])  # the image, not the label file it was opened from
    return prov


def write_labels_volume(labels: np.ndarray, like: Any, path: str | os.PathLike, label_map: Any,
                        provenance: Mapping[str, Any] | None = None, label_file: str | os.PathLike | None = None,
                        default_rows: bool = False) -> list[Path]:
    """(T, Z, Y, X) labels on ``like``'s grid -> label file(s) + sidecar(s) via
    :func:`medseg.io.write_labels` (``.dcm`` cines: one DICOM SEG per labelled frame).
    ``label_file``: the label file the layer was opened from (``like`` is then its grid, not an
    image): saving over it is allowed. ``default_rows``: ``label_map`` is the segment panel's
    untouched default rows (:func:`saved_label_map`)."""
    from medseg._files import check_not_inputs
    from medseg.batch.kept import labels_sha256
    from medseg.io import sidecar_path, write_labels
    from medseg.io.volume import spacing_facts
    from medseg.io.writers import output_kind

    image = like.meta.get("path")
    if label_file and image and Path(image).resolve() == Path(label_file).resolve():
        image = None  # the labels' own file, not the image they were drawn on
    check_not_inputs({"labels": path, "sidecar JSON": sidecar_path(path)}, {"image the labels were drawn on": image})
    # a pixel size given in the measurement panel: recorded as segment --pixel-spacing records it
    prov = {"tool": "medseg-napari", "source": like.meta.get("path"), **dict(provenance or {}), **spacing_facts(like)}
    if output_kind(path) in ("nifti", "itk"):  # as segment and batch record it: labels edited after this save are told
        prov["labels_sha256"] = labels_sha256(labels)  # (not the digest of the labels opened, a batch's or segment's)
    else:  # a DICOM SEG, .seg.nrrd or PNG: no digest (segment writes none), not that of the labels opened
        prov.pop("labels_sha256", None)
    label_map = saved_label_map(label_map, labels, prov.get("actions"), default_rows)
    return write_labels(labels if labels.shape[0] > 1 else labels[0], like, Path(path), label_map, prov)


def saved_label_map(label_map: Any, labels: np.ndarray, actions: Any = None, default_rows: bool = False) -> Any:
    """The label map a save writes: :func:`medseg_napari._measure.segmented_map` of the values
    ``labels`` hold, the session's ``actions`` and ``default_rows`` (the panel's untouched
    default rows), so ``medseg measure`` of the file flags no absent LA or aorta nobody
    segmented, as the Measure panel measures the layer."""
    from ._measure import segmented_map

    return segmented_map(label_map, np.unique(labels), actions, default_rows)

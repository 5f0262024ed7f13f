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

from ._layers import META_PROVENANCE, as_4d, label_map_for_layer, volume_for_layer


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
    return write_labels_volume(as_4d(labels), like, path, lmap, provenance)


def write_labels_volume(labels: np.ndarray, like: Any, path: str | os.PathLike, label_map: Any,
                        provenance: Mapping[str, Any] | None = None) -> list[Path]:
    """(T, Z, Y, X) labels on ``like``'s grid -> label file(s) + sidecar(s) via
    :func:`medseg.io.write_labels` (``.dcm`` cines: one DICOM SEG per labelled frame)."""
    from medseg._files import check_not_inputs
    from medseg.io import sidecar_path, write_labels
    from medseg.io.volume import spacing_facts

    check_not_inputs({"labels": path, "sidecar JSON": sidecar_path(path)}, {"image the labels were drawn on": like.meta.get("path")})
    # a pixel size given in the measurement panel: recorded as segment --pixel-spacing records it
    prov = {"tool": "medseg-napari", "source": like.meta.get("path"), **dict(provenance or {}), **spacing_facts(like)}
    return write_labels(labels if labels.shape[0] > 1 else labels[0], like, Path(path), label_map, prov)

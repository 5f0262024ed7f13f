"""The measurement panel's study page: the one-page A4 PDF of ``medseg measure --pdf``
(:func:`medseg.measure.study_pdf.write_study_pdf`) of what the panel measured.

The page is drawn from the report the panel shows and the label arrays it measured (copies kept
with the report: :class:`Measured`), over the image layers the labels were drawn on; when the
labels are a medseg session's, the model + adapter it segmented with, and the per-structure
confidences of the Review dock's last check (only while that check is of the labels measured).
Qt-free: the dock (:mod:`medseg_napari._qt._measure_pdf`) runs :func:`write_page` in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the model record of a report's ``inputs.segmentation`` (:func:`medseg.measure.compare.segmentation_record`)
MODEL_KEYS = ("model_id", "model_sha256", "adapter_id", "adapter_sha256")


@dataclass
class Measured:
    """What one measurement of the panel measured, kept beside its report for the study page.

    ``data``/``es``: the (T, Z, Y, X) label copies measured; ``keys``: report file key ("labels",
    "ed", "es") -> the label layer measured as it; ``body``: height, weight and sex measured with."""

    data: np.ndarray
    es: np.ndarray | None
    label_map: Any
    keys: dict[str, Any]
    modality: str | None = None
    body: dict[str, Any] = field(default_factory=dict)


def _labelled(arr: np.ndarray) -> int:
    return next((t for t in range(arr.shape[0]) if arr[t].any()), 0)


def phases(report: dict[str, Any], measured: Measured) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(phase -> (Z, Y, X) labels, phase -> frame) under the page's contours, as ``medseg measure``
    picks them: ED and ES layers' labelled frames, a cine's ED and ES frames, or the one phase."""
    data, es = measured.data, measured.es
    if es is not None:
        frames = {"ED": _labelled(data), "ES": _labelled(es)}
        return {"ED": data[frames["ED"]], "ES": es[frames["ES"]]}, frames
    if report.get("volume_curve_ml") and report.get("ed_frame") is not None:
        frames = {k: int(report[f]) for k, f in (("ED", "ed_frame"), ("ES", "es_frame")) if report.get(f) is not None}
        return {k: data[t] for k, t in frames.items()}, frames
    t = int(report.get("frame", _labelled(data)))
    return {"labels": data[t]}, {"labels": t}


def image_phase(image: Any, frame: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """The (Z, Y, X) frame ``frame`` of an image layer under labels of phase ``shape``, in grey, or
    None: no image, or one on another grid (the page then draws the contours on black)."""
    if image is None:
        return None
    if image.ndim == 4:  # napari's ndim: an RGB layer's colour axis not counted
        if frame >= image.data.shape[0]:
            return None
        a = np.asarray(image.data[frame])
    else:
        a = np.asarray(image.data)
    if getattr(image, "rgb", False):
        a = a[..., :3].mean(axis=-1)
    a = a.reshape((1,) * (3 - a.ndim) + a.shape) if a.ndim < 3 else a
    return np.asarray(a, dtype=np.float32) if a.shape == tuple(shape) else None


def case_of(image: Any, labels: Any, source: str | None = None) -> str:
    """The page's case: the image file's name (``source``, else the image layer's), without its
    extensions, else the image layer's name, else the label layer's without " labels"."""
    path = source or (str(getattr(getattr(image, "source", None), "path", None) or "") if image is not None else "")
    if path:
        name = Path(path).name.split(".")[0]
        if name:
            return name
    if image is not None:
        return str(image.name)
    name = str(getattr(labels, "name", "") or "")
    return name[: -len(" labels")] if name.endswith(" labels") else name or "study"


def model_record(session: Any, needs_review: bool | None = None) -> dict[str, Any]:
    """A medseg session's model + adapter as a report's ``inputs.segmentation`` entry."""
    prov = session.model.provenance()
    return {**{k: prov.get(k) for k in MODEL_KEYS}, **({"needs_review": bool(needs_review)} if needs_review is not None else {})}


def page_report(report: dict[str, Any], segmentation: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``report`` with ``inputs.segmentation`` (file key -> model record; empty: labels not made by a model)."""
    inputs = dict(report.get("inputs") or {})
    if segmentation:
        inputs["segmentation"] = segmentation
    return {**report, "inputs": inputs}


def write_page(report: dict[str, Any], path: str | Path, **page: Any) -> Path:
    """Write the study page at ``path`` (atomically; ``.pdf`` added when missing): the
    keywords of :func:`medseg.measure.study_pdf.write_study_pdf`."""
    from medseg.errors import MedsegError
    from medseg.measure.study_pdf import write_study_pdf

    path = Path(path)
    if path.suffix.lower() != ".pdf":
        if path.suffix:
            raise MedsegError(f"{path.name}: the study page is a PDF: name it .pdf")
        path = path.with_name(path.name + ".pdf")
    try:
        return write_study_pdf(report, path, **page)
    except OSError as e:  # said of the page, not of the temporary file beside it
        if e.filename and e.strerror and str(e.filename) != str(path):
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise

"""Confidence per structure, per slice and per volume, and the review flags built on it.

For every slice a structure was segmented on, two signals are combined:

* the mask decoder's **predicted IoU** of the mask it drew, times that mask's Dice with what the
  slice holds now (1 unless the mask was edited or overwritten since);
* **agreement under prompt perturbation**: ``K`` jittered boxes around the written mask are
  decoded in one batch from the *cached* embedding of the same ROI (decodes, not encodes), and
  the mean Dice of those masks with the written one is taken (on the ROI's low-resolution
  grid). :func:`score_session` decodes the boxes of :data:`DECODE_BATCH` slices in one call of
  the mask decoder, each with its own slice's embedding (:func:`slices_signals`).

A logistic map ``sigmoid(w0 + w1 * iou + w2 * agreement)`` fitted on the validation split
(``medseg/_confidence_calibration.json``, made by ``benchmarks/calibrate_confidence.py``)
turns them into one confidence in [0, 1] that estimates the slice's Dice. A volume's
confidence per structure is the mean over its slices (each slice counts once, so a poor apical
or basal slice weighs as much as a mid slice: on validation this caught failed volumes better
than an area-weighted mean). Slices below ``slice_threshold`` and volumes below
``volume_threshold`` are flagged ``needs_review``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .types import Box

K_JITTER = 2
#: slices whose jittered boxes :func:`score_session` decodes in one call of the mask decoder
#: (:func:`slices_signals`; 1: one call per slice, as before batching)
DECODE_BATCH = 4
#: a slice mask smaller than this (pixels) is a speck: no box to jitter, no score
MIN_SLICE_PX = 3
_CALIBRATION = Path(__file__).with_name("_confidence_calibration.json")
DEFAULT_CALIBRATION = {"w0": -2.0, "w_iou": 2.0, "w_agreement": 3.0, "slice_threshold": 0.75, "volume_threshold": 0.85, "fitted_on": "uncalibrated defaults"}


def calibration() -> dict[str, Any]:
    """The fitted calibration (or the uncalibrated defaults when the file is absent)."""
    if _CALIBRATION.is_file():
        return {**DEFAULT_CALIBRATION, **json.loads(_CALIBRATION.read_text())}
    return dict(DEFAULT_CALIBRATION)


def combine(iou: float, agreement: float, cal: dict[str, Any] | None = None) -> float:
    c = cal or calibration()
    x = c["w0"] + c["w_iou"] * iou + c["w_agreement"] * agreement
    return float(1.0 / (1.0 + math.exp(-x)))


@dataclass
class SliceConfidence:
    structure: str
    frame: int
    slice: int
    iou_pred: float
    agreement: float
    confidence: float
    area_px: int


#: entries of :class:`ConfidenceDict`'s ``flagged`` shown before "... N more"
REPR_FLAGS = 6


class ConfidenceDict(dict):
    """:meth:`ConfidenceReport.to_json` (``SegmentResult.confidence``, the provenance's
    ``confidence``): a plain dict to code (keys, indexing, ``json.dumps``, ``==``, pickling)
    whose repr, in a notebook or ``print``, sums it up on one line instead of listing every
    slice of every structure (a cine: thousands): volume confidence per structure, thresholds,
    the number of slices scored and the flags ("lv frame 0 slice 8 0.2871 < 0.3", the first
    :data:`REPR_FLAGS`). ``conf["slices"]`` holds the slices, ``dict(conf)`` or
    ``json.dumps(conf, indent=1)`` shows it all."""

    __slots__ = ()

    def __repr__(self) -> str:
        try:
            return self._summary()
        except (TypeError, AttributeError, KeyError):  # a dict edited into another shape: shown as it is
            return dict.__repr__(self)

    def _summary(self) -> str:
        flags = [self._flag_text(f) for f in self.get("flags") or () if isinstance(f, dict)]
        more = [f"... {len(flags) - REPR_FLAGS} more"] if len(flags) > REPR_FLAGS else []
        return (f"ConfidenceDict(volume={self.get('volume')!r}, needs_review={self.get('needs_review')!r}, "
                f"thresholds={self.get('thresholds')!r}, slices={len(self.get('slices') or ())}, flagged={flags[:REPR_FLAGS] + more})")

    @staticmethod
    def _flag_text(f: dict[str, Any]) -> str:
        where = f"frame {f.get('frame')} slice {f.get('slice')}" if f.get("level") == "slice" else str(f.get("level") or "")
        under = f" < {f['threshold']}" if f.get("confidence") is not None and f.get("threshold") is not None else ""
        parts = [f.get("structure"), None if f.get("code") == "needs_review" else f.get("code"), where, f.get("confidence")]
        return " ".join(str(x) for x in parts if x not in (None, "")) + under


@dataclass
class ConfidenceReport:
    slices: list[SliceConfidence] = field(default_factory=list)
    volume: dict[str, float] = field(default_factory=dict)  # structure -> confidence
    flags: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:  # a cine's thousands of slices stay in .slices
        return (f"ConfidenceReport(volume={self.volume}, needs_review={self.needs_review}, "
                f"slices={len(self.slices)}, flags={len(self.flags)})")

    @property
    def needs_review(self) -> bool:
        """True when some confidence is below its threshold: the confidence's part of the
        verdict only. Whether the segmentation needs review (confidence, anatomy, measurements)
        is :func:`medseg.review.review_segmentation`'s ``needs_review``, the provenance's
        top-level ``needs_review``."""
        return any(f["code"] == "needs_review" for f in self.flags)

    def to_json(self) -> ConfidenceDict:
        """The provenance's ``confidence``, a dict whose repr is one line (:class:`ConfidenceDict`);
        its ``needs_review`` is :attr:`needs_review` (low confidence only). Confidences are
        rounded to 4 decimals, or more where 4 would print a value below its threshold as equal
        to it."""
        vol_th, sl_th = self.thresholds.get("volume"), self.thresholds.get("slice")
        return ConfidenceDict({
            "volume": {k: rounded(v, vol_th) for k, v in self.volume.items()},
            "slices": [{"structure": s.structure, "frame": s.frame, "slice": s.slice, "iou_pred": round(s.iou_pred, 4),
                        "agreement": round(s.agreement, 4), "confidence": rounded(s.confidence, sl_th), "area_px": s.area_px} for s in self.slices],
            "thresholds": self.thresholds,
            "needs_review": self.needs_review,
            "flags": self.flags,
        })


def _jittered_boxes(mask: np.ndarray, k: int, seed: int) -> list[Box]:
    b = Box.from_mask(mask)
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    out = []
    for _ in range(k):
        dy, dx = b.height * 0.06, b.width * 0.06
        y0, x0, y1, x1 = (np.array(b.as_tuple()) + rng.normal(0, 1, 4) * np.array([dy, dx, dy, dx]))
        out.append(Box(float(np.clip(min(y0, y1), 0, h - 1)), float(np.clip(min(x0, x1), 0, w - 1)),
                       float(np.clip(max(y0, y1), 0, h - 1)), float(np.clip(max(x0, x1), 0, w - 1))))
    return out


def _slice_job(session, structure: str, t: int, z: int, k: int) -> tuple[np.ndarray, Any, np.ndarray | None, list[Box]] | None:
    """(written mask, slice result, its ROI, jittered boxes) of a slice to score; None for an
    empty mask or a speck."""
    mask = session.labels[t, z] == session.structure(structure).value
    if mask.sum() < MIN_SLICE_PX:
        return None
    res = session.results.get((structure, t, z))
    roi = np.asarray(res.roi) if res is not None else None
    return mask, res, roi, _jittered_boxes(mask, k, seed=zlib.crc32(f"{structure}/{t}/{z}".encode()))


def _signals(masks: np.ndarray, ref: np.ndarray, res, mask: np.ndarray) -> tuple[float, float, int]:
    """(predicted IoU, agreement, area) from the jittered boxes' low-resolution ``masks`` and the
    written ``mask`` resampled to their grid (``ref``)."""
    inter = (masks & ref[None]).sum(axis=(1, 2))
    dice = 2 * inter / np.maximum(masks.sum(axis=(1, 2)) + ref.sum(), 1)
    if res is None:
        iou = float(np.mean(dice))
    else:
        # The predicted IoU describes the mask the model drew (its logits are on the same
        # low-resolution ROI grid as ``ref``); scale it by that mask's Dice with what the slice
        # holds now, so an edited or overwritten mask keeps no stale score.
        drawn = np.asarray(res.logits) > 0
        iou = float(res.score) * float(2 * (drawn & ref).sum() / max(int(drawn.sum() + ref.sum()), 1))
    return iou, float(np.mean(dice)), int(mask.sum())


def slice_signals(session, structure: str, t: int, z: int, k: int = K_JITTER) -> tuple[float, float, int] | None:
    """(predicted IoU, perturbation agreement, area) of the written mask, or None if it is empty
    or a speck (under :data:`MIN_SLICE_PX` pixels)."""
    job = _slice_job(session, structure, t, z, k)
    if job is None:
        return None
    mask, res, roi, boxes = job
    session._set_slice(t, z)
    masks, ref = session.predictor.predict_boxes(boxes, structure=structure, roi=roi, reference=mask)
    return _signals(masks, ref, res, mask)


def slices_signals(session, keys: list[tuple[str, int, int]], k: int = K_JITTER) -> list[tuple[float, float, int] | None]:
    """:func:`slice_signals` of several (structure, frame, slice), the jittered boxes of all of
    them decoded in one call of the mask decoder (each from its own slice's cached ROI
    embedding): one prompt encoding and one decoder pass instead of one per slice. The signals
    are those of :func:`slice_signals`, up to float rounding (the batched matrix products may
    sum in another order)."""
    p = session.predictor
    todo, jobs = [], []
    for structure, t, z in keys:
        job = _slice_job(session, structure, t, z, k)
        todo.append(job)
        if job is None:
            continue
        _, _, roi, boxes = job
        session._set_slice(t, z)
        roi = np.asarray(p._box_roi(boxes[0]) if roi is None else roi, dtype=np.float64)
        jobs.append((p.embedding(roi), roi, boxes, structure))
    lows = iter(p.decode_box_prompts(jobs))
    rois = iter([roi for _, roi, _, _ in jobs])
    out: list[tuple[float, float, int] | None] = []
    for job in todo:
        if job is None:
            out.append(None)
            continue
        mask, res, _, _ = job
        low = next(lows)
        out.append(_signals(low, p.reference_on_roi(mask, next(rois), low.shape[-1]), res, mask))
    return out


def score_session(session, structures: list[str] | None = None, cal: dict[str, Any] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> ConfidenceReport:
    """Confidence of every written structure on every slice, per volume, and review flags;
    ``progress(done, total)`` after each (structure, frame, slice) scored.

    Specks (slices under :data:`MIN_SLICE_PX` pixels) are not scored; a structure made only of
    specks gets volume confidence 0 and a volume ``needs_review`` flag (so ``--min-confidence``
    leaves it out and review sees it)."""
    c = cal or calibration()
    rep = ConfidenceReport(thresholds={"slice": c["slice_threshold"], "volume": c["volume_threshold"]})
    names = structures or list(session.structures)
    todo = {name: list(session.iter_structure_slices(name)) for name in names}
    keys = [(name, t, z) for name, tz in todo.items() for t, z in tz]
    tick = (lambda i: progress(i + 1, len(keys))) if progress else None
    signals = dict(zip(keys, _all_signals(session, keys, tick)))
    for name in names:
        confs: list[float] = []
        for t, z in todo[name]:
            sig = signals[(name, t, z)]
            if sig is None:
                continue
            iou, agree, area = sig
            conf = combine(iou, agree, c)
            rep.slices.append(SliceConfidence(name, t, z, iou, agree, conf, area))
            confs.append(conf)
            if conf < c["slice_threshold"]:
                rep.flags.append({"code": "needs_review", "level": "slice", "structure": name, "frame": t, "slice": z,
                                  "confidence": rounded(conf, c["slice_threshold"]), "threshold": c["slice_threshold"],
                                  "message": f"{name} on frame {t}, slice {z}: confidence {below(conf, c['slice_threshold'])}"})
        if confs:
            rep.volume[name] = float(np.mean(confs))
            if rep.volume[name] < c["volume_threshold"]:
                rep.flags.append({"code": "needs_review", "level": "volume", "structure": name, "confidence": rounded(rep.volume[name], c["volume_threshold"]),
                                  "threshold": c["volume_threshold"], "message": f"{name}: volume confidence {below(rep.volume[name], c['volume_threshold'])}"})
        elif todo[name]:  # voxels, but no slice with a mask to score
            rep.volume[name] = 0.0
            n = len(todo[name])
            rep.flags.append({"code": "needs_review", "level": "volume", "structure": name, "confidence": 0.0, "threshold": c["volume_threshold"],
                              "message": f"{name}: only specks (under {MIN_SLICE_PX} pixels on each of its {n} slice{'s' * (n != 1)}): volume confidence 0"})
    return rep


def _all_signals(session, keys: list[tuple[str, int, int]], tick: Callable[[int], None] | None) -> list[tuple[float, float, int] | None]:
    """The signals of ``keys``, up to :data:`DECODE_BATCH` slices per decoder call, the calls
    spread over the session's prediction threads (as many calls for each thread, of sizes that
    differ by one at most: a thread left with more slices than the other would hold the pass
    up); ``tick(i)`` after key ``i``, in order."""
    workers = max(1, session.spare_threads())
    n = -(-len(keys) // max(1, int(DECODE_BATCH)))
    n = min(len(keys), -(-n // workers) * workers)
    bounds = [len(keys) * c // n for c in range(n + 1)] if n else [0]
    chunks = [keys[a:b] for a, b in zip(bounds, bounds[1:])]

    def done(c: int) -> None:
        for i in range(bounds[c], bounds[c + 1]):
            tick(i)

    parts = session.parallel_map(lambda chunk: slices_signals(session, chunk), chunks, done=done if tick else None)
    return [sig for part in parts for sig in part]


def digits_below(value: float, threshold: float | None, least: int = 2) -> int:
    """Decimals to print ``value`` with so that, when it is below ``threshold``, it does not
    read as equal to it or above (both printed with as many): ``least`` where they suffice,
    else more (0.9196 against 0.92: 4). ``least`` for a value at or above the threshold."""
    if threshold is None or not value < threshold:
        return least
    for d in range(least, 17):
        if float(f"{value:.{d}f}") < float(f"{threshold:.{d}f}"):
            return d
    return 17


def rounded(value: float, threshold: float | None = None, least: int = 4) -> float:
    """``value`` rounded for a JSON flag or report: ``least`` decimals, more where they would
    round a value below ``threshold`` up to it."""
    return round(float(value), digits_below(value, threshold, least))


def below(value: float, threshold: float) -> str:
    """"0.87 < 0.92": two decimals, more where two would print the value at or above the
    threshold ("0.916 < 0.920", "0.9196 < 0.9200")."""
    digits = digits_below(value, threshold)
    return f"{value:.{digits}f} < {threshold:.{digits}f}"

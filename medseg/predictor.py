"""One slice: embed once, answer any number of prompts.

This is the only module that converts medseg's prompt coordinates (pixel indices, (y, x),
inclusive boxes) into the model's (x, y) / XYXY input coordinates, via
:mod:`medseg.preprocess`. Every prediction is made in a zoomed **ROI**: a box defines the
crop (box x (1 + 2 x margin), square), clicks without a box first run on the whole slice to
find the structure, then in its ROI. Zero-click on a slice set with an ultrasound ``region``
(an echo DICOM's screen, :mod:`medseg.io.us_region`) looks only inside that region.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .embeddings import EmbeddingCache, array_key
from .errors import PromptError
from .preprocess import box_to_continuous, box_to_model, full_image_roi, image_to_model, roi_from_box
from .roi_ops import crop_rois, paste_logits
from .types import Box, Point, Prediction

MASK_PROMPT_SCALE = 8.0
MIN_POINT_SLOTS = 4  # = medseg.training.prompts.N_POINTS
_THRESHOLDS = Path(__file__).with_name("_mask_thresholds.json")
#: Set by ``benchmarks/fit_mask_thresholds.py`` while it tries thresholds; None in use.
THRESHOLD_OVERRIDE: dict[str, float] | None = None


@lru_cache(maxsize=1)
def _fitted_thresholds() -> dict[str, Any]:
    return json.loads(_THRESHOLDS.read_text()) if _THRESHOLDS.is_file() else {}


def mask_thresholds(loaded, modality: str | None = None) -> dict[str, float]:
    """Per-structure logit thresholds of the mask (0 = the model's own decision boundary).

    ``medseg/_mask_thresholds.json`` holds thresholds fitted for one model
    (``benchmarks/fit_mask_thresholds.py``, on the ACDC patients no fine-tune recorded): the
    shipped default draws the LV blood pool a little inside the experts' contour (LV EDV about
    3.4 mL low in every prompt mode), and an LV threshold of -1 removes about half of that bias.
    Applied only to that model (by sha256) without an adapter, and only to the image modalities
    the file lists (``modalities``: where it was checked; not CT, whose axial LV opens into the
    atrium and aorta at the same contrast: the CT phantoms lose 0.03 LV Dice with it); every other
    model, adapter and modality keeps 0. ``modality`` None: the model's thresholds, whatever the image.
    """
    if THRESHOLD_OVERRIDE is not None:
        return THRESHOLD_OVERRIDE
    fit = _fitted_thresholds()
    if not fit or fit.get("model_sha256") != getattr(loaded, "sha256", None) or getattr(loaded, "adapter_sha256", None):
        return {}
    if modality is not None and "modalities" in fit and modality not in fit["modalities"]:
        return {}
    return {str(k): float(v) for k, v in fit.get("logit_thresholds", {}).items()}


def mask_to_prompt_logits(mask01: torch.Tensor) -> torch.Tensor:
    """A binary / soft mask in [0, 1] -> mask-prompt logits in [-8, 8] (training uses the same)."""
    return (mask01 * 2.0 - 1.0) * MASK_PROMPT_SCALE


class SlicePredictor:
    """Answer prompts on one 2-D slice with a promptable model.

    Usage::

        p = SlicePredictor(load_model("default"))
        p.set_image(slice01, key=("study-hash", frame, z))
        pred = p.predict(box=Box(40, 50, 90, 110), structure="lv")
    """

    def __init__(self, loaded, cache: EmbeddingCache | None = None, modality: str | None = None) -> None:
        self.loaded = loaded
        self.modality = modality  # of the images it is given: which mask thresholds apply (mask_thresholds)
        self.model = loaded.model
        self.config = loaded.model.config
        self.device = torch.device(loaded.device)
        self.cache = cache if cache is not None else EmbeddingCache()
        self._image: torch.Tensor | None = None
        self._key: Hashable | None = None
        self._shape: tuple[int, int] = (0, 0)
        self._region: tuple[int, int, int, int] | None = None
        self._in_region: tuple[torch.Tensor, np.ndarray] | None = None  # (image blanked outside the region, region mask)

    # -- image ---------------------------------------------------------------------------
    def set_image(self, image01: np.ndarray, key: Hashable | None = None, region: tuple[int, int, int, int] | None = None) -> None:
        """Set the (Y, X) slice, intensities already normalised to [0, 1]
        (:func:`medseg.preprocess.normalize_intensity`). ``key`` names the slice in the
        embedding cache (default: a hash of its pixels). ``region``: the ultrasound image's box
        on an echo screen, (row0, col0, row1, col1) inclusive (``Volume.meta["us_region"]``):
        :meth:`predict_auto` looks only inside it; prompts a user gives are not restricted."""
        img = np.asarray(image01, dtype=np.float32)
        if img.ndim != 2:
            raise PromptError(f"set_image expects a 2-D (Y, X) slice, got shape {img.shape}")
        self._region = _checked_region(region, img.shape)
        self._image = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)[None, None]
        self._key = key if key is not None else array_key(img)
        self._shape = img.shape
        self._in_region = None

    @property
    def key(self) -> Hashable | None:
        """The cache key of the slice set last (None before :meth:`set_image`)."""
        return self._key

    def _require_image(self) -> None:
        if self._image is None:
            raise PromptError("no image set: call set_image(...) before predict(...)")

    @property
    def _ids(self) -> tuple[str, str | None]:
        return self.loaded.sha256, self.loaded.adapter_id

    @property
    def region(self) -> tuple[int, int, int, int] | None:
        """The ultrasound region of the slice set last (inclusive box), or None."""
        return self._region

    @torch.inference_mode()
    def embedding(self, roi: np.ndarray, in_region: bool = False) -> torch.Tensor:
        """(1, C, E, E) image embedding of an ROI, from the cache when possible; ``in_region``:
        of the slice with everything outside its ultrasound region blanked (zero-click)."""
        self._require_image()
        image, data_key = self._image, self._key
        if in_region and self._region is not None:  # its own cache entry: the region is part of the key
            image, data_key = self._region_view()[0], (self._key, "us_region", self._region)
        key = self.cache.make_key(data_key, roi, *self._ids)
        emb = self.cache.get(key)
        if emb is None:
            size = self.config.img_size
            crop = crop_rois(image, torch.tensor(roi[None], dtype=torch.float32, device=self.device), size)
            emb = self.model.encode(crop)
            self.cache.put(key, emb)
        return emb

    # -- prompts -------------------------------------------------------------------------
    def predict(
        self,
        box: Box | None = None,
        points: Sequence[Point] = (),
        structure: str | None = None,
        mask_prompt: np.ndarray | None = None,
        mask_logits: tuple[np.ndarray, np.ndarray] | None = None,
        roi: np.ndarray | None = None,
        multimask: bool = False,
    ) -> Prediction:
        """Predict one structure's mask on the current slice.

        Args:
            box: inclusive pixel box; points: clicks (pixel indices).
            structure: structure name for the structure token (None / unknown = generic).
            mask_prompt: (Y, X) bool mask used as a dense prompt (e.g. previous slice).
            mask_logits: (roi, low-res logits) of an earlier prediction on this slice, reused
                as the dense prompt for correction clicks (its ROI is kept).
            roi: force the crop (continuous XYXY square); default from box / points / mask.
            multimask: return the best of SAM's three candidate masks (for a single click).
        Returns: :class:`Prediction` with a full-slice boolean mask.
        """
        self._require_image()
        h, w = self._shape
        self._check_prompt_inside(box, points)
        if mask_logits is not None and roi is None:
            roi = np.asarray(mask_logits[0], dtype=np.float64)
        if roi is None:
            roi = self._choose_roi(box, points, structure, mask_prompt)
        return self._decode(roi, box, points, structure, mask_prompt, mask_logits, multimask)

    @torch.inference_mode()
    def predict_boxes(self, boxes: Sequence[Box], structure: str | None = None, roi: np.ndarray | None = None, reference: np.ndarray | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Decode several box prompts in one batch from one ROI's cached embedding (for
        perturbation-agreement confidence).

        Returns the (K, h, w) low-resolution masks inside the ROI and, when ``reference`` (a
        (Y, X) mask) is given, also that mask resampled to the same ROI grid: comparing there
        costs no full-resolution paste."""
        self._require_image()
        if roi is None:
            roi = self._box_roi(boxes[0])
        roi = np.asarray(roi, dtype=np.float64)
        low = self.decode_box_prompts([(self.embedding(roi), roi, boxes, structure)])[0]
        if reference is None:
            return low
        return low, self.reference_on_roi(reference, roi, low.shape[-1])

    @torch.inference_mode()
    def decode_box_prompts(self, jobs: Sequence[tuple[torch.Tensor, np.ndarray, Sequence[Box], str | None]]) -> list[np.ndarray]:
        """The boxes of several ROIs (of any slices) in one call of the mask decoder: each job
        is (the ROI's (1, C, E, E) embedding, the ROI, its boxes, structure); returns, per job,
        the (K, h, w) low-resolution masks inside its ROI, as :meth:`predict_boxes` gives them
        (the decoder sees each prompt with its own embedding, so a mask does not depend on the
        other jobs, up to float rounding)."""
        if not jobs:
            return []
        model, size, dev = self.model, self.config.img_size, self.device
        counts = [len(boxes) for _, _, boxes, _ in jobs]
        n = sum(counts)
        embs = torch.cat([emb.expand(c, -1, -1, -1) for (emb, _, _, _), c in zip(jobs, counts)])
        kw: dict = {"points": torch.zeros(n, MIN_POINT_SLOTS, 2, device=dev), "point_labels": torch.full((n, MIN_POINT_SLOTS), -1, device=dev),
                    "boxes": torch.tensor(np.stack([box_to_model(b.as_tuple(), np.asarray(roi, dtype=np.float64), size) for _, roi, boxes, _ in jobs for b in boxes]),
                                          dtype=torch.float32, device=dev),
                    "has_box": torch.ones(n, dtype=torch.bool, device=dev)}
        if model.structure_embed is not None:
            kw["structure"] = torch.tensor([model.structure_index(st) for (_, _, _, st), c in zip(jobs, counts) for _ in range(c)], device=dev)
        sparse, dense = model.embed_prompts(n, **kw)
        masks, _ = model.decode(embs, sparse, dense)
        thresholds = mask_thresholds(self.loaded, self.modality)
        thr = torch.tensor([thresholds.get(str(st), 0.0) for (_, _, _, st), c in zip(jobs, counts) for _ in range(c)], dtype=masks.dtype, device=dev)
        low = (masks[:, 0] > thr.view(-1, 1, 1)).cpu().numpy()
        return list(np.split(low, np.cumsum(counts)[:-1]))

    def reference_on_roi(self, reference: np.ndarray, roi: np.ndarray, size: int) -> np.ndarray:
        """A (Y, X) mask resampled to an ROI's ``size`` x ``size`` grid (that of the decoder's
        low-resolution masks), bool."""
        dev = self.device
        ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).to(dev)[None, None]
        roi_t = torch.tensor(np.asarray(roi, dtype=np.float64)[None], dtype=torch.float32, device=dev)
        return (crop_rois(ref, roi_t, size)[0, 0] > 0.5).cpu().numpy()

    def predict_auto(self, structure: str) -> Prediction:
        """Zero-click: the structure token alone on the whole slice, then one refinement in the
        ROI of what it found. An empty mask means the structure was not found here.

        With an ultrasound region (:meth:`set_image`) both passes see the slice blanked outside
        it, the first in the square ROI of the region alone (anchored at its top-left corner,
        as the whole slice is otherwise; the intensities are still scaled on the whole screen,
        so it is close to, not the same as, the clip cropped to the region), and the mask is
        cut to the region: nothing outside it is labelled."""
        self._require_image()
        h, w = self._shape
        inside = self._region is not None
        first = full_image_roi(h, w) if not inside else _region_roi(self._region)  # type: ignore[arg-type]
        coarse = self._keep_in_region(self._decode(first, None, (), structure, None, None, False, in_region=inside))
        b = Box.from_mask(_largest_component(coarse.mask))
        if b is None:
            return coarse
        fine = self._keep_in_region(self._decode(self._box_roi(b), b, (), structure, None, None, False, in_region=inside))
        if coarse.score < 0.5:  # an unsure detection caps the refined mask's score
            fine.score = min(fine.score, coarse.score)
        return fine

    # -- internals -----------------------------------------------------------------------
    def _region_view(self) -> tuple[torch.Tensor, np.ndarray]:
        """(the slice blanked outside the ultrasound region, the region's (Y, X) bool mask)."""
        if self._in_region is None:
            r0, c0, r1, c1 = self._region  # type: ignore[misc]
            mask = np.zeros(self._shape, bool)
            mask[r0 : r1 + 1, c0 : c1 + 1] = True
            self._in_region = (self._image * torch.from_numpy(mask).to(self.device), mask)  # type: ignore[operator]
        return self._in_region

    def _keep_in_region(self, pred: Prediction) -> Prediction:
        """``pred`` with its mask cut to the ultrasound region (as it is without one)."""
        if self._region is not None:
            pred.mask = pred.mask & self._region_view()[1]
        return pred

    def _box_roi(self, box: Box) -> np.ndarray:
        return roi_from_box(box_to_continuous(*box.as_tuple()), margin=self.config.roi_margin)

    def _choose_roi(self, box, points, structure, mask_prompt) -> np.ndarray:
        if box is not None:
            return self._box_roi(box)
        if mask_prompt is not None and mask_prompt.any():
            return self._box_roi(Box.from_mask(mask_prompt))
        h, w = self._shape
        coarse = self._decode(full_image_roi(h, w), None, points, structure, None, None, False)
        found = _largest_component(coarse.mask) if coarse.mask.any() else coarse.mask
        ys = [p.y for p in points if p.positive]
        xs = [p.x for p in points if p.positive]
        if found.any():
            fy, fx = np.nonzero(found)
            ys += [fy.min(), fy.max()]
            xs += [fx.min(), fx.max()]
        if not ys:
            return full_image_roi(h, w)
        b = Box(min(ys), min(xs), max(ys), max(xs))
        roi = self._box_roi(b)
        side = max(roi[2] - roi[0], max(h, w) / 6.0)
        c = ((roi[0] + roi[2]) / 2, (roi[1] + roi[3]) / 2)
        return np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2])

    @torch.inference_mode()
    def _decode(self, roi, box, points, structure, mask_prompt, mask_logits, multimask, in_region: bool = False) -> Prediction:
        model, size, dev = self.model, self.config.img_size, self.device
        roi = np.asarray(roi, dtype=np.float64)
        emb = self.embedding(roi, in_region)
        # Same token layout as training: >= MIN_POINT_SLOTS point tokens (padding label -1) and
        # two box tokens (padding when there is no box); attention sees the padding too.
        n_slots = max(MIN_POINT_SLOTS, len(points))
        pts = np.zeros((1, n_slots, 2), np.float32)
        lbl = np.full((1, n_slots), -1, np.int64)
        if points:
            pts[0, : len(points)] = image_to_model(np.array([[p.y, p.x] for p in points]), roi, size)
            lbl[0, : len(points)] = [1 if p.positive else 0 for p in points]
        kw: dict = {"points": torch.from_numpy(pts).to(dev), "point_labels": torch.from_numpy(lbl).to(dev)}
        box_t = box_to_model(box.as_tuple(), roi, size) if box is not None else np.zeros(4)
        kw["boxes"] = torch.tensor(box_t[None], dtype=torch.float32, device=dev)
        kw["has_box"] = torch.tensor([box is not None], device=dev)
        if model.structure_embed is not None:
            kw["structure"] = torch.tensor([model.structure_index(structure)], device=dev)
        low = 4 * self.config.embed_size
        if mask_logits is not None:
            kw["mask_inputs"] = torch.as_tensor(np.asarray(mask_logits[1], dtype=np.float32), device=dev).view(1, 1, low, low)
        elif mask_prompt is not None:
            m = torch.from_numpy(np.ascontiguousarray(mask_prompt, dtype=np.float32)).to(dev)[None, None]
            kw["mask_inputs"] = mask_to_prompt_logits(crop_rois(m, torch.tensor(roi[None], dtype=torch.float32, device=dev), low))
        sparse, dense = model.embed_prompts(1, **kw)
        masks, iou = model.decode(emb, sparse, dense)
        h, w = self._shape
        rois_t = torch.tensor(roi[None], dtype=torch.float32, device=dev)
        thr = mask_thresholds(self.loaded, self.modality).get(str(structure), 0.0)
        if multimask:
            full = paste_logits(masks[:, 1:], rois_t, h, w)[0]
            scores = iou[0, 1:].float()
            best = int(torch.argmax(scores))
            cands = ((full > thr).cpu().numpy(), scores.clamp(0, 1).cpu().numpy())
            return Prediction(cands[0][best], float(cands[1][best]), masks[0, 1 + best].float().cpu().numpy(), tuple(roi.tolist()), cands)
        full = paste_logits(masks[:, :1], rois_t, h, w)[0, 0]
        return Prediction((full > thr).cpu().numpy(), float(iou[0, 0].clamp(0, 1)), masks[0, 0].float().cpu().numpy(), tuple(roi.tolist()))

    def _check_prompt_inside(self, box: Box | None, points: Sequence[Point]) -> None:
        h, w = self._shape
        for p in points:
            if not (0 <= p.y <= h - 1 and 0 <= p.x <= w - 1):
                raise PromptError(f"point (y={p.y}, x={p.x}) is outside the {h}x{w} slice")
        if box is not None and (box.y1 < 0 or box.x1 < 0 or box.y0 > h - 1 or box.x0 > w - 1):
            raise PromptError(f"box {box.as_tuple()} lies outside the {h}x{w} slice")


def _checked_region(region, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``region`` as an inclusive (row0, col0, row1, col1) tuple inside a slice of ``shape``,
    None for None; PromptError for anything else (the reader and the session clip and check a
    file's region first: :func:`medseg.io.us_region.clip_box`)."""
    if region is None:
        return None
    try:
        box = tuple(int(v) for v in region)
        ok = len(box) == 4 and all(float(v) == b for v, b in zip(region, box, strict=True))
    except (TypeError, ValueError, OverflowError):  # not numbers, of another length, inf
        ok = False
    h, w = shape
    if not ok or not (0 <= box[0] <= box[2] <= h - 1 and 0 <= box[1] <= box[3] <= w - 1):
        raise PromptError(f"region must be (row0, col0, row1, col1), whole pixel indices inside the {h}x{w} slice, "
                          f"start <= end (inclusive), got {region!r}")
    return box  # type: ignore[return-value]


def _region_roi(region: tuple[int, int, int, int]) -> np.ndarray:
    """The square ROI that shows an ultrasound region: anchored at its top-left corner, side =
    its longest side (what :func:`medseg.preprocess.full_image_roi` is to a whole slice)."""
    r0, c0, r1, c1 = region
    side = float(max(r1 - r0 + 1, c1 - c0 + 1))
    return np.array([float(c0), float(r0), c0 + side, r0 + side])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a 2-D mask (empty in, empty out)."""
    from scipy import ndimage

    if not mask.any():
        return mask
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))

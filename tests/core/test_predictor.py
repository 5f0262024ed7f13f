"""The slice predictor: prompts in voxel indices, ROI zoom, cache, errors."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import PromptError
from medseg.predictor import SlicePredictor
from medseg.preprocess import normalize_intensity
from medseg.types import Box, Point


def _dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture()
def pred_lv(model, phantom):
    img = normalize_intensity(phantom.image.array, "MR")
    t, z = 0, 2
    p = SlicePredictor(model)
    p.set_image(img[t, z])
    return p, phantom.labels[t, z]


@pytest.mark.parametrize("name, value", [("lv", 1), ("myo", 2), ("rv", 3)])
def test_box_prompt_segments_the_structure(pred_lv, name, value):
    p, lab = pred_lv
    gt = lab == value
    out = p.predict(box=Box.from_mask(gt), structure=name)
    assert out.mask.shape == gt.shape and out.mask.dtype == bool
    assert _dice(out.mask, gt) > 0.8
    assert 0.0 <= out.score <= 1.0


def test_click_prompt_finds_the_lv(pred_lv):
    p, lab = pred_lv
    gt = lab == 1
    ys, xs = np.nonzero(gt)
    out = p.predict(points=[Point(float(np.median(ys)), float(np.median(xs)))], structure="lv")
    assert _dice(out.mask, gt) > 0.8


def test_embedding_is_cached_per_roi(pred_lv):
    p, lab = pred_lv
    box = Box.from_mask(lab == 1)
    p.predict(box=box, structure="lv")
    misses = p.cache.misses
    p.predict(box=box, structure="lv")
    p.predict(box=box, points=[Point(box.y0 + 3, box.x0 + 3, False)], structure="lv")
    assert p.cache.misses == misses


def test_transposed_image_gives_transposed_mask(model, phantom):
    """The (y, x) -> model (x, y) conversion happens in one place: transposing the slice and
    the prompt transposes the result."""
    img = normalize_intensity(phantom.image.array, "MR")[0, 2]
    gt = phantom.labels[0, 2] == 1
    b = Box.from_mask(gt)
    p = SlicePredictor(model)
    p.set_image(img)
    m1 = p.predict(box=b, structure="lv").mask
    p.set_image(np.ascontiguousarray(img.T))
    m2 = p.predict(box=Box(b.x0, b.y0, b.x1, b.y1), structure="lv").mask
    assert _dice(m1, m2.T) > 0.9


def test_errors(model):
    p = SlicePredictor(model)
    with pytest.raises(PromptError, match="set_image"):
        p.predict(box=Box(1, 1, 5, 5))
    p.set_image(np.zeros((32, 40), np.float32))
    with pytest.raises(PromptError, match="outside"):
        p.predict(points=[Point(50, 3)])
    with pytest.raises(PromptError, match="outside"):
        p.predict(box=Box(40, 45, 60, 70))
    with pytest.raises(PromptError):
        p.set_image(np.zeros((2, 3, 4), np.float32))


def test_multimask_returns_three_candidates(pred_lv):
    p, lab = pred_lv
    ys, xs = np.nonzero(lab == 1)
    out = p.predict(points=[Point(float(ys[0]), float(xs[0]))], multimask=True)
    masks, scores = out.candidates
    assert masks.shape == (3, *lab.shape) and scores.shape == (3,)
    assert out.score == pytest.approx(float(scores.max()))


def test_disk_cache_reuses_and_refuses_foreign_entries(model, phantom, tmp_path):
    """Embeddings persist on disk under a signature; a tampered entry is recomputed."""
    import torch
    from safetensors.torch import save_file

    from medseg.embeddings import EmbeddingCache

    img = normalize_intensity(phantom.image.array, "MR")[0, 2]
    box = Box.from_mask(phantom.labels[0, 2] == 1)
    p1 = SlicePredictor(model, cache=EmbeddingCache(disk_dir=tmp_path))
    p1.set_image(img, key="study/0/2")
    ref = p1.predict(box=box, structure="lv")
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    p2 = SlicePredictor(model, cache=EmbeddingCache(disk_dir=tmp_path))
    p2.set_image(img, key="study/0/2")
    assert np.array_equal(p2.predict(box=box, structure="lv").mask, ref.mask)
    assert p2.cache.hits >= 1 and p2.cache.misses == 0
    save_file({"embedding": torch.zeros(1, 256, 16, 16)}, str(files[0]), metadata={"signature": "someone else's"})
    p3 = SlicePredictor(model, cache=EmbeddingCache(disk_dir=tmp_path))
    p3.set_image(img, key="study/0/2")
    assert np.array_equal(p3.predict(box=box, structure="lv").mask, ref.mask)
    assert p3.cache.misses == 1


def test_the_fitted_lv_threshold_applies_to_the_default_alone(pred_lv, model, phantom, monkeypatch):
    """medseg/_mask_thresholds.json: the default draws the LV blood pool a little inside the
    experts' contour; its fitted logit threshold (-1) grows the LV mask (a superset of the
    0-threshold mask), and applies to that model only, never to another or with an adapter."""
    import dataclasses

    from medseg import predictor
    from medseg.session import Session

    assert predictor.mask_thresholds(model) == {"lv": -1.0}
    assert Session(phantom.image, model, "lv=1").provenance()["mask_thresholds"] == {"lv": -1.0}  # recorded for replays
    assert predictor.mask_thresholds(dataclasses.replace(model, sha256="0" * 64)) == {}
    assert predictor.mask_thresholds(dataclasses.replace(model, adapter_sha256="1" * 64)) == {}
    # the modalities it was checked on (MR, echo, unknown); not CT (axial LV opens into atrium and aorta)
    assert predictor.mask_thresholds(model, "MR") == predictor.mask_thresholds(model, "OT") == {"lv": -1.0}
    assert predictor.mask_thresholds(model, "CT") == {}
    ct = phantom.image.with_array(phantom.image.array - 500.0, modality="CT")  # values below 0, as Hounsfield units have
    assert Session(ct, model, "lv=1").provenance()["mask_thresholds"] == {}
    assert SlicePredictor(model, modality="CT").modality == "CT"
    p, lab = pred_lv
    box = Box.from_mask(lab == 1)
    fitted = p.predict(box=box, structure="lv").mask
    monkeypatch.setattr(predictor, "THRESHOLD_OVERRIDE", {})
    plain = p.predict(box=box, structure="lv").mask
    assert (plain & ~fitted).sum() == 0 and fitted.sum() > plain.sum()
    myo_plain = p.predict(box=Box.from_mask(lab == 2), structure="myo").mask
    monkeypatch.setattr(predictor, "THRESHOLD_OVERRIDE", None)
    assert np.array_equal(p.predict(box=Box.from_mask(lab == 2), structure="myo").mask, myo_plain)  # other structures: 0

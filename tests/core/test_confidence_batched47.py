"""The confidence decodes the jittered boxes of several slices in one decoder call (issue #8:
its cost next to the segmentation), with the signals of one call per slice."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from medseg import confidence
from medseg.confidence import K_JITTER, _jittered_boxes, score_session
from medseg.labels import LabelMap
from medseg.predictor import MIN_POINT_SLOTS, mask_thresholds
from medseg.preprocess import box_to_model
from medseg.prompt_file import prompts_from_labels
from medseg.roi_ops import crop_rois
from medseg.segment import _run_prompts
from medseg.session import Session

LM = LabelMap.parse("lv=1,myo=2,rv=3")


def _per_slice_signals(session, structure, t, z):
    """The signals as computed before batching: one decoder call per slice, the K boxes sharing
    the slice's (1, C, E, E) embedding (``SlicePredictor.predict_boxes`` then)."""
    mask = session.labels[t, z] == session.structure(structure).value
    if mask.sum() < confidence.MIN_SLICE_PX:
        return None
    res = session.results.get((structure, t, z))
    session._set_slice(t, z)
    p = session.predictor
    boxes = _jittered_boxes(mask, K_JITTER, seed=zlib.crc32(f"{structure}/{t}/{z}".encode()))
    roi = np.asarray(res.roi if res is not None else p._box_roi(boxes[0]), dtype=np.float64)
    model, size, k = p.model, p.config.img_size, len(boxes)
    with torch.inference_mode():
        emb = p.embedding(roi)
        kw = {"points": torch.zeros(k, MIN_POINT_SLOTS, 2), "point_labels": torch.full((k, MIN_POINT_SLOTS), -1),
              "boxes": torch.tensor(np.stack([box_to_model(b.as_tuple(), roi, size) for b in boxes]), dtype=torch.float32),
              "has_box": torch.ones(k, dtype=torch.bool), "structure": torch.full((k,), model.structure_index(structure))}
        sparse, dense = model.embed_prompts(k, **kw)
        masks, _ = model.decode(emb, sparse, dense)
        low = (masks[:, 0] > mask_thresholds(p.loaded, p.modality).get(structure, 0.0)).numpy()
        ref = (crop_rois(torch.from_numpy(mask.astype(np.float32))[None, None], torch.tensor(roi[None], dtype=torch.float32), low.shape[-1])[0, 0] > 0.5).numpy()
    dice = 2 * (low & ref[None]).sum(axis=(1, 2)) / np.maximum(low.sum(axis=(1, 2)) + ref.sum(), 1)
    if res is None:
        return float(np.mean(dice)), float(np.mean(dice)), int(mask.sum())
    drawn = np.asarray(res.logits) > 0
    iou = float(res.score) * float(2 * (drawn & ref).sum() / max(int(drawn.sum() + ref.sum()), 1))
    return iou, float(np.mean(dice)), int(mask.sum())


@pytest.fixture(scope="module")
def study(model, phantom):
    """ED + ES of the phantom segmented as ``medseg evaluate --prompt key-slice`` does."""
    vol = phantom.image.with_array(phantom.image.array[:2], frame_times_s=None)
    s = Session(vol, model, LM, undo=False)
    _run_prompts(s, prompts_from_labels(phantom.labels[:2], LM, key_slice=True), False, "z", None)
    return s


def _count_decodes(monkeypatch, model) -> list[int]:
    calls: list[int] = []
    real = type(model.model).decode

    def counted(self, embeddings, sparse, dense):
        calls.append(sparse.shape[0])
        return real(self, embeddings, sparse, dense)

    monkeypatch.setattr(type(model.model), "decode", counted)
    return calls


def test_batched_signals_match_one_decode_per_slice(study, model, monkeypatch):
    keys = [(n, t, z) for n in study.structures for t, z in study.iter_structure_slices(n)]
    assert len(keys) > 3 * confidence.DECODE_BATCH  # several chunks, structures and frames mixed in them
    want = {k: _per_slice_signals(study, *k) for k in keys}
    calls = _count_decodes(monkeypatch, model)
    rep = score_session(study)
    got = {(s.structure, s.frame, s.slice): (s.iou_pred, s.agreement, s.area_px) for s in rep.slices}
    assert got.keys() == {k for k, v in want.items() if v is not None}
    assert max(abs(a - b) for k in got for a, b in zip(got[k][:2], want[k][:2])) < 1e-4
    assert all(got[k][2] == want[k][2] for k in got)
    # the cost: one decoder call per DECODE_BATCH slices (it was one per slice), K boxes each
    assert len(calls) == -(-len(keys) // confidence.DECODE_BATCH) < len(keys)
    assert sum(calls) == K_JITTER * len(got)


def test_batched_in_threads_with_uncached_embeddings_and_unscored_slices(study, model, monkeypatch):
    """Worker threads (each its own predictor), embeddings no longer cached (encoded on the
    way), a painted slice (no slice result) and a speck (None) inside a chunk: still the
    per-slice signals, in order, one progress tick per slice."""
    s = Session(study.volume, model, LM, undo=False)
    s.labels[:] = study.labels
    s.results.update(study.results)
    t, z = next(study.iter_structure_slices("lv"))
    s.results.pop(("lv", t, z))  # painted: its IoU is the agreement
    t, z = list(study.iter_structure_slices("rv"))[-1]
    rv = np.argwhere(s.labels[t, z] == 3)
    s.labels[t, z][tuple(rv[1:].T)] = 0  # one rv pixel left: a speck
    keys = [(n, tt, zz) for n in s.structures for tt, zz in s.iter_structure_slices(n)]
    want = [_per_slice_signals(s, *k) for k in keys]
    s.predictor.cache.clear()
    monkeypatch.setattr(type(s), "spare_threads", lambda self: 2)
    ticks = []
    got = confidence._all_signals(s, keys, ticks.append)
    assert ticks == list(range(len(keys)))
    assert [g is None for g in got] == [w is None for w in want] and any(w is None for w in want)
    assert max(abs(a - b) for g, w in zip(got, want) if w is not None for a, b in zip(g[:2], w[:2])) < 1e-4


def test_predict_boxes_is_a_batch_of_one(study):
    t, z = next(study.iter_structure_slices("myo"))
    mask = study.labels[t, z] == 2
    res = study.results[("myo", t, z)]
    study._set_slice(t, z)
    p = study.predictor
    boxes = _jittered_boxes(mask, 3, seed=1)
    low, ref = p.predict_boxes(boxes, structure="myo", roi=res.roi, reference=mask)
    roi = np.asarray(res.roi, dtype=np.float64)
    (alone,) = p.decode_box_prompts([(p.embedding(roi), roi, boxes, "myo")])
    assert low.shape == (3, *ref.shape) and low.dtype == bool and np.array_equal(low, alone)

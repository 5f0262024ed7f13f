"""ROI crop/paste and the coordinate conventions shared by training and inference."""

from __future__ import annotations

import numpy as np
import torch

from medseg.preprocess import box_to_continuous, box_to_model, full_image_roi, image_to_model, normalize_intensity, roi_from_box
from medseg.roi_ops import crop_rois, paste_logits


def test_crop_then_paste_recovers_a_mask():
    h, w = 90, 120
    m = np.zeros((h, w), np.float32)
    m[30:60, 40:85] = 1
    roi = roi_from_box(box_to_continuous(30, 40, 59, 84), margin=0.25)
    crop = crop_rois(torch.from_numpy(m)[None, None], torch.tensor(roi[None], dtype=torch.float32), 64)
    logits = (crop - 0.5) * 10
    back = paste_logits(logits, torch.tensor(roi[None], dtype=torch.float32), h, w)[0, 0].numpy() > 0
    assert (back == (m > 0)).mean() > 0.995


def test_full_image_roi_is_identity_at_native_size():
    img = torch.rand(1, 1, 64, 64)
    crop = crop_rois(img, torch.tensor(full_image_roi(64, 64)[None], dtype=torch.float32), 64)
    assert torch.allclose(crop, img, atol=1e-5)


def test_pixel_centres_map_consistently():
    roi = np.array([10.0, 20.0, 74.0, 84.0])  # 64 px square -> 256 model px (x4)
    xy = image_to_model(np.array([[20.0, 10.0], [83.0, 73.0]]), roi, 256)  # (y, x)
    assert np.allclose(xy[0], [1.5, 1.5]) and np.allclose(xy[1], [253.5, 253.5])
    b = box_to_model((20, 10, 83, 73), roi, 256)  # the box covers the whole ROI
    assert np.allclose(b, [0, 0, 255, 255])


def test_box_maps_like_the_training_tight_box():
    """Inference boxes must be what training showed the model: the tight box of the mask
    resampled onto the model grid (an edge-pixel-centre mapping is ~1.5 px small at x4)."""
    from medseg.training.prompts import tight_boxes

    rng = np.random.default_rng(0)
    errs = []
    for _ in range(40):
        h, w = 120, 130
        y0, x0 = rng.integers(10, 50, 2)
        y1, x1 = y0 + rng.integers(8, 50), x0 + rng.integers(8, 50)
        m = np.zeros((h, w), np.float32)
        m[y0 : y1 + 1, x0 : x1 + 1] = 1
        roi = roi_from_box(box_to_continuous(y0, x0, y1, x1), margin=rng.uniform(0.1, 0.4)) + rng.uniform(-3, 3)
        crop = crop_rois(torch.from_numpy(m)[None, None], torch.tensor(roi[None], dtype=torch.float32), 256)
        tb, ok = tight_boxes(crop > 0.5)
        assert ok.all()
        errs.append(box_to_model((y0, x0, y1, x1), roi, 256) - tb[0].numpy())
    errs = np.array(errs)
    assert np.abs(errs).max() <= 1.0  # rounding of the grid only
    assert np.abs(errs.mean(0)).max() < 0.25  # and no bias on any side


def test_roi_has_min_side_and_margin():
    r = roi_from_box(np.array([0.0, 0.0, 4.0, 4.0]), margin=0.25, min_side=32)
    assert np.isclose(r[2] - r[0], 32) and np.isclose(r[3] - r[1], 32)
    r = roi_from_box(np.array([0.0, 0.0, 100.0, 50.0]), margin=0.25)
    assert np.isclose(r[2] - r[0], 150)


def test_normalize_intensity_ct_window_and_percentiles():
    ct = np.array([-1000.0, -250.0, 250.0, 750.0, 2000.0])
    assert np.allclose(normalize_intensity(ct, "CT"), [0, 0, 0.5, 1, 1])
    mr = np.linspace(0, 1000, 1001)
    n = normalize_intensity(mr, "MR")
    assert n.min() == 0 and n.max() == 1 and n.dtype == np.float32
    assert normalize_intensity(np.array([1.0, np.nan, 2.0]), "MR")[1] == 0

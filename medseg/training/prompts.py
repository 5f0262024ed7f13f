"""Prompt simulation as users prompt, batched on the training device.

Each sample gets one *mode*:
  box        ROI from a jittered box, box prompt (+ sometimes a click);
  roi_points ROI from a jittered box, clicks only (the second stage of click prompting);
  full_points the whole slice, clicks only (the first stage of click prompting);
  auto       the whole slice, structure token only (zero-click; the target may be empty);
  mask       propagation: the neighbouring slice's mask (or a perturbed own mask) as mask
             prompt, with its box; ROI from that mask. The target may be empty (structure ended).
A second pass adds a correction click on the error region with the first pass's logits as
the mask prompt (SAM's iterative training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..predictor import MIN_POINT_SLOTS, mask_to_prompt_logits
from ..roi_ops import crop_rois
from .data import SliceBank

MODES = ("box", "roi_points", "full_points", "auto", "mask")
MODE_PROBS = (0.38, 0.14, 0.10, 0.16, 0.22)
N_POINTS = MIN_POINT_SLOTS  # point-token slots per prompt (padding label -1), as at inference


@dataclass
class Batch:
    """Model-ready batch. images (B,1,S,S) in [0,1]; target (B,1,S,S) float {0,1};
    points (B,P,2) model (x, y); point_labels (B,P) 1/0/-1; boxes (B,4); has_box (B,);
    structure (B,) long (0 generic); mask_inputs (B,1,4E,4E); has_mask (B,); multimask (B,);
    mode (B,) long index into MODES."""

    images: torch.Tensor
    target: torch.Tensor
    points: torch.Tensor
    point_labels: torch.Tensor
    boxes: torch.Tensor
    has_box: torch.Tensor
    structure: torch.Tensor
    mask_inputs: torch.Tensor
    has_mask: torch.Tensor
    multimask: torch.Tensor
    mode: torch.Tensor

    def prompts(self) -> dict[str, torch.Tensor]:
        return dict(points=self.points, point_labels=self.point_labels, boxes=self.boxes, has_box=self.has_box,
                    structure=self.structure, mask_inputs=self.mask_inputs, has_mask=self.has_mask)


def _rand(b: int, dev, lo: float = 0.0, hi: float = 1.0, g=None) -> torch.Tensor:
    return torch.rand(b, device=dev, generator=g) * (hi - lo) + lo


def _pick(weights: torch.Tensor, g=None) -> torch.Tensor:
    """One index per row of non-negative (B, K) weights (rows of zeros pick uniformly)."""
    w = weights.float() + 1e-6
    return torch.multinomial(w, 1, generator=g).squeeze(1)


def _choose(bank: SliceBank, idx: torch.Tensor, mode: torch.Tensor, g=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: structure k, prompt-source slice, whether the source is a neighbour, and
    the (possibly changed) mode. Mask-mode samples may pick a structure present only in the
    neighbour, so the model also learns where a structure ends (empty target)."""
    dev = idx.device
    present, labelled = bank.present[idx], bank.labelled[idx]
    go_prev = _rand(len(idx), dev, g=g) < 0.5
    nb = torch.where(go_prev, bank.prev[idx], bank.next[idx])
    nb = torch.where(nb >= 0, nb, torch.where(go_prev, bank.next[idx], bank.prev[idx]))
    nb_present = bank.present[nb.clamp(min=0)] & (nb >= 0)[:, None]
    mask_mode = mode == MODES.index("mask")
    usable = present | (mask_mode[:, None] & nb_present)
    mode = torch.where(~usable.any(1), torch.full_like(mode, MODES.index("auto")), mode)
    auto = mode == MODES.index("auto")
    mask_mode = mode == MODES.index("mask")
    w = present.float() + (mask_mode[:, None] & nb_present).float() * 0.5
    w = torch.where(auto[:, None], labelled.float() * 0.3 + present.float(), w)
    k = _pick(w, g)
    is_nb = mask_mode & (nb >= 0) & nb_present.gather(1, k[:, None]).squeeze(1)
    src = torch.where(is_nb, nb, idx)
    return k, src, is_nb, mode


def _rois(bank: SliceBank, src: torch.Tensor, k: torch.Tensor, mode: torch.Tensor, g=None) -> torch.Tensor:
    """(B, 4) square ROIs: jittered box ROIs for ROI modes, the whole canvas otherwise."""
    b, dev, s = len(src), src.device, bank.size
    box = bank.bbox[src, k]
    w = (box[:, 2] - box[:, 0]).clamp(min=1)
    h = (box[:, 3] - box[:, 1]).clamp(min=1)
    margin = _rand(b, dev, 0.08, 0.45, g)
    side = torch.maximum(w, h) * (1 + 2 * margin) * torch.exp(torch.randn(b, device=dev, generator=g) * 0.05)
    side = side.clamp(min=32.0)
    cx = (box[:, 0] + box[:, 2]) / 2 + torch.randn(b, device=dev, generator=g) * 0.06 * side
    cy = (box[:, 1] + box[:, 3]) / 2 + torch.randn(b, device=dev, generator=g) * 0.06 * side
    roi = torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)
    full = torch.tensor([0.0, 0.0, float(s), float(s)], device=dev).expand(b, 4)
    whole = (mode == MODES.index("full_points")) | (mode == MODES.index("auto"))
    return torch.where(whole[:, None], full, roi)


def _flip(x: torch.Tensor, fh: torch.Tensor, fv: torch.Tensor, tr: torch.Tensor) -> torch.Tensor:
    x = torch.where(fh.view(-1, 1, 1, 1), x.flip(-1), x)
    x = torch.where(fv.view(-1, 1, 1, 1), x.flip(-2), x)
    return torch.where(tr.view(-1, 1, 1, 1), x.transpose(-1, -2), x)


def tight_boxes(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,1,S,S) bool -> SAM-style index XYXY boxes (B,4) and non-empty flags (B,)."""
    m = mask[:, 0]
    s = m.shape[-1]
    ar = torch.arange(s, device=m.device, dtype=torch.float32)
    rows, cols = m.any(2), m.any(1)
    ok = rows.any(1)
    big = torch.tensor(1e9, device=m.device)
    y0 = torch.where(rows, ar, big).amin(1)
    y1 = torch.where(rows, ar, -big).amax(1)
    x0 = torch.where(cols, ar, big).amin(1)
    x1 = torch.where(cols, ar, -big).amax(1)
    box = torch.stack([x0, y0, x1, y1], 1)
    return torch.where(ok[:, None], box, torch.zeros_like(box)), ok


def jitter_boxes(box: torch.Tensor, size: int, g=None, frac: float = 0.05, max_px: float = 12.0) -> torch.Tensor:
    """SAM-style noise on each coordinate: N(0, frac x side), capped at max_px."""
    w = (box[:, 2] - box[:, 0]).clamp(min=1)
    h = (box[:, 3] - box[:, 1]).clamp(min=1)
    scale = torch.stack([w, h, w, h], 1) * frac
    noise = (torch.randn(box.shape, device=box.device, generator=g) * scale).clamp(-max_px, max_px)
    out = box + noise
    out = torch.stack([torch.minimum(out[:, 0], out[:, 2]), torch.minimum(out[:, 1], out[:, 3]),
                       torch.maximum(out[:, 0], out[:, 2]), torch.maximum(out[:, 1], out[:, 3])], 1)
    return out.clamp(0, size - 1)


def sample_pixels(weight: torch.Tensor, g=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pixel per sample from (B, S, S) non-negative weights -> (x, y) (B, 2) and ok (B,)."""
    b, s, _ = weight.shape
    flat = weight.reshape(b, -1).float()
    ok = flat.sum(1) > 0
    flat = torch.where(ok[:, None], flat, torch.ones_like(flat))
    i = torch.multinomial(flat, 1, generator=g).squeeze(1)
    return torch.stack([(i % s).float(), (i // s).float()], 1), ok


def erode(mask: torch.Tensor, k: int) -> torch.Tensor:
    """Binary erosion of (B,1,S,S) float masks with a k x k square."""
    return 1.0 - F.max_pool2d(1.0 - mask, k, stride=1, padding=k // 2)


def dilate(mask: torch.Tensor, k: int) -> torch.Tensor:
    return F.max_pool2d(mask, k, stride=1, padding=k // 2)


def augment_intensity(x: torch.Tensor, g=None) -> torch.Tensor:
    """Per-sample gamma, contrast/brightness, bias field, blur and noise on (B,1,S,S) [0,1]."""
    b, dev = x.shape[0], x.device
    gamma = torch.exp(torch.randn(b, 1, 1, 1, device=dev, generator=g) * 0.25)
    x = x.clamp(0, 1) ** gamma
    bias = F.interpolate(torch.randn(b, 1, 4, 4, device=dev, generator=g) * 0.12, size=x.shape[-2:], mode="bilinear", align_corners=False)
    use_bias = (_rand(b, dev, g=g) < 0.4).view(b, 1, 1, 1)
    x = torch.where(use_bias, x * torch.exp(bias), x)
    blur = (_rand(b, dev, g=g) < 0.15).view(b, 1, 1, 1)
    x = torch.where(blur, F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False), x)
    a = _rand(b, dev, 0.75, 1.3, g).view(b, 1, 1, 1)
    c = _rand(b, dev, -0.08, 0.08, g).view(b, 1, 1, 1)
    x = (x - 0.5) * a + 0.5 + c
    sigma = _rand(b, dev, 0.0, 0.05, g).view(b, 1, 1, 1) * (_rand(b, dev, g=g) < 0.5).view(b, 1, 1, 1)
    x = x + torch.randn(x.shape, device=dev, generator=g) * sigma
    return x.clamp(0, 1)


def sample_batch(bank: SliceBank, idx: torch.Tensor, size: int, embed_size: int, g=None, augment: bool = True,
                 mode: torch.Tensor | None = None, generic_prob: float = 0.15, structure: torch.Tensor | None = None,
                 mode_probs: tuple[float, ...] | None = None) -> Batch:
    """Build a training (or validation, ``augment=False``) batch for slices ``idx``.

    ``mode`` and ``structure`` (0-based index into STRUCTURES) force the per-sample choice
    (validation); the prompt source is then the slice itself. ``mode_probs`` (weights in MODES
    order) replaces MODE_PROBS for the random choice."""
    b, dev = len(idx), idx.device
    if mode is None:
        mode = torch.multinomial(torch.tensor(mode_probs or MODE_PROBS, device=dev), b, replacement=True, generator=g)
    if structure is None:
        k, src, is_nb, mode = _choose(bank, idx, mode, g)
    else:
        k, src, is_nb = structure, idx, torch.zeros(b, dtype=torch.bool, device=dev)
    rois = _rois(bank, src, k, mode, g) if augment else _rois_exact(bank, src, k, mode)
    angles = None
    if augment:
        rot = (_rand(b, dev, g=g) < 0.3) & (mode != MODES.index("auto"))
        angles = torch.where(rot, _rand(b, dev, -0.45, 0.45, g), torch.zeros(b, device=dev))
    img = bank.images[idx].unsqueeze(1).float() / 255.0
    lab_t = (bank.labels[idx] == (k + 1).view(-1, 1, 1)).unsqueeze(1).float()
    lab_s = (bank.labels[src] == (k + 1).view(-1, 1, 1)).unsqueeze(1).float()
    stack = crop_rois(torch.cat([img, lab_t, lab_s], 1), rois, size, batch_index=torch.arange(b, device=dev), angles=angles)
    image, target, srcmask = stack[:, :1], (stack[:, 1:2] > 0.5).float(), (stack[:, 2:3] > 0.5).float()
    if augment:
        fh, fv, tr = (_rand(b, dev, g=g) < 0.5), (_rand(b, dev, g=g) < 0.5), (_rand(b, dev, g=g) < 0.3)
        image, target, srcmask = (_flip(t, fh, fv, tr) for t in (image, target, srcmask))
        image = augment_intensity(image, g)
    return _prompts(image, target, srcmask, is_nb, k, mode, size, embed_size, g, augment, generic_prob)


def _rois_exact(bank: SliceBank, src, k, mode) -> torch.Tensor:
    from ..preprocess import roi_from_box

    boxes = bank.bbox[src, k].cpu().numpy()
    rois = torch.from_numpy(np.stack([roi_from_box(bx) for bx in boxes]).astype(np.float32)).to(src.device)
    full = torch.tensor([0.0, 0.0, float(bank.size), float(bank.size)], device=src.device).expand(len(src), 4)
    whole = (mode == MODES.index("full_points")) | (mode == MODES.index("auto"))
    return torch.where(whole[:, None], full, rois)


def _prompts(image, target, srcmask, is_nb, k, mode, size, embed_size, g, augment, generic_prob) -> Batch:
    b, dev = image.shape[0], image.device
    m = {name: mode == i for i, name in enumerate(MODES)}
    # boxes: from the target (box mode) or from the prompt-source mask (mask mode)
    tb, _ = tight_boxes(target > 0.5)
    sb, _ = tight_boxes(srcmask > 0.5)
    box = torch.where(m["mask"][:, None], sb, tb)
    if augment:
        box = jitter_boxes(box, size, g)
    has_box = m["box"] | (m["mask"] & (_rand(b, dev, g=g) < 0.9))
    # clicks
    n_pos = torch.zeros(b, dtype=torch.long, device=dev)
    n_pos = torch.where(m["roi_points"], torch.randint(1, 4, (b,), device=dev, generator=g), n_pos)
    n_pos = torch.where(m["full_points"], torch.randint(1, 3, (b,), device=dev, generator=g), n_pos)
    if augment:  # a click inside the box on some training samples; validation scores the tight box alone
        n_pos = torch.where(m["box"] & (_rand(b, dev, g=g) < 0.2), torch.ones_like(n_pos), n_pos)
    n_neg = ((m["roi_points"] | m["full_points"]) & (_rand(b, dev, g=g) < 0.4)).long()
    inner = erode(target, 5)
    inner = torch.where(inner.flatten(1).sum(1).view(-1, 1, 1, 1) > 0, inner, target)
    ring = dilate(target, 21) - target
    pts = torch.zeros(b, N_POINTS, 2, device=dev)
    lbl = torch.full((b, N_POINTS), -1, dtype=torch.long, device=dev)
    for j in range(N_POINTS):
        want_pos = j < n_pos
        want_neg = (j >= n_pos) & (j < n_pos + n_neg)
        xy_p, ok_p = sample_pixels(inner[:, 0], g)
        xy_n, ok_n = sample_pixels(ring[:, 0], g)
        use_p, use_n = want_pos & ok_p, want_neg & ok_n
        pts[:, j] = torch.where(use_p[:, None], xy_p, torch.where(use_n[:, None], xy_n, pts[:, j]))
        lbl[:, j] = torch.where(use_p, torch.ones_like(lbl[:, j]), torch.where(use_n, torch.zeros_like(lbl[:, j]), lbl[:, j]))
    # structure token (0 = generic); auto always names its structure
    generic = (_rand(b, dev, g=g) < generic_prob) & ~m["auto"]
    generic = generic | ((m["roi_points"] | m["full_points"]) & (_rand(b, dev, g=g) < 0.15))
    structure = torch.where(generic, torch.zeros_like(k), k + 1)
    multimask = generic & (m["roi_points"] | m["full_points"]) & (n_pos == 1) & (n_neg == 0)
    # mask prompt (propagation): neighbour mask, or own mask dilated/eroded/shifted
    low = 4 * embed_size
    small = F.adaptive_avg_pool2d(srcmask, low)
    if augment:
        kk = int(torch.randint(1, 3, (1,)).item()) * 2 + 1  # host RNG: no device sync
        pert = torch.where((_rand(b, dev, g=g) < 0.5).view(-1, 1, 1, 1), dilate(small, kk), erode(small, kk))
        small = torch.where(is_nb.view(-1, 1, 1, 1), small, pert)
    mask_inputs = mask_to_prompt_logits(small)
    return Batch(image, target, pts, lbl, box, has_box, structure, mask_inputs, m["mask"].clone(), multimask, mode)


def correction_clicks(batch: Batch, low_logits: torch.Tensor, g=None) -> Batch:
    """Second pass: add one click on the error region of ``low_logits`` (B,1,h,w) and use those
    logits as the mask prompt (SAM's iterative correction)."""
    size = batch.images.shape[-1]
    pred = F.interpolate(low_logits.float(), size=(size, size), mode="bilinear", align_corners=False) > 0
    tgt = batch.target > 0.5
    err = (pred ^ tgt).float()
    core = erode(err, 3)
    core = torch.where(core.flatten(1).sum(1).view(-1, 1, 1, 1) > 0, core, err)
    xy, ok = sample_pixels(core[:, 0], g)
    xi, yi = xy[:, 0].long(), xy[:, 1].long()
    positive = tgt[torch.arange(len(xi), device=xi.device), 0, yi, xi]
    lab = torch.where(ok, positive.long(), torch.full_like(xi, -1))
    points = torch.cat([batch.points, xy.unsqueeze(1)], 1)
    labels = torch.cat([batch.point_labels, lab.unsqueeze(1)], 1)
    ones = torch.ones_like(batch.has_mask)
    return Batch(batch.images, batch.target, points, labels, batch.boxes, batch.has_box, batch.structure,
                 low_logits.detach().float(), ones, torch.zeros_like(batch.multimask), batch.mode)


"""Training data held on the training device: packed real slices + synthetic phantoms.

All slices live as uint8 (N, S, S) tensors on the device; per-slice structure presence and
boxes are precomputed, so a batch is sampled, cropped and augmented without leaving the GPU
(the training notes measured the data path, not the model, as the GPU bottleneck).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..labels import DEFAULT_LABEL_MAP

STRUCTURES: tuple[str, ...] = tuple(DEFAULT_LABEL_MAP.names)  # lv, myo, rv, la, ra, aorta, pa
K = len(STRUCTURES)

# Relative sampling weight per dataset (of training slices), see docs/training.md; "own": a
# lab's pairs (medseg train --pairs), beside phantoms at the shipped recipe's phantom share.
DATASET_WEIGHTS = {"acdc": 0.44, "camus": 0.27, "phantom": 0.16, "sunnybrook": 0.05, "hvsmr": 0.04, "siue": 0.03, "mnms2": 0.01,
                   "own": 0.84}


@dataclass
class SliceBank:
    """Slices on one device. Shapes: N slices, S canvas, K structures."""

    images: torch.Tensor  # (N, S, S) uint8
    labels: torch.Tensor  # (N, S, S) uint8, default label map
    prev: torch.Tensor  # (N,) long, -1 none
    next: torch.Tensor  # (N,) long
    labelled: torch.Tensor  # (N, K) bool: structures annotated in this slice's dataset
    present: torch.Tensor  # (N, K) bool
    bbox: torch.Tensor  # (N, K, 4) float continuous XYXY (0 when absent)
    dataset: list[str]  # per-slice dataset name
    split: torch.Tensor  # (N,) 0 train, 1 val
    volume: list[str]
    train_weights: torch.Tensor | None = None
    source: dict | None = None  # the pack's meta "source": a lab's own pairs (medseg train --pairs)

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def weights(self, split: int = 0) -> torch.Tensor:
        """Sampling weights: each dataset gets its DATASET_WEIGHTS share of the batch."""
        names = np.array(self.dataset)
        w = np.zeros(len(names))
        sel = self.split.cpu().numpy() == split
        for ds, share in DATASET_WEIGHTS.items():
            m = (names == ds) & sel
            if m.any():
                w[m] = share / m.sum()
        return torch.tensor(w / max(w.sum(), 1e-12), dtype=torch.float32, device=self.images.device)


def presence_and_boxes(labels: torch.Tensor, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S, S) uint8 labels -> present (N, K) bool and continuous XYXY boxes (N, K, 4)."""
    n, s, _ = labels.shape
    present = torch.zeros(n, K, dtype=torch.bool, device=labels.device)
    boxes = torch.zeros(n, K, 4, dtype=torch.float32, device=labels.device)
    ar = torch.arange(s, device=labels.device, dtype=torch.float32)
    for i in range(0, n, chunk):
        lab = labels[i : i + chunk]
        for k in range(K):
            m = lab == (k + 1)
            rows, cols = m.any(dim=2), m.any(dim=1)
            ok = rows.any(dim=1)
            big = torch.tensor(1e9, device=labels.device)
            y0 = torch.where(rows, ar, big).amin(1)
            y1 = torch.where(rows, ar, -big).amax(1) + 1
            x0 = torch.where(cols, ar, big).amin(1)
            x1 = torch.where(cols, ar, -big).amax(1) + 1
            present[i : i + chunk, k] = ok
            boxes[i : i + chunk, k] = torch.where(ok[:, None], torch.stack([x0, y0, x1, y1], 1), torch.zeros(1, device=labels.device))
    return present, boxes


def bank_from_pack(pack_path: str | Path | None, n_phantoms: int, seed: int, device: str | torch.device, canvas: int = 256) -> SliceBank:
    """Load a pack (see :mod:`medseg.training.pack`) and add ``n_phantoms`` synthetic slices."""
    from .pack import STRUCT_BITS, load_pack

    imgs, labs, prev, nxt, lab_bits, ds, split, vols = [], [], [], [], [], [], [], []
    source = None
    if pack_path is not None:
        d = load_pack(pack_path)
        source = d["meta"].get("source")
        if d["meta"]["canvas"] != canvas:
            raise ValueError(f"pack canvas {d['meta']['canvas']} != model input {canvas}")
        names = d["meta"]["volumes"]
        imgs.append(d["images"])
        labs.append(d["labels"])
        prev.append(d["prev"].astype(np.int64))
        nxt.append(d["next"].astype(np.int64))
        lab_bits.append(d["labelled"])
        vols += [names[v] for v in d["volume"]]
        ds += [names[v].split("/")[0] for v in d["volume"]]
        split.append(d["split"])
    if n_phantoms > 0:
        pi, pl, pm = _phantoms(n_phantoms, seed, canvas)
        offset = sum(len(a) for a in imgs)
        imgs.append(pi)
        labs.append(pl)
        prev.append(np.full(len(pi), -1, np.int64))
        nxt.append(np.full(len(pi), -1, np.int64))
        lab_bits.append(pm)
        vols += [f"phantom/{offset + i}" for i in range(len(pi))]
        ds += ["phantom"] * len(pi)
        split.append(np.zeros(len(pi), np.uint8))
    if not imgs:
        raise ValueError("no training data: give a pack file and/or phantoms")
    dev = torch.device(device)
    labels = torch.from_numpy(np.concatenate(labs)).to(dev)
    present, boxes = presence_and_boxes(labels)
    bits = torch.from_numpy(np.concatenate(lab_bits).astype(np.int64)).to(dev)
    labelled = torch.stack([(bits & STRUCT_BITS[s]) > 0 for s in STRUCTURES], dim=1)
    return SliceBank(
        images=torch.from_numpy(np.concatenate(imgs)).to(dev),
        labels=labels,
        prev=torch.from_numpy(np.concatenate(prev)).to(dev),
        next=torch.from_numpy(np.concatenate(nxt)).to(dev),
        labelled=labelled | present,
        present=present,
        bbox=boxes,
        dataset=ds,
        split=torch.from_numpy(np.concatenate(split).astype(np.int64)).to(dev),
        volume=vols,
        source=source,
    )


def _phantoms(n: int, seed: int, canvas: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic slices (uint8 images, labels) and per-slice 'labelled' bit masks: a phantom
    annotates every structure its kind draws, so absent ones are true negatives."""
    from ..phantoms import phantom_dataset
    from .pack import STRUCT_BITS

    images, labels, modalities = phantom_dataset(n, seed, size=canvas)
    bits = np.zeros(n, np.uint8)
    mods = np.array(modalities)
    for m in set(modalities):
        sel = mods == m
        union = 0
        for s in STRUCTURES:
            if (labels[sel] == DEFAULT_LABEL_MAP[s]).any():
                union |= STRUCT_BITS[s]
        bits[sel] = union
    return images.astype(np.uint8), labels.astype(np.uint8), bits

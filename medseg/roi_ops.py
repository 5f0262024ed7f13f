"""Torch ROI crop / paste, used by training and inference alike.

Both directions use the continuous-coordinate convention of :mod:`medseg.preprocess`:
``rois`` are (N, 4) XYXY squares in slice pixels, pixel c covering [c, c+1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def _grid(rois: torch.Tensor, size: int, height: int, width: int, angles: torch.Tensor | None = None) -> torch.Tensor:
    """Sampling grid (N, size, size, 2) in grid_sample's normalised coords for each ROI.

    Output pixel j samples the ROI at u = (j + 0.5) / size; ``angles`` (radians) rotate the
    sampling square about the ROI centre (training augmentation)."""
    n = rois.shape[0]
    dev, dt = rois.device, rois.dtype
    u = (torch.arange(size, device=dev, dtype=dt) + 0.5) / size - 0.5  # [-0.5, 0.5)
    side_x = (rois[:, 2] - rois[:, 0]).view(n, 1, 1)
    side_y = (rois[:, 3] - rois[:, 1]).view(n, 1, 1)
    cx = ((rois[:, 0] + rois[:, 2]) / 2).view(n, 1, 1)
    cy = ((rois[:, 1] + rois[:, 3]) / 2).view(n, 1, 1)
    ux = u.view(1, 1, size) * side_x
    uy = u.view(1, size, 1) * side_y
    if angles is not None:
        c, s = torch.cos(angles).view(n, 1, 1), torch.sin(angles).view(n, 1, 1)
        ux, uy = c * ux - s * uy, s * ux + c * uy
    x = cx + ux.expand(n, size, size)
    y = cy + uy.expand(n, size, size)
    return torch.stack([2.0 * x / width - 1.0, 2.0 * y / height - 1.0], dim=-1)


def crop_rois(images: torch.Tensor, rois: torch.Tensor, size: int, batch_index: torch.Tensor | None = None,
              angles: torch.Tensor | None = None, mode: str = "bilinear", antialias: bool = True) -> torch.Tensor:
    """Crop and resize ROIs to ``size`` x ``size``.

    Args:
        images: (B, C, H, W).
        rois: (N, 4) continuous XYXY squares (may extend beyond the image: zeros there).
        batch_index: (N,) which image each ROI comes from (default: ROI i from image i, or
            image 0 when B == 1).
        angles: optional (N,) rotation in radians (training only).
        antialias: average-pool first when an ROI is shrunk by more than 1.5x.
    Returns: (N, C, size, size).
    """
    b, c, h, w = images.shape
    n = rois.shape[0]
    if batch_index is None:
        batch_index = torch.zeros(n, dtype=torch.long, device=rois.device) if b == 1 else torch.arange(n, device=rois.device)
    src = images[batch_index]
    if antialias and mode == "bilinear":
        shrink = float(((rois[:, 2] - rois[:, 0]) / size).max())
        k = int(round(shrink)) | 1 if shrink > 1.5 else 1  # odd box filter keeps pixel centres
        if k > 1:
            src = F.avg_pool2d(src, kernel_size=k, stride=1, padding=k // 2, count_include_pad=False)
    grid = _grid(rois.to(torch.float32), size, h, w, angles).to(src.dtype)
    return F.grid_sample(src, grid, mode=mode, padding_mode="zeros", align_corners=False)


def paste_logits(low_res: torch.Tensor, rois: torch.Tensor, height: int, width: int, fill: float = -20.0) -> torch.Tensor:
    """Map ROI-space logits back onto the slice.

    Args:
        low_res: (N, K, h, w) logits covering each ROI.
        rois: (N, 4) continuous XYXY.
    Returns: (N, K, height, width) logits; pixels outside the ROI get ``fill``.
    """
    n = low_res.shape[0]
    dev = low_res.device
    ys = torch.arange(height, device=dev, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=dev, dtype=torch.float32) + 0.5
    r = rois.to(torch.float32)
    gx = 2.0 * (xs.view(1, 1, -1) - r[:, 0].view(n, 1, 1)) / (r[:, 2] - r[:, 0]).view(n, 1, 1) - 1.0
    gy = 2.0 * (ys.view(1, -1, 1) - r[:, 1].view(n, 1, 1)) / (r[:, 3] - r[:, 1]).view(n, 1, 1) - 1.0
    grid = torch.stack([gx.expand(n, height, width), gy.expand(n, height, width)], dim=-1)
    out = F.grid_sample(low_res.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1.0).all(dim=-1, keepdim=False).unsqueeze(1)
    return torch.where(inside, out, torch.full_like(out, fill))


def paste_roi_logits(logits: np.ndarray, roi, shape_yx) -> np.ndarray:
    """Low-resolution logits of an ROI pasted onto a full (Y, X) slice (numpy in, numpy out)."""
    out = paste_logits(torch.from_numpy(np.asarray(logits, np.float32))[None, None], torch.tensor([roi], dtype=torch.float32), *shape_yx)
    return out[0, 0].numpy()

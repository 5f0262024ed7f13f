"""Segmentation + IoU-prediction loss (MONAI Dice, BCE, IoU MSE) with SAM's multimask rule."""

from __future__ import annotations

import torch
from torch.nn import functional as F


class PromptLoss(torch.nn.Module):
    """Per-sample loss = BCE + Dice of the chosen output token, plus MSE of the predicted IoU.

    Single-output samples are scored on token 0; ambiguous samples (one generic click) on the
    best of tokens 1-3, as segment-anything trains its multimask output.
    """

    def __init__(self, iou_weight: float = 1.0) -> None:
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(sigmoid=True, reduction="none", smooth_nr=1.0, smooth_dr=1.0)
        self.iou_weight = iou_weight

    def forward(self, low_res: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, multimask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """low_res (B,4,h,w) logits; iou_pred (B,4); target (B,1,S,S) {0,1}; multimask (B,) bool."""
        with torch.autocast(device_type=low_res.device.type, enabled=False):
            return self._forward(low_res.float(), iou_pred.float(), target.float(), multimask)

    def _forward(self, low_res, iou_pred, target, multimask):
        b, k = low_res.shape[:2]
        size = target.shape[-1]
        up = F.interpolate(low_res.float(), size=(size, size), mode="bilinear", align_corners=False)
        tgt = target.expand(-1, k, -1, -1)
        bce = F.binary_cross_entropy_with_logits(up, tgt, reduction="none").mean(dim=(2, 3))
        dice = self.dice(up.reshape(b * k, 1, size, size), tgt.reshape(b * k, 1, size, size)).reshape(b, k)
        seg = bce + dice  # (B, 4)
        multi = seg[:, 1:].min(dim=1)
        seg_loss = torch.where(multimask, multi.values, seg[:, 0])
        with torch.no_grad():
            pred = up > 0
            t = tgt > 0.5
            inter = (pred & t).flatten(2).sum(-1).float()
            union = (pred | t).flatten(2).sum(-1).float()
            iou_true = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        iou_loss = F.mse_loss(iou_pred.float(), iou_true, reduction="none").mean(1)
        loss = (seg_loss + self.iou_weight * iou_loss).mean()
        chosen = torch.where(multimask, multi.indices + 1, torch.zeros_like(multi.indices))
        return loss, {"loss": loss.detach(), "seg": seg_loss.mean().detach(), "iou_mse": iou_loss.mean().detach(), "chosen": chosen}

"""The boundary-aware loss: Dice + cross-entropy plus λ times a smooth-boundary MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn


def smooth_boundary(x: torch.Tensor) -> torch.Tensor:
    """|x − AvgPool5(x)| (kernel 5, stride 1, same padding) of a (B, 1, D, H, W) map: large near edges."""
    return (x - F.avg_pool3d(x, 5, stride=1, padding=2, count_include_pad=False)).abs()


def boundary_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the smooth boundaries of the foreground probability and of the binary target, (B, 1, ...)."""
    return F.mse_loss(smooth_boundary(probability), smooth_boundary(target.float()))


class BoundaryAwareLoss(nn.Module):
    """DiceCE (softmax) on (B, 2, ...) logits against (B, 1, ...) labels, + ``weight`` × boundary loss when the
    crop holds foreground."""

    def __init__(self, weight: float = 10.0):
        super().__init__()
        self.weight = weight
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.dice_ce(logits, target)
        if target.any():
            loss = loss + self.weight * boundary_loss(torch.softmax(logits, dim=1)[:, 1:], target)
        return loss

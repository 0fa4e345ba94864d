"""Small 3D building blocks shared by the ProMISe encoders: adapters, necks, a channel LayerNorm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm3d(nn.Module):
    """LayerNorm over the channels of a (B, C, D, H, W) map (the 3D twin of SAM's LayerNorm2d)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class Adapter3D(nn.Module):
    """Bottleneck adapter on (B, D, H, W, C) tokens: x + up(relu(dwconv3d(relu(down(x))))).

    The up-projection starts at zero, so a new adapter passes the pretrained features through unchanged.
    """

    def __init__(self, dim: int, ratio: float = 0.5):
        super().__init__()
        hidden = int(dim * ratio)
        self.down = nn.Linear(dim, hidden)
        self.conv = nn.Conv3d(hidden, hidden, 3, padding=1, groups=hidden)
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.down(x)).permute(0, 4, 1, 2, 3)
        h = F.relu(self.conv(h)).permute(0, 2, 3, 4, 1)
        return x + self.up(h)


def neck(dim: int, out: int) -> nn.Sequential:
    """SAM's neck in 3D: 1×1×1 conv, LayerNorm3d, 3×3×3 conv, LayerNorm3d; (B, dim, ...) -> (B, out, ...)."""
    return nn.Sequential(nn.Conv3d(dim, out, 1, bias=False), LayerNorm3d(out),
                         nn.Conv3d(out, out, 3, padding=1, bias=False), LayerNorm3d(out))


def level_blocks(depth: int) -> list[int]:
    """Indices of the blocks whose outputs feed the decoder: the last of each quarter (3/6/9/12 of 12)."""
    return [max(round(depth * k / 4) - 1, 0) for k in range(1, 5)]

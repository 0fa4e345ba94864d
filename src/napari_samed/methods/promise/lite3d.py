"""ProMISe on LiteMedSAM: depth context and adapters on the TinyViT's cached per-slice embeddings.

The frozen TinyViT (with its neck) embeds each slice once, without gradients, into the shared embedding cache;
this module adds what the paper adds inside the ViT: a depth-wise slice embedding that merges ``depth_stride``
slices per token, depth (and in-plane) position embeddings, 3D depth-wise adapters, and four necks.
Nothing of the backbone is in here, so its weights are frozen by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import PromiseConfig
from .layers import Adapter3D, neck

EMBED_CHANNELS = 256


def lite_token_grid(config: PromiseConfig) -> tuple[int, int, int]:
    """Tokens (depth, height, width) of a crop: two crop-grid pixels per embedding cell in-plane."""
    return config.crop // config.depth_stride, config.crop // 2, config.crop // 2


class LiteEncoder3D(nn.Module):
    """(B, 256, S, S/2, S/2) cached embeddings of a crop -> four (B, neck_channels, T, T, T) feature maps."""

    def __init__(self, config: PromiseConfig):
        super().__init__()
        c, s = EMBED_CHANNELS, config.depth_stride
        d, h, w = lite_token_grid(config)
        self.slice_embed = nn.Conv3d(c, c, (s, 1, 1), stride=(s, 1, 1), groups=c)
        self.depth_embed = nn.Parameter(torch.zeros(1, d, 1, 1, c))
        self.plane_embed = nn.Parameter(torch.zeros(1, 1, h, w, c))
        self.stages = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(c), Adapter3D(c, config.adapter_ratio), Adapter3D(c, config.adapter_ratio))
            for _ in range(4)
        )
        self.necks = nn.ModuleList(neck(c, config.neck_channels) for _ in range(4))

    def forward(self, image: torch.Tensor | None, embeddings: torch.Tensor) -> list[torch.Tensor]:
        t = self.slice_embed(embeddings).permute(0, 2, 3, 4, 1) + self.depth_embed + self.plane_embed
        features = []
        for stage, out in zip(self.stages, self.necks, strict=True):
            t = stage(t)
            features.append(out(t.permute(0, 4, 1, 2, 3)))
        return features

"""Visual-sampling point prompt encoder: clicks pick features from the deepest feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def normalise_points(points: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Voxel coordinates (..., 3) ``(z, y, x)`` in a grid of ``shape`` -> [-1, 1], voxel centres at
    ``(2 i + 1) / n - 1`` (``grid_sample`` with ``align_corners=False``)."""
    size = torch.as_tensor(shape, dtype=points.dtype, device=points.device)
    return (2 * points + 1) / size - 1


def sample_points(features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of (B, C, D, H, W) ``features`` at normalised (B, N, 3) ``(z, y, x)`` points -> (B, N, C)."""
    grid = points.flip(-1)[:, :, None, None]  # grid_sample wants (x, y, z)
    return F.grid_sample(features, grid, mode="bilinear", align_corners=False)[:, :, :, 0, 0].transpose(1, 2)


class VisualPromptEncoder(nn.Module):
    """Point tokens (sampled features + a positive/negative embedding) and learnable global queries go through
    self-attention; then the image tokens cross-attend to the global queries. Returns the updated features."""

    def __init__(self, dim: int, queries: int = 10, layers: int = 2, heads: int = 8, mlp: int = 2048):
        super().__init__()
        self.label_embed = nn.Embedding(2, dim)
        self.queries = nn.Parameter(torch.randn(1, queries, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, batch_first=True, norm_first=True)
        self.self_attn = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, features: torch.Tensor, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) features, (B, N, 3) normalised points, (B, N) labels (1 positive) -> (B, C, D, H, W)."""
        b, n_queries = features.shape[0], self.queries.shape[1]
        tokens = sample_points(features, points) + self.label_embed(labels.long())
        queries = self.self_attn(torch.cat([self.queries.expand(b, -1, -1), tokens], dim=1))[:, :n_queries]
        image = features.flatten(2).transpose(1, 2)
        image = image + self.cross_attn(self.norm(image), queries, queries, need_weights=False)[0]
        return image.transpose(1, 2).reshape(features.shape)

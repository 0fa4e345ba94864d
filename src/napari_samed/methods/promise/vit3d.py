"""The paper's encoder: a pretrained SAM ViT made 3D (slice and depth embeddings, 3D window attention, adapters).

The crop is upsampled, cut into slices for SAM's 2D patch embedding, and a depth-wise convolution merges
``patch`` slices into one token along depth, giving a cubic token grid. Every block keeps SAM's attention and
MLP weights frozen, attends within (alternately shifted) 3D windows with a trained depth relative-position table,
and gets two trained adapters: one before the attention, one after the MLP.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, Block, ImageEncoderViT, get_rel_pos
from torch import nn

from .config import PromiseConfig
from .layers import Adapter3D, level_blocks, neck


def rel_pos_bias(q: torch.Tensor, tables: tuple[torch.Tensor, ...], size: tuple[int, int, int]) -> torch.Tensor:
    """SAM's decomposed relative positions in 3D: q (N, heads, L, c) -> additive bias (N, heads, L, L)."""
    n, heads, length, c = q.shape
    r_q = q.reshape(n * heads, *size, c)
    d, h, w = size
    rel = [torch.einsum(f"bdhwc,{a}kc->bdhwk", r_q, get_rel_pos(s, s, t))
           for a, s, t in zip("dhw", size, tables, strict=True)]
    bias = rel[0][..., :, None, None] + rel[1][..., None, :, None] + rel[2][..., None, None, :]
    return bias.reshape(n, heads, length, d * h * w)


def resize_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """A relative-position table (L, c) linearly resized to (length, c), as ``get_rel_pos`` does."""
    return F.interpolate(table.T[None], size=length, mode="linear")[0].T


def window_attention(attn: Attention, x: torch.Tensor, rel_pos_d: torch.Tensor | None) -> torch.Tensor:
    """SAM's ``Attention`` weights applied to 3D windows x (N, d, h, w, C)."""
    n, d, h, w, _ = x.shape
    q, k, v = attn.qkv(x).reshape(n, d * h * w, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    bias = None
    if attn.use_rel_pos:
        bias = rel_pos_bias(q, (rel_pos_d, attn.rel_pos_h, attn.rel_pos_w), (d, h, w))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    return attn.proj(out.transpose(1, 2).reshape(n, d, h, w, -1))


def partition(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, D, H, W, C), sides multiples of ``size`` -> (B * windows, size, size, size, C)."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // size, size, h // size, size, w // size, size, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, size, size, size, c)


def unpartition(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    b, d, h, w, c = shape
    size = x.shape[1]
    x = x.view(b, d // size, h // size, w // size, size, size, size, c)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(shape)


class Block3D(nn.Module):
    """A pretrained SAM ViT block on a 3D token grid, with two adapters and a depth relative-position table."""

    def __init__(self, block: Block, window: int, shift: int, adapter_ratio: float):
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = block.norm1, block.attn, block.norm2, block.mlp
        self.window, self.shift = window, shift
        dim = block.attn.qkv.in_features
        self.adapter_in = Adapter3D(dim, adapter_ratio)
        self.adapter_out = Adapter3D(dim, adapter_ratio)
        self.rel_pos_d = None
        if self.attn.use_rel_pos:  # initialised from the mean of the (resized) height and width tables
            tables = [resize_table(t.detach(), 2 * window - 1) for t in (self.attn.rel_pos_h, self.attn.rel_pos_w)]
            self.rel_pos_d = nn.Parameter((tables[0] + tables[1]) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W, C) -> same; sides are multiples of the window."""
        shortcut = x
        x = self.norm1(self.adapter_in(x))
        if self.shift:
            x = torch.roll(x, (-self.shift,) * 3, dims=(1, 2, 3))
        x = unpartition(window_attention(self.attn, partition(x, self.window), self.rel_pos_d), x.shape)
        if self.shift:
            x = torch.roll(x, (self.shift,) * 3, dims=(1, 2, 3))
        x = shortcut + x
        x = x + self.mlp(self.norm2(x))
        return self.adapter_out(x)


class ViTEncoder3D(nn.Module):
    """SAM's ViT as a 3D encoder: (B, 1, S, S, S) crop -> four (B, neck_channels, T, T, T) feature maps.

    Works on a copy of the ViT, so the backbone's own 2D encoder is untouched by training.
    """

    def __init__(self, vit: ImageEncoderViT, config: PromiseConfig):
        super().__init__()
        vit = copy.deepcopy(vit)
        self.patch_embed, self.pos_embed = vit.patch_embed, vit.pos_embed
        self.patch = vit.patch_embed.proj.kernel_size[0]
        self.upsample = config.upsample
        dim = vit.patch_embed.proj.out_channels
        tokens = self.tokens(config)
        if tokens % config.window:
            raise ValueError(f"{tokens} tokens per side are not a multiple of the window {config.window}")
        self.slice_embed = nn.Conv3d(dim, dim, (self.patch, 1, 1), stride=(self.patch, 1, 1), groups=dim)
        self.depth_embed = nn.Parameter(torch.zeros(1, tokens, 1, 1, dim))
        shift = config.window // 2
        self.blocks = nn.ModuleList(Block3D(b, config.window, shift if i % 2 else 0, config.adapter_ratio)
                                    for i, b in enumerate(vit.blocks))
        self.levels = level_blocks(len(self.blocks))
        self.necks = nn.ModuleList(neck(dim, config.neck_channels) for _ in self.levels)
        frozen = [self.patch_embed, *(b.attn for b in self.blocks), *(b.mlp for b in self.blocks)]
        for module in frozen:
            module.requires_grad_(False)
        if self.pos_embed is not None:
            self.pos_embed.requires_grad_(False)
        for block in self.blocks:  # the depth table lives in the block, next to the frozen attention
            if block.rel_pos_d is not None:
                block.rel_pos_d.requires_grad_(True)

    def tokens(self, config: PromiseConfig) -> int:
        return config.crop * config.upsample // self.patch

    def forward(self, image: torch.Tensor, embeddings: torch.Tensor | None = None) -> list[torch.Tensor]:
        x = (image - image.mean(dim=(2, 3, 4), keepdim=True)) / image.std(dim=(2, 3, 4), keepdim=True).clamp_min(1e-6)
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="trilinear", align_corners=False)
        b, _, d, h, w = x.shape
        t = self.patch_embed(x.transpose(1, 2).reshape(b * d, 1, h, w).expand(-1, 3, -1, -1))
        t = self.slice_embed(t.reshape(b, d, *t.shape[1:]).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
        if self.pos_embed is not None:
            pos = F.adaptive_avg_pool2d(self.pos_embed.permute(0, 3, 1, 2), t.shape[2:4]).permute(0, 2, 3, 1)
            t = t + pos[:, None]
        t = t + self.depth_embed
        features = []
        for i, block in enumerate(self.blocks):
            t = block(t)
            for level, index in enumerate(self.levels):
                if index == i:
                    features.append(self.necks[level](t.permute(0, 4, 1, 2, 3)))
        return features

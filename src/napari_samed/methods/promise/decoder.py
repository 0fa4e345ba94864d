"""The shallow CNN encoder and the 3D decoder that fuses the four feature levels, the CNN and the image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn


def conv_block(cin: int, cout: int) -> Convolution:
    """Conv3d 3×3×3 + InstanceNorm + ReLU."""
    return Convolution(3, cin, cout, kernel_size=3, norm="instance", act="relu")


class CNNEncoder(nn.Module):
    """Two conv blocks on the image at the decoder's resolution: the fine detail the transformer misses."""

    def __init__(self, channels: int):
        super().__init__()
        self.blocks = nn.Sequential(conv_block(1, channels), conv_block(channels, channels))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.blocks(image)


class Decoder3D(nn.Module):
    """Each level: two conv blocks and a ×2 transposed conv; concatenated with the CNN features and the image,
    one more conv block and a 2-class head; logits resized to the crop."""

    def __init__(self, in_channels: int, channels: int, cnn_channels: int):
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(conv_block(in_channels, channels), conv_block(channels, channels),
                          nn.ConvTranspose3d(channels, channels, 2, stride=2))
            for _ in range(4)
        )
        self.fuse = conv_block(4 * channels + cnn_channels + 1, channels)
        self.head = nn.Conv3d(channels, 2, 1)

    def forward(self, features: list[torch.Tensor], cnn: torch.Tensor, image: torch.Tensor,
                size: tuple[int, int, int]) -> torch.Tensor:
        """Four (B, C, T, T, T) maps, (B, cnn, 2T, ...) CNN features and (B, 1, 2T, ...) image -> (B, 2, *size)."""
        x = torch.cat([level(f) for level, f in zip(self.levels, features, strict=True)] + [cnn, image], dim=1)
        logits = self.head(self.fuse(x))
        if tuple(logits.shape[2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="trilinear", align_corners=False)
        return logits

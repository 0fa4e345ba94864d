"""`ProMISeNet`: encoder (SAM ViT 3D or LiteMedSAM embeddings) + CNN encoder + visual prompt encoder + decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...models.backbone import Backbone
from .config import PromiseConfig
from .decoder import CNNEncoder, Decoder3D
from .lite3d import LiteEncoder3D
from .prompt import VisualPromptEncoder
from .vit3d import ViTEncoder3D


class ProMISeNet(nn.Module):
    """One crop and its clicks -> 2-class logits over the crop."""

    def __init__(self, encoder: nn.Module, config: PromiseConfig):
        super().__init__()
        self.encoder = encoder
        self.prompt_encoder = VisualPromptEncoder(config.neck_channels, config.global_queries, config.prompt_layers,
                                                  config.prompt_heads, config.prompt_mlp)
        self.cnn = CNNEncoder(config.cnn_channels)
        self.decoder = Decoder3D(config.neck_channels, config.decoder_channels, config.cnn_channels)

    def forward(self, image: torch.Tensor, points: torch.Tensor, labels: torch.Tensor,
                embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, S, S, S) crop in [0, 1], (B, N, 3) normalised clicks ``(z, y, x)``, (B, N) labels (1 positive)
        and, for LiteMedSAM, (B, 256, S, S/2, S/2) cached embeddings -> (B, 2, S, S, S) logits."""
        features = self.encoder(image, embeddings)
        features[-1] = self.prompt_encoder(features[-1], points, labels)
        grid = tuple(2 * s for s in features[0].shape[2:])
        small = image if tuple(image.shape[2:]) == grid else F.interpolate(image, size=grid, mode="trilinear",
                                                                           align_corners=False)
        return self.decoder(features, self.cnn(small), small, tuple(image.shape[2:]))


def build_model(backbone: Backbone, config: PromiseConfig) -> ProMISeNet:
    """The network for ``config`` on ``backbone`` (a copy of its ViT for SAM; nothing of it for LiteMedSAM)."""
    encoder = LiteEncoder3D(config) if config.lite else ViTEncoder3D(backbone.image_encoder, config)
    return ProMISeNet(encoder, config)

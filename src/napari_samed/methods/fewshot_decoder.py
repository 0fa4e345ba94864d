"""The few-shot decoder's model: SAM's mask decoder with per-label query tokens and target embeddings (the masked
mean image embedding of each labelled structure) in place of prompt tokens, and the presence threshold the
targets calibrate."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.backbone import Backbone
from ..models.preprocess import masks_to_grid

EMBED_GRID = 64
#: Highest presence threshold: the minimum cosine similarity of a predicted region's mean embedding to one of its
#: label's target embeddings (`calibrate_presence` lowers it for varied shots). Measured on the sample organ (two
#: trainings): at most 0.82 on slices without it, at least 0.85 on slices holding it (0.94 inside its extent).
PRESENCE = 0.85


def target_embeddings(embeddings: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
    """Masked means: (N, 256, 64, 64) embeddings and (N, H, W) masks -> (N, 256), one per slice."""
    weights = masks_to_grid(masks, EMBED_GRID)
    weights = weights / weights.sum(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return torch.einsum("nchw,nhw->nc", embeddings, weights)


def calibrate_presence(targets: Sequence[torch.Tensor], margin: float = 0.1) -> float:
    """The presence threshold for these labels: `PRESENCE`, lowered for labels whose own shots differ more.

    For each label with several shots, each target's cosine similarity to its nearest fellow target tells how
    much the structure's look varies between labelled slices; the threshold is the smallest such similarity
    minus ``margin``, capped at `PRESENCE`.
    """
    threshold = PRESENCE
    for target in targets:
        if len(target) > 1:
            sim = F.cosine_similarity(target[:, None], target[None], dim=-1).fill_diagonal_(-1.0)
            threshold = min(threshold, float(sim.max(dim=1).values.min()) - margin)
    return threshold


class FewShotDecoder(nn.Module):
    """SAM's mask decoder with per-label query tokens and target embeddings instead of prompt tokens."""

    def __init__(self, backbone: Backbone, num_labels: int):
        super().__init__()
        decoder = backbone.mask_decoder
        self.transformer = copy.deepcopy(decoder.transformer)
        # Frozen (gradients still flow through it): 20% faster per step on the CPU, accuracy kept (benchmarks.md).
        self.output_upscaling = copy.deepcopy(decoder.output_upscaling).requires_grad_(False)
        # Both channels start from the single-mask output of the pretrained decoder, the background one negated:
        # training starts from "the mask SAM would draw for these tokens" instead of two arbitrary masks.
        fg = decoder.output_hypernetworks_mlps[0]
        bg = copy.deepcopy(fg)
        bg.layers[-1].weight.data.neg_()
        bg.layers[-1].bias.data.neg_()
        self.hypernetworks = nn.ModuleList([bg, copy.deepcopy(fg)])
        self.queries = nn.Parameter(decoder.mask_tokens.weight[0].detach().clone().repeat(num_labels, 2, 1))
        prompt = backbone.prompt_encoder
        self.register_buffer("no_mask", prompt.no_mask_embed.weight.detach().clone().view(1, -1, 1, 1))
        self.register_buffer("image_pe", prompt.get_dense_pe().detach().clone())

    def forward(self, embeddings: torch.Tensor, targets: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, 256, 64, 64) embeddings and per label (N_l, 256) targets -> (B, L, 2, 256, 256) logits.

        Channel 0 is the background, channel 1 the foreground of each label.
        """
        b, c, h, w = embeddings.shape
        src = embeddings + self.no_mask
        pos = self.image_pe.expand(b, -1, -1, -1)
        out = []
        for label, target in enumerate(targets):
            tokens = torch.cat([self.queries[label], target], dim=0).expand(b, -1, -1)
            hs, img = self.transformer(src, pos, tokens)
            up = self.output_upscaling(img.transpose(1, 2).reshape(b, c, h, w))
            hyper = torch.stack([mlp(hs[:, i]) for i, mlp in enumerate(self.hypernetworks)], dim=1)
            out.append((hyper @ up.flatten(2)).view(b, 2, *up.shape[-2:]))
        return torch.stack(out, dim=1)

"""Few-shot decoder (seed 002): target embeddings from a few labelled slices replace the user's prompts.

For each label, the target embedding of a labelled slice is the mean of its 256-d image embedding vectors under
the label (downsampled to the 64×64 embedding grid). A copy of the backbone's pretrained mask decoder takes, per
label, two learned query tokens (background, foreground) followed by that label's target embeddings, and
predicts a foreground and a background channel. Only the decoder learns; the encoder's embeddings come from the
cache. After training, every slice of a volume is segmented without prompts.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn

from ..errors import SamedError
from ..masks import dice, label_dtype, part_boxes
from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from ..models.preprocess import SliceTransform, masks_to_grid
from ..tasks import Progress, Task
from ..training.loop import Stepper, train_steps
from . import checkpoint_checks as checks
from .base import register
from .prompts import Prompt
from .trained import TrainedMethod, load_weights
from .zero_shot import ZeroShot

EMBED_GRID = 64
MASK_GRID = 256
#: Highest presence threshold: the minimum cosine similarity of a predicted region's mean embedding to one of its
#: label's target embeddings (`calibrate_presence` lowers it for varied shots). Measured on the sample organ (two
#: trainings): at most 0.82 on slices without it, at least 0.85 on slices holding it (0.94 inside its extent).
PRESENCE = 0.85
MAX_LABELS = 32  # each label costs a decoder pass per step; more is a mistake (an image given as labels)


#: Training steps by default, whatever the number of shots. The paper's 50 for 5 shots was underfit on real
#: anatomy: on the real-data benchmark's 15 structures of at least 10 slices, 100 steps raised the mean DSC on
#: the unlabelled slices from 0.612 to 0.767 (docs/benchmarks.md), at 29-33 s of training on a 2-core CPU.
ITERATIONS = 100


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


@register
class FewShot(TrainedMethod):
    """Train on a few labelled slices, then segment whole volumes with no prompts."""

    name = "fewshot"
    kind = "napari-samed fewshot"
    what = "few-shot"
    state_keys = ("labels", "targets", "decoder")
    schema = {"labels": checks.list_of(checks.whole(1), 1, MAX_LABELS, unique=True),
              "targets": checks.list_of(checks.tensor(2, 256), 1, MAX_LABELS), "decoder": checks.WEIGHTS,
              "presence": checks.number(-1.0, 1.0), "boxes": checks.one_of(True, False)}
    prompts = ()

    def __init__(self, backbone: Backbone):
        self.backbone = backbone
        self.labels: list[int] = []
        self.targets: list[torch.Tensor] = []
        self.decoder: FewShotDecoder | None = None
        self.window: str | tuple = "auto"
        self.presence = PRESENCE
        #: Whether each predicted region is redrawn by the pretrained decoder from its boxes (`redraw`): chosen
        #: after training, by which of the two reproduces the labelled slices better (`prefers_boxes`).
        self.boxes = False

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, embeddings: VolumeEmbeddings, annotations: dict[int, np.ndarray], labels: Sequence[int] | None = None,
            iterations: int | None = None, batch: int = 2, seed: int = 0, lr: float = 1e-4) -> Task[list[float]]:
        """Task: fine-tune on ``annotations`` ({slice index: label slice}); returns the loss per iteration.

        A run of N iterations is the first N iterations of any longer run with the same seed and batch.

        ``labels`` are the label values to learn (default: every value found). A labelled slice without a label
        teaches the decoder that label's absence there.
        """
        found = sorted({int(v) for plane in annotations.values() for v in np.unique(plane) if v})
        labels = found if labels is None else [int(v) for v in labels]
        self._check_annotations(embeddings, annotations, labels, found)
        slices = sorted(annotations)
        shots = len(slices)
        iterations = ITERATIONS if iterations is None else int(iterations)
        to_embed = len(embeddings.missing(slices))
        total = to_embed + iterations
        for done, _ in embeddings.compute(slices):
            yield Progress(done, total, f"embedding labelled slice {done}/{to_embed}")
        dev = self.backbone.device
        emb = torch.stack([embeddings.get(z) for z in slices])
        planes = np.stack([annotations[z] for z in slices])
        self.labels, self.window = labels, embeddings.window_rule
        self.targets = []
        for value in labels:
            present = (planes == value).any(axis=(1, 2))
            self.targets.append(target_embeddings(emb[present], planes[present] == value).to(dev))
        emb = emb.to(dev)
        self.presence = calibrate_presence(self.targets)
        grid = torch.stack([masks_to_grid(planes == v, MASK_GRID) for v in labels], 1)
        truth = (grid > 0.5).long().to(dev)  # (shots, L, 256, 256)

        torch.manual_seed(seed)
        self.decoder = FewShotDecoder(self.backbone, len(labels)).to(dev).train()
        stepper = Stepper(torch.optim.Adam(self.decoder.parameters(), lr=lr, betas=(0.9, 0.99)))
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        generator = torch.Generator().manual_seed(seed)
        batch = min(batch, shots)
        order = torch.cat([torch.randperm(shots, generator=generator) for _ in range(iterations * batch // shots + 1)])

        def step_loss(it: int) -> torch.Tensor:
            pick = order[it * batch:(it + 1) * batch].to(dev)  # every shot equally often
            logits = self.decoder(emb[pick], self.targets)  # (batch, L, 2, 256, 256)
            return loss_fn(logits.flatten(0, 1), truth[pick].flatten(0, 1)[:, None])

        losses = yield from train_steps(stepper, (partial(step_loss, it) for it in range(iterations)), to_embed, total,
                                        lambda done, loss: f"iteration {done}/{iterations}, loss {loss:.4f}")
        self.decoder.eval()
        self.boxes = self.prefers_boxes(embeddings, annotations)
        return losses

    def prefers_boxes(self, embeddings: VolumeEmbeddings, annotations: dict[int, np.ndarray]) -> bool:
        """Whether the decoder's regions redrawn from their boxes (`redraw`) match ``annotations`` better than the
        regions themselves (mean Dice over the labels). On the real-data benchmark the boxes won on every CT
        lesion, where the pretrained decoder's boundaries are better than the few-shot decoder's, and lost on
        organs next to look-alikes (MR pancreas, kidneys); choosing by the labelled slices raised the mean DSC on
        the unlabelled slices from 0.711 to 0.735 (docs/benchmarks.md)."""
        slices = sorted(annotations)
        planes = np.stack([annotations[z] for z in slices])
        plain = np.stack([self.predict_slice(embeddings.get(z), embeddings.slice_shape) for z in slices])
        boxed = np.stack([self.redraw(embeddings, z, plane) for z, plane in zip(slices, plain, strict=True)])

        def score(pred):
            return np.mean([dice(pred == v, planes == v) for v in self.labels])

        return bool(score(boxed) > score(plain))

    @property
    def drawing(self) -> str:
        """How `segment` draws each region, for a status line."""
        return "regions redrawn from their boxes" if self.boxes else "regions as the decoder draws them"

    def redraw(self, embeddings: VolumeEmbeddings, z: int, plane: np.ndarray) -> np.ndarray:
        """``plane``, slice ``z``'s labels, with each label's region redrawn by the backbone's pretrained decoder
        from a box around each of its parts (`part_boxes`, grown as a user's box: `ZeroShot.segment_boxes`);
        labels in order, later ones on top."""
        zero = ZeroShot(self.backbone)
        out = np.zeros_like(plane)
        for value in self.labels:
            boxes = part_boxes(plane == value)
            if boxes:
                out[zero.segment_boxes(embeddings, z, boxes).any(axis=0)] = value
        return out

    @staticmethod
    def _check_annotations(embeddings, annotations, labels, found) -> None:
        if not annotations:
            raise SamedError("no labelled slice: paint labels on a few slices first")
        nz = embeddings.num_slices
        for z, plane in annotations.items():
            if not 0 <= z < nz:
                raise SamedError(f"slice {z} is outside the volume (0..{nz - 1})")
            if plane.shape != embeddings.slice_shape:
                raise SamedError(f"labels of slice {z} have shape {plane.shape}; "
                                 f"the image's slices are {embeddings.slice_shape}")
        if not labels:
            raise SamedError(f"the labelled slices {sorted(annotations)} hold no label: paint at least one")
        if len(labels) > MAX_LABELS:
            raise SamedError(f"the labelled slices hold {len(labels)} label values; few-shot learns at most "
                             f"{MAX_LABELS} at once (are they a label volume, not an image?)")
        missing = [v for v in labels if v not in found]
        if missing:
            raise SamedError(f"label {missing[0]} appears on none of the labelled slices {sorted(annotations)}; "
                             f"labels found: {found or 'none'}")

    # -- inference -----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_slice(self, embedding: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
        """Label plane (H, W) of one slice.

        Each pixel takes the label with the highest foreground probability above 0.5. A label's region is then
        kept only if it looks like what was labelled: the mean embedding under it must have a cosine similarity
        of at least ``self.presence`` to one of the label's target embeddings (0 turns the check off). Without
        it, slices that do not contain the structure get the most similar-looking region (the training slices
        all contain it).
        """
        logits = self.decoder(embedding[None].to(self.backbone.device), self.targets)[0]  # (L, 2, 256, 256)
        prob = torch.softmax(logits.float(), dim=1)[:, 1:].cpu()
        prob = SliceTransform(*shape, MASK_GRID).logits_to_slice(prob)[:, 0]  # (L, H, W)
        best = prob.max(dim=0)
        index = torch.where(best.values > 0.5, best.indices + 1, 0).numpy()
        for i, target in enumerate(self.targets, start=1):
            region = index == i
            if region.any():
                mean = target_embeddings(embedding[None].cpu(), region[None])
                if F.cosine_similarity(mean, target.cpu()).max() < self.presence:
                    index[region] = 0
        return np.asarray([0, *self.labels])[index]

    def segment(self, embeddings: VolumeEmbeddings, prompts: list[Prompt] | None = None) -> Task[np.ndarray]:
        """Task: the label volume of every slice (`predict_slice`, then `redraw` when `boxes`); prompts are not
        used."""
        if self.decoder is None:
            raise SamedError("the few-shot decoder is not trained: train it or load a checkpoint")
        out = np.zeros(embeddings.data.shape, label_dtype(max(self.labels)))
        for z in range(embeddings.num_slices):
            out[z] = self.predict_slice(embeddings.get(z), embeddings.slice_shape)
            if self.boxes:
                out[z] = self.redraw(embeddings, z, out[z])
            yield Progress(z + 1, embeddings.num_slices, f"slice {z}")
        return out

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The decoder, tokens, target embeddings, labels, presence threshold and whether to redraw from boxes."""
        if self.decoder is None:
            raise SamedError("nothing to save: the few-shot decoder is not trained")
        return {"presence": self.presence, "boxes": self.boxes, "labels": self.labels,
                "targets": [t.cpu() for t in self.targets],
                "decoder": {k: v.cpu() for k, v in self.decoder.state_dict().items()}}

    @classmethod
    def from_state(cls, state: dict, backbone: Backbone, path: str | os.PathLike) -> FewShot:
        if len(state["targets"]) != len(state["labels"]):
            raise SamedError(f"few-shot checkpoint {path} has {len(state['targets'])} target embeddings for "
                             f"{len(state['labels'])} labels")
        method = cls(backbone)
        method.labels, method.window = list(state["labels"]), state["window"]
        method.presence = float(state.get("presence", PRESENCE))
        method.boxes = bool(state.get("boxes", False))  # checkpoints before the choice: the regions as they are
        method.targets = [t.to(backbone.device) for t in state["targets"]]
        method.decoder = FewShotDecoder(backbone, len(method.labels)).to(backbone.device)
        load_weights(method.decoder, state["decoder"], f"few-shot checkpoint {path}")
        method.decoder.eval()
        return method

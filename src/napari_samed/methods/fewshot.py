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
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from ..errors import SamedError
from ..masks import dice, label_dtype, part_boxes, within_labelled_extent
from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from ..models.preprocess import SliceTransform, masks_to_grid
from ..tasks import Progress, Task
from ..training.loop import BestState, Stepper, TrainingStop
from . import checkpoint_checks as checks
from .base import register
from .fewshot_decoder import PRESENCE, FewShotDecoder, calibrate_presence, target_embeddings
from .prompts import Prompt
from .trained import TrainedMethod, load_weights
from .zero_shot import ZeroShot

MASK_GRID = 256
MAX_LABELS = 32  # each label costs a decoder pass per step; more is a mistake (an image given as labels)


#: Training stops by itself (`FewShot.stop_rule`) on its steps, never on the clock, so that a model is the same
#: on every CPU and under any load: the DSC of the decoder's masks on the labelled slices is checked every
#: `CHECK_EVERY` steps; training stops when it reaches `FIT_TARGET`, when `PATIENCE` checks in a row have not raised
#: it, or after `MAX_STEPS`. A time budget is the user's to add (none by default). The values were chosen on the
#: real-data benchmark (docs/benchmarks.md, "Few-shot: training that stops by itself").
MAX_STEPS = 100
CHECK_EVERY = 10
FIT_TARGET = 0.95
PATIENCE = 5
#: Adam's learning rate, reached after a linear warm-up of `WARMUP` steps, gradients clipped to norm `CLIP`. On
#: the real-data benchmark's 21 structures of at least 10 slices, 4e-4 this way reached in 100 steps the mean DSC
#: on the unlabelled slices that 1e-4 reached in 150 (0.797); 1e-3 without warm-up had collapsed to empty masks.
LR = 4e-4
WARMUP = 10
CLIP = 1.0
#: Past a labelled end toward which the labels shrink, a structure must keep tapering on the labelled image: a
#: slice's mask may be at most `TAPER_GROW` × the slice before's (`masks.tapering_from`). Chosen on the real-data
#: benchmark with labelled slices spread over the whole structure and over its middle 60% (docs/benchmarks.md,
#: "Few-shot: past the labelled ends").
TAPER_GROW = 1.1


def labelled_volumes(embeddings: VolumeEmbeddings | Sequence[VolumeEmbeddings],
                     annotations: dict | Sequence[dict]) -> list[tuple[VolumeEmbeddings, dict[int, np.ndarray]]]:
    """(embeddings, annotations) of each labelled image, from one of each or a sequence of each."""
    if isinstance(embeddings, VolumeEmbeddings):
        return [(embeddings, annotations)]
    if isinstance(annotations, dict) or len(annotations) != len(embeddings) or not embeddings:
        raise SamedError("few-shot training on several images takes one set of labelled slices per image")
    return list(zip(embeddings, annotations, strict=True))


def shrinks_toward_ends(areas: Sequence[int]) -> tuple[bool, bool]:
    """Whether a label's areas on its labelled slices (in slice order) shrink toward the first and the last."""
    return bool(len(areas) > 1 and areas[0] < areas[1]), bool(len(areas) > 1 and areas[-1] < areas[-2])


@register
class FewShot(TrainedMethod):
    """Train on a few labelled slices, then segment whole volumes with no prompts."""

    name = "fewshot"
    kind = "napari-samed fewshot"
    what = "few-shot"
    state_keys = ("labels", "targets", "decoder")
    schema = {"labels": checks.list_of(checks.whole(1), 1, MAX_LABELS, unique=True),
              "targets": checks.list_of(checks.tensor(2, 256), 1, MAX_LABELS), "decoder": checks.WEIGHTS,
              "presence": checks.number(-1.0, 1.0), "boxes": checks.one_of(True, False),
              "extent": checks.mapping(checks.list_of(
                  checks.optional(checks.items(checks.whole(0), checks.whole(0))), 1, MAX_LABELS)),
              "tapers": checks.mapping(checks.list_of(
                  checks.items(checks.one_of(True, False), checks.one_of(True, False)), 1, MAX_LABELS)),
              "sources": checks.mapping(checks.list_of(checks.whole(0), 1))}
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
        #: After `fit`: why training stopped, the (step, DSC on the labelled slices) of its checks, and whether it
        #: went on from an earlier model (else from the backbone's pretrained decoder).
        self.stopped: str | None = None
        self.checks: list[tuple[int, float]] = []
        self.continued = False
        #: What it learnt from: each labelled image's content hash → its labelled slices (`sources`), and → per
        #: label, the first and last of them holding it (`extent`; None: labelled nowhere there), and whether the
        #: label shrinks toward its first and its last labelled slice (`tapers`). On those images, `segment` keeps
        #: only the parts that reach those slices, tapering past an end toward which the labels shrink, and
        #: nothing beyond a labelled slice without the label (`near_labelled_slices`).
        self.sources: dict[str, list[int]] = {}
        self.extent: dict[str, list[tuple[int, int] | None]] = {}
        self.tapers: dict[str, list[tuple[bool, bool]]] = {}
        self.within_extent = True

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, embeddings: VolumeEmbeddings | Sequence[VolumeEmbeddings],
            annotations: dict[int, np.ndarray] | Sequence[dict[int, np.ndarray]], labels: Sequence[int] | None = None,
            iterations: int | None = None, budget: float | None = None, batch: int = 2, seed: int = 0,
            lr: float = LR, warmup: int = WARMUP, clip: float | None = CLIP,
            start: FewShot | None = None) -> Task[list[float]]:
        """Task: fine-tune on ``annotations`` ({slice index: label slice}) of ``embeddings``' image, or on those of
        several images (a sequence of each, in the same order; their windows must agree); returns the loss per step.

        Training stops by itself (`stop_rule`: the labelled slices learnt, no more progress on them, or
        `MAX_STEPS`; also after ``budget`` seconds if given) and keeps the checked model that fitted the labelled
        slices best; ``iterations`` asks for exactly that many steps instead, and keeps the last. `stopped` says
        why it stopped (and which step's model it kept) and `checks` holds (step, DSC on the labelled slices) of
        every check. A run's steps are the start of any longer run's with the same seed, batch and learning rate.

        ``labels`` are the label values to learn (default: every value found). A labelled slice without a label
        teaches the decoder that label's absence there. ``start``, an earlier model of the same backbone and
        labels (the last one, before one more slice was labelled), is where the decoder starts; else it starts
        from the backbone's pretrained decoder.
        """
        pairs = labelled_volumes(embeddings, annotations)
        found = sorted({int(v) for _, ann in pairs for plane in ann.values() for v in np.unique(plane) if v})
        labels = found if labels is None else [int(v) for v in labels]
        for volume, ann in pairs:
            self._check_annotations(volume, ann, labels, found)
        windows = list(dict.fromkeys(str(volume.window_rule) for volume, _ in pairs))
        if len(windows) > 1:
            raise SamedError(f"the labelled images were embedded with different windows ({', '.join(windows)}); a "
                             f"model has one: choose the same window for all")
        rule = self.stop_rule(iterations, budget)
        to_embed = sum(len(volume.missing(sorted(ann))) for volume, ann in pairs)
        embedded = 0
        for volume, ann in pairs:
            for _ in volume.compute(sorted(ann)):
                embedded += 1
                yield Progress(embedded, to_embed + rule.max_steps, f"embedding labelled slice {embedded}/{to_embed}")
        dev = self.backbone.device
        self.labels, self.window = labels, pairs[0][0].window_rule
        per_label: list[list[torch.Tensor]] = [[] for _ in labels]
        embs, grids, self.extent, self.sources, self.tapers = [], [], {}, {}, {}
        for volume, ann in pairs:
            slices = sorted(ann)
            emb = torch.stack([volume.get(z) for z in slices])
            planes = np.stack([ann[z] for z in slices])
            spans, tapers = [], []
            for i, value in enumerate(labels):
                present = (planes == value).any(axis=(1, 2))
                label_masks = planes[present] == value
                if present.any():
                    per_label[i].append(target_embeddings(emb[present], label_masks))
                held = [z for z, p in zip(slices, present, strict=True) if p]
                spans.append((int(held[0]), int(held[-1])) if held else None)
                tapers.append(shrinks_toward_ends(label_masks.sum(axis=(1, 2))))
            image = volume.image_hash
            self.extent[image], self.sources[image], self.tapers[image] = spans, [int(z) for z in slices], tapers
            embs.append(emb)
            grids.append(torch.stack([masks_to_grid(planes == v, MASK_GRID) for v in labels], 1))
        self.targets = [torch.cat(t).to(dev) for t in per_label]
        emb, grid = torch.cat(embs).to(dev), torch.cat(grids)
        shots = len(emb)
        self.presence = calibrate_presence(self.targets)
        truth = (grid > 0.5).long().to(dev)  # (shots, L, 256, 256)

        torch.manual_seed(seed)
        self.continued = start is not None and start.decoder is not None and start.labels == labels and \
            (start.backbone.name, start.backbone.weights_id) == (self.backbone.name, self.backbone.weights_id)
        self.decoder = copy.deepcopy(start.decoder) if self.continued else FewShotDecoder(self.backbone, len(labels))
        self.decoder.to(dev).train()
        stepper = Stepper(torch.optim.Adam(self.decoder.parameters(), lr=lr, betas=(0.9, 0.99)), clip, lr,
                          lambda step: min(1.0, (step + 1) / max(warmup, 1)))
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        generator = torch.Generator().manual_seed(seed)
        batch = min(batch, shots)
        epochs = rule.max_steps * batch // shots + 1
        order = torch.cat([torch.randperm(shots, generator=generator) for _ in range(epochs)])
        losses, self.checks, self.stopped = [], [], None
        best, best_step = BestState(self.decoder), 0  # stopping by itself, it keeps the best checked model
        clock = time.perf_counter()
        while self.stopped is None:
            pick = order[len(losses) * batch:(len(losses) + 1) * batch].to(dev)  # every shot equally often
            logits = self.decoder(emb[pick], self.targets)  # (batch, L, 2, 256, 256)
            losses.append(stepper.step(loss_fn(logits.flatten(0, 1), truth[pick].flatten(0, 1)[:, None]), len(losses)))
            steps, score = len(losses), None
            if rule.due(steps):
                score = self.fit_score(emb, truth)
                self.checks.append((steps, score))
            seconds = time.perf_counter() - clock
            self.stopped = rule.reason(steps, seconds, [dsc for _, dsc in self.checks])
            if self.stopped and score is None:  # stopped by the clock between checks: the curve's last point
                score = self.fit_score(emb, truth)
                self.checks.append((steps, score))
            if score is not None and best.offer(score):
                best_step = steps
            # the bar's end: the steps the budget allows at this pace, until the run stops
            planned = steps if self.stopped else rule.max_steps if rule.budget is None else \
                min(rule.max_steps, max(steps + 1, round(steps * rule.budget / max(seconds, 1e-3))))
            fit = f", labelled slices DSC {self.checks[-1][1]:.3f}" if self.checks else ""
            yield Progress(to_embed + steps, to_embed + planned, f"step {steps}, loss {losses[-1]:.4f}{fit}",
                           losses[-1], score=score)
        if iterations is None and best_step != len(losses):
            best.restore()
            self.stopped += f"; kept step {best_step}'s model ({best.score:.3f})"
        self.decoder.eval()
        self.boxes = self.prefers_boxes(pairs)
        return losses

    @staticmethod
    def stop_rule(iterations: int | None = None, budget: float | None = None) -> TrainingStop:
        """When training stops: after exactly ``iterations`` steps if given; else when the DSC on the labelled
        slices reaches `FIT_TARGET` or stops rising, after `MAX_STEPS`, or after ``budget`` seconds if given."""
        name = "the labelled slices' DSC"
        if iterations is not None:
            return TrainingStop.exactly(int(iterations), CHECK_EVERY, name)
        return TrainingStop(MAX_STEPS, budget, CHECK_EVERY, FIT_TARGET, PATIENCE, name=name)

    @torch.inference_mode()
    def fit_score(self, emb: torch.Tensor, truth: torch.Tensor) -> float:
        """Mean Dice over labelled slices and labels of the decoder's masks on the 256² grid (no presence check),
        against ``truth`` (shots, L, 256, 256); a label absent from a slice and not predicted there counts 1."""
        prob = torch.softmax(self.decoder(emb, self.targets).float(), dim=2)[:, :, 1]  # (shots, L, 256, 256)
        pred = prob > 0.5
        both = (pred & (truth > 0)).sum(dim=(2, 3))
        sizes = pred.sum(dim=(2, 3)) + truth.sum(dim=(2, 3))
        return float(torch.where(sizes > 0, 2 * both / sizes.clamp_min(1), 1.0).mean())

    def prefers_boxes(self, pairs: Sequence[tuple[VolumeEmbeddings, dict[int, np.ndarray]]]) -> bool:
        """Whether the decoder's regions redrawn from their boxes (`redraw`) match the labelled slices of
        ``pairs`` ((embeddings, annotations) of each image) better than the regions themselves (mean Dice over the
        labels and images). On the real-data benchmark the boxes won on every CT lesion, where the pretrained
        decoder's boundaries are better than the few-shot decoder's, and lost on organs next to look-alikes (MR
        pancreas, kidneys); choosing by the labelled slices raised the mean DSC on the unlabelled slices from 0.711
        to 0.735 (docs/benchmarks.md)."""
        plain_scores, boxed_scores = [], []
        for embeddings, labelled in pairs:
            slices = sorted(labelled)
            planes = np.stack([labelled[z] for z in slices])
            plain = np.stack([self.predict_slice(embeddings.get(z), embeddings.slice_shape) for z in slices])
            boxed = np.stack([self.redraw(embeddings, z, plane) for z, plane in zip(slices, plain, strict=True)])
            plain_scores += [dice(plain == v, planes == v) for v in self.labels]
            boxed_scores += [dice(boxed == v, planes == v) for v in self.labels]
        return bool(np.mean(boxed_scores) > np.mean(plain_scores))

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
    def probabilities(self, embedding: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """Each label's foreground probability on one slice: (L, H, W)."""
        logits = self.decoder(embedding[None].to(self.backbone.device), self.targets)[0]  # (L, 2, 256, 256)
        prob = torch.softmax(logits.float(), dim=1)[:, 1:].cpu()
        return SliceTransform(*shape, MASK_GRID).logits_to_slice(prob)[:, 0]

    def predict_slice(self, embedding: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
        """Label plane (H, W) of one slice (`probabilities`, then `label_plane`)."""
        return self.label_plane(self.probabilities(embedding, shape), embedding)

    def label_plane(self, prob: torch.Tensor, embedding: torch.Tensor) -> np.ndarray:
        """The label plane of a slice's probabilities (L, H, W).

        Each pixel takes the label with the highest foreground probability above 0.5. A label's region is then
        kept only if it looks like what was labelled: the mean embedding under it must have a cosine similarity
        of at least ``self.presence`` to one of the label's target embeddings (0 turns the check off). Without
        it, slices that do not contain the structure get the most similar-looking region (the training slices
        all contain it).
        """
        best = prob.max(dim=0)
        index = torch.where(best.values > 0.5, best.indices + 1, 0).numpy()
        for i, target in enumerate(self.targets, start=1):
            region = index == i
            if region.any():
                mean = target_embeddings(embedding[None].cpu(), region[None])
                if F.cosine_similarity(mean, target.cpu()).max() < self.presence:
                    index[region] = 0
        return np.asarray([0, *self.labels])[index]

    def draw_slice(self, embeddings: VolumeEmbeddings, z: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Slice ``z``'s foreground probabilities (L, H, W), its label plane (`label_plane`) and the plane `segment`
        draws from it (`redraw` when `boxes`, else the same plane)."""
        embedding = embeddings.get(z)
        prob = self.probabilities(embedding, embeddings.slice_shape)
        plane = self.label_plane(prob, embedding)
        return prob, plane, self.redraw(embeddings, z, plane) if self.boxes else plane

    def segment(self, embeddings: VolumeEmbeddings, prompts: list[Prompt] | None = None) -> Task[np.ndarray]:
        """Task: the label volume of every slice (`draw_slice`), then `near_labelled_slices`; prompts are not used."""
        if self.decoder is None:
            raise SamedError("the few-shot decoder is not trained: train it or load a checkpoint")
        out = np.zeros(embeddings.data.shape, label_dtype(max(self.labels)))
        for z in range(embeddings.num_slices):
            out[z] = self.draw_slice(embeddings, z)[2]
            yield Progress(z + 1, embeddings.num_slices, f"slice {z}")
        self.near_labelled_slices(out, embeddings.image_hash)
        return out

    def near_labelled_slices(self, out: np.ndarray, image: str) -> None:
        """On a labelled image (``image``: its content hash; elsewhere, or with `within_extent` off, nothing), keep
        in place only what each label's labelled slices there allow (`masks.within_labelled_extent`): its 3D parts
        that reach a slice from its first to its last labelled one (`extent`; a part far from what was labelled,
        not continued from it, is taken for a look-alike: the other kidney, a vessel beyond the organ's end); past
        an end toward which it shrinks (`tapers`), only while it keeps tapering (`TAPER_GROW`: a structure that was
        ending does not go on unchanged); and nothing from a labelled slice without it onward (`sources`), the
        user's word that it has ended."""
        if not self.within_extent or image not in self.extent:
            return
        labelled, tapers = self.sources.get(image, ()), self.tapers.get(image)
        for i, (value, span) in enumerate(zip(self.labels, self.extent[image], strict=True)):
            if span is not None:
                mask = out == value
                absent = (max((z for z in labelled if z < span[0]), default=None),
                          min((z for z in labelled if z > span[1]), default=None))
                keep = within_labelled_extent(mask, span, tapers[i] if tapers is not None else (False, False),
                                              TAPER_GROW, absent)
                out[mask & ~keep] = 0

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The decoder, tokens, target embeddings, labels, presence threshold and whether to redraw from boxes."""
        if self.decoder is None:
            raise SamedError("nothing to save: the few-shot decoder is not trained")
        return {"presence": self.presence, "boxes": self.boxes, "labels": self.labels, "extent": self.extent,
                "tapers": self.tapers, "sources": self.sources,
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
        method.sources = {image: list(slices) for image, slices in state.get("sources", {}).items()}
        method.extent = {image: [None if s is None else (int(s[0]), int(s[1])) for s in spans]
                         for image, spans in state.get("extent", {}).items()}
        method.tapers = {image: [(bool(low), bool(high)) for low, high in ends]
                         for image, ends in state.get("tapers", {}).items()}  # before the rule: none
        method.targets = [t.to(backbone.device) for t in state["targets"]]
        method.decoder = FewShotDecoder(backbone, len(method.labels)).to(backbone.device)
        load_weights(method.decoder, state["decoder"], f"few-shot checkpoint {path}")
        method.decoder.eval()
        return method

"""Co-trained multi-prompt mask decoder (seed 000): batched organ + lesion boxes, max-loss back-propagation.

The image encoder (cached embeddings) and the prompt encoder stay frozen; a copy of the backbone's mask decoder
learns. On every training slice each structure present gets one box from its mask, jittered outward; the boxes
go through the prompt encoder as one batch of N prompts against the slice's embedding, the loss (Dice + cross
entropy) is computed per mask, and only the largest per-mask loss is back-propagated. ``mode="single"`` is the
paper's baseline on the same code: one structure per step.

SAM's decoder gives each prompt its own copy of the image embedding, so the batched prompts do not attend to
each other: what the structures share during co-training is the max-loss objective, not their tokens.
A trained model is the backbone with the fine-tuned decoder, so it segments every prompt zero-shot does.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.losses import DiceCELoss

from ..errors import SamedError
from ..masks import dice, mask_bbox
from ..models.backbone import Backbone
from ..models.preprocess import masks_to_grid
from ..tasks import Progress, Task
from ..training.datasets import Structure
from ..training.loop import BestState, Stepper, train_steps
from . import checkpoint_checks as checks
from .base import register
from .trained import TrainedMethod, load_weights
from .zero_shot import ZeroShot

if TYPE_CHECKING:
    from ..training.slices import SliceSplits, TrainingSlice

MODES = ("cotrain", "single")
LOW_RES = 256  # side of the decoder's output grid for every SAM-family backbone


@dataclass(frozen=True)
class Jitter:
    """Largest outward shift of each side of a training box: ``amount`` × the box's extent along that axis,
    or ``amount`` pixels when ``pixels``."""

    amount: float = 0.1
    pixels: bool = False

    @classmethod
    def parse(cls, text: str) -> Jitter:
        """``"0.1"`` (fraction of the object's size) or ``"5px"`` (pixels)."""
        text = text.strip().lower()
        pixels = text.endswith("px")
        try:
            amount = float(text[:-2] if pixels else text)
        except ValueError:
            amount = -1.0
        if not (amount >= 0 and math.isfinite(amount)):
            raise SamedError(f"a box jitter is a fraction of the object's size (0.1) or pixels (5px); got {text!r}")
        return cls(amount, pixels)

    def limits(self, box: Sequence[int]) -> tuple[float, float]:
        """The largest shift along y and along x for ``box`` ``(y0, x0, y1, x1)``."""
        if self.pixels:
            return self.amount, self.amount
        return self.amount * (box[2] - box[0] + 1), self.amount * (box[3] - box[1] + 1)

    def __str__(self) -> str:
        return f"{self.amount:g}px" if self.pixels else f"{self.amount:g}"


DEFAULT_JITTER = Jitter(0.1)


def parse_jitter(text: str | None, structures: Sequence[Structure]) -> dict[str, Jitter]:
    """``"lesion=0.2,organ=5px"`` -> a jitter per structure name (`DEFAULT_JITTER` for those not named)."""
    jitter = {s.name: DEFAULT_JITTER for s in structures}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in jitter:
            raise SamedError(f"box jitter is NAME=AMOUNT per structure ({', '.join(jitter)}); got {part!r}")
        jitter[name.strip()] = Jitter.parse(value)
    return jitter


def _jitter(text) -> str | None:
    """What is wrong with a checkpoint's jitter entry, or None (see `Jitter.parse`)."""
    try:
        Jitter.parse(text)
    except (SamedError, AttributeError):
        return f"is {text!r}, not a jitter"
    return None


def perturb_box(box: Sequence[int], shape: tuple[int, int], jitter: Jitter,
                rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Move each side of ``box`` ``(y0, x0, y1, x1)`` outward by a uniform random amount up to the jitter's
    limit, clipped to the slice: the box stays inside the image and still holds the whole object."""
    sy, sx = jitter.limits(box)
    dy0, dx0, dy1, dx1 = rng.uniform(0, 1, 4) * (sy, sx, sy, sx)
    y0, x0, y1, x1 = box
    return (max(0, math.floor(y0 - dy0)), max(0, math.floor(x0 - dx0)),
            min(shape[0] - 1, math.ceil(y1 + dy1)), min(shape[1] - 1, math.ceil(x1 + dx1)))


def max_mask_loss(logits: torch.Tensor, targets: torch.Tensor,
                  loss_fn: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest per-mask loss of (N, 1, h, w) ``logits`` against ``targets``, and all N losses."""
    losses = torch.stack([loss_fn(logits[i:i + 1], targets[i:i + 1]) for i in range(len(logits))])
    return losses.max(), losses


@register
class CoTrain(ZeroShot, TrainedMethod):
    """Box prompts through a mask decoder fine-tuned on several structures at once."""

    name = "cotrain"
    kind = "napari-samed cotrain"
    what = "co-trained decoder"
    box_pad = 0  # trained on jittered boxes; the pad was measured for the pretrained decoder only
    state_keys = ("structures", "mode", "jitter", "history", "decoder")
    schema = {"structures": checks.list_of(checks.items(checks.text, checks.list_of(checks.whole(1), 1)), 1),
              "mode": checks.one_of(*MODES), "jitter": checks.mapping(_jitter),
              "history": checks.list_of(checks.mapping(checks.anything)), "decoder": checks.WEIGHTS}
    trained = True
    interactive = "decoder"
    prompts = ("box", "box3d")  # what it was trained with

    def __init__(self, base: Backbone, structures: Sequence[Structure] = (), mode: str = "cotrain",
                 jitter: dict[str, Jitter] | None = None):
        if mode not in MODES:
            raise SamedError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        self.base = base
        self.decoder = copy.deepcopy(base.mask_decoder)
        super().__init__(base.with_decoder(self.decoder))
        self.structures = list(structures)
        self.mode = mode
        self.jitter = jitter or {s.name: DEFAULT_JITTER for s in self.structures}
        self.window: str | tuple = "auto"
        self.history: list[dict] = []

    # -- training ------------------------------------------------------------------------------------------
    def training_items(self, slices: Sequence[TrainingSlice]) -> list[tuple[TrainingSlice, list[int]]]:
        """Training items: every slice with all its structures (co-train) or one per structure (single)."""
        if self.mode == "cotrain":
            return [(s, s.present()) for s in slices]
        return [(s, [i]) for s in slices for i in s.present()]

    def item_loss(self, sample: TrainingSlice, structures: list[int], rng: np.random.Generator,
                  loss_fn: torch.nn.Module) -> torch.Tensor:
        """Max-over-masks loss of one slice with one jittered box per structure, decoded as one batch."""
        shape = sample.masks.shape[1:]
        boxes = [perturb_box(mask_bbox(sample.masks[i]), shape, self.jitter[self.structures[i].name], rng)
                 for i in structures]
        logits, _ = self.backbone.low_res_logits(sample.embedding, shape, boxes=np.array(boxes))
        targets = (masks_to_grid(sample.masks[structures], LOW_RES) > 0.5).float()[:, None]
        return max_mask_loss(logits, targets.to(logits.device), loss_fn)[0]

    def fit(self, splits: SliceSplits, epochs: int = 10, batch: int = 4, lr: float = 1e-4, seed: int = 0,
            output: str | os.PathLike | None = None) -> Task[list[dict]]:
        """Task: train on ``splits.train``, validate on ``splits.val`` after each epoch; returns the history.

        The decoder keeps the epoch with the best validation DSC (tight boxes), also written to ``output``
        (atomically) whenever it improves and once more at the end, with the whole history and the window rule of
        the training slices.
        """
        if [s.name for s in splits.structures] != [s.name for s in self.structures]:
            raise SamedError("the training slices were made for other structures than this decoder's")
        items = self.training_items(splits.train)
        if not items or not splits.val:
            raise SamedError(f"nothing to train or validate on: {splits.summary()}")
        self.window = splits.window
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        stepper = Stepper(torch.optim.AdamW(self.decoder.parameters(), lr=lr, weight_decay=0.01))
        loss_fn = DiceCELoss(sigmoid=True, squared_pred=True)
        steps = math.ceil(len(items) / batch)
        total = epochs * steps
        best, self.history = BestState(self.decoder), []

        def batch_loss(chunk: list) -> torch.Tensor:
            return sum(self.item_loss(s, idx, rng, loss_fn) for s, idx in chunk) / len(chunk)

        for epoch in range(1, epochs + 1):
            self.decoder.train()
            order = rng.permutation(len(items))
            chunks = ([items[i] for i in order[step * batch:(step + 1) * batch]] for step in range(steps))
            losses = yield from train_steps(stepper, (partial(batch_loss, chunk) for chunk in chunks),
                                            (epoch - 1) * steps, total,
                                            lambda _, loss, epoch=epoch: f"epoch {epoch}/{epochs}, loss {loss:.4f}")
            dsc = float(np.mean(self.validate(splits.val)))
            self.history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_dsc": dsc})
            if best.offer(dsc) and output is not None:
                self.decoder.eval()
                self.save(output)
            yield Progress(epoch * steps, total, f"epoch {epoch}: mean loss {np.mean(losses):.4f}, "
                                                 f"validation DSC {dsc:.4f} (best {best.score:.4f})")
        best.restore()
        self.decoder.eval()
        if output is not None:
            self.save(output)  # the best epoch again, now with the whole history
        return self.history

    def predict(self, sample: TrainingSlice, boxes: Sequence[Sequence[int]] | None = None) -> np.ndarray:
        """(N, H, W) masks for the structures present on ``sample`` (tight boxes unless ``boxes``), one batch."""
        boxes = [mask_bbox(sample.masks[i]) for i in sample.present()] if boxes is None else boxes
        return self.box_masks(sample.embedding, sample.masks.shape[1:], boxes)

    def validate(self, slices: Sequence[TrainingSlice]) -> list[float]:
        """DSC of every structure on every slice, prompted with its tight box."""
        self.decoder.eval()
        scores = []
        for sample in slices:
            pred = self.predict(sample)
            scores += [dice(p, sample.masks[i]) for p, i in zip(pred, sample.present(), strict=True)]
        return scores

    # -- checkpoints ---------------------------------------------------------------------------------------
    @property
    def pretrained(self) -> Backbone:
        return self.base

    def state(self) -> dict:
        """The decoder, structures, mode, jitter and history."""
        return {"structures": [[s.name, list(s.values)] for s in self.structures], "mode": self.mode,
                "jitter": {name: str(j) for name, j in self.jitter.items()}, "history": self.history,
                "decoder": {k: v.cpu() for k, v in self.decoder.state_dict().items()}}

    @classmethod
    def from_state(cls, state: dict, backbone: Backbone, path: str | os.PathLike) -> CoTrain:
        structures = [Structure(name, tuple(values)) for name, values in state["structures"]]
        jitter = {name: Jitter.parse(text) for name, text in state["jitter"].items()}
        method = cls(backbone, structures, state["mode"], jitter)
        method.window, method.history = state["window"], list(state["history"])
        load_weights(method.decoder, state["decoder"], f"co-trained decoder checkpoint {path}")
        method.decoder.eval()
        return method

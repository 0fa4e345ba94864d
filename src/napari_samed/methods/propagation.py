"""Propagation of one object's mask through neighbouring slices, stopped where the object ends.

From a mask on slice z, each next slice (up, then down) is prompted with the bounding box of each part of the
previous slice's mask (`masks.part_boxes`: far-apart parts, such as the aorta's two cross-sections, one box
each), grown by about 1% of the slice size. Every propagated slice gets a `SliceQuality` from the model's own
signals; a `StopRule` ends the direction at the first slice that fails it, and that slice is not kept.
The rule's defaults were chosen on the real-data benchmark (docs/benchmarks.md, "Propagation stop").
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..masks import box_margin, dice, grow_box, part_boxes
from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from ..models.preprocess import SliceTransform, masks_to_grid


@dataclass(frozen=True)
class SliceQuality:
    """The model's signals on one propagated slice."""

    iou: float  #: the decoder's predicted IoU
    stability: float  #: IoU of the masks at logit thresholds +1 and -1 (SAM's stability score)
    area: int  #: mask pixels
    size: float  #: area relative to the starting slice's mask
    shift: float  #: centroid movement from the previous slice's mask, in units of its equivalent radius
    similarity: float  #: cosine similarity of the mask's mean image embedding to the starting slice's
    similarity_prev: float  #: the same to the previous slice's
    looks: float = 1.0  #: the part of the mask that looks like the object rather than its surroundings (`ObjectLook`)


@dataclass(frozen=True)
class StopRule:
    """Where an object ends: the first slice whose mask fails one of these bounds."""

    min_iou: float = 0.0
    min_stability: float = 0.0
    max_size: float = float("inf")
    max_shift: float = float("inf")
    min_similarity: float = -1.0
    min_similarity_prev: float = -1.0
    min_looks: float = 0.0

    def failure(self, q: SliceQuality) -> str | None:
        """Why ``q`` ends the object, or None when the slice is kept."""
        if q.iou < self.min_iou:
            return f"predicted IoU {q.iou:.2f} < {self.min_iou:g}"
        if q.stability < self.min_stability:
            return f"stability {q.stability:.2f} < {self.min_stability:g}"
        if q.size > self.max_size:
            return f"area {q.size:.1f}x the prompted slice's > {self.max_size:g}x"
        if q.shift > self.max_shift:
            return f"centroid moved {q.shift:.1f} radii > {self.max_shift:g}"
        if q.similarity < self.min_similarity:
            return f"looks unlike the prompted slice (similarity {q.similarity:.2f} < {self.min_similarity:g})"
        if q.similarity_prev < self.min_similarity_prev:
            return f"looks unlike the slice before (similarity {q.similarity_prev:.2f} < {self.min_similarity_prev:g})"
        if q.looks < self.min_looks:
            return f"only {q.looks:.0%} of the mask looks like the object (< {self.min_looks:.0%})"
        return None


#: Only an empty mask (or the end of the range) stops: a 3D box's rule (its z range bounds the object), and the
#: behaviour before the quality stop.
UNTIL_EMPTY = StopRule()
#: The default, chosen on the real-data benchmark (docs/benchmarks.md, "Propagation stop"): against `UNTIL_EMPTY`,
#: the mean overrun past the object fell from 7.3 to 0.9 slices and the mean volume DSC rose; ``min_looks`` (issue
#: 23, with the abdominal MR organs) took the mean overrun from 0.98 to 0.80 slices and DSC up by 0.001-0.006.
DEFAULT_STOP = StopRule(max_size=1.5, min_similarity=0.5, min_similarity_prev=0.85, min_looks=0.3)


@dataclass(frozen=True)
class Propagated:
    """One propagated slice."""

    z: int
    mask: np.ndarray
    quality: SliceQuality


#: Dice at which a re-propagated slice agrees with the object as it was: propagation from there on would find
#: what it found before, so it stops (`propagate`'s ``existing``).
AGREE = 0.9
#: The same for a negative click's correction (`propagate`'s ``combine="remove"``), whose mask only removes from the
#: old one: a slice agrees when the click removes under 4% of it there. At `AGREE` a correction stopped on a slice
#: where it still removed a sixth of the mask (a leak), and the leak stayed on every slice beyond.
AGREE_REMOVE = 0.98


@dataclass(frozen=True)
class Stop:
    """Where a direction of propagation ended: ``z`` is the last slice kept, ``reason`` why the next was not;
    ``ended``: the object ends there (an empty mask or the stop rule), as opposed to the end of the range or a
    slice that agrees with the object as it was."""

    z: int
    reason: str
    ended: bool = False


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


def stability(logits: np.ndarray) -> float:
    """SAM's stability score: IoU of the masks at logit thresholds +1 and -1 (0 when both are empty)."""
    loose = int((logits > -1).sum())
    return float((logits > 1).sum() / loose) if loose else 0.0


def appearance(embedding: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """The mean (256,) image embedding under a slice mask (on the 64×64 embedding grid)."""
    weights = masks_to_grid(mask[None], embedding.shape[-1])[0]
    return torch.einsum("chw,hw->c", embedding.float(), weights / weights.sum().clamp_min(1e-6))


@dataclass(frozen=True)
class ObjectLook:
    """What an object looks like, against what surrounds it, on the slice it was prompted on: the mean image
    embedding under its mask and in a ring around it (half the object's radius wide, at least 2 cells of the
    64×64 grid), each slice's mean embedding subtracted. A cell of another slice looks like the object when its
    embedding is closer (cosine) to the object's than to its surroundings'."""

    inside: torch.Tensor
    around: torch.Tensor

    @classmethod
    def of(cls, embedding: torch.Tensor, mask: np.ndarray) -> ObjectLook:
        cells, weights = _cells(embedding, mask.shape), _weights(embedding, mask)
        core = _core(weights)
        radius = max(2, round(0.5 * np.sqrt(core.sum() / np.pi)))
        ring = ndimage.binary_dilation(core, iterations=radius) & ~(weights > 0.05).numpy()
        if not ring.any():
            ring = ~(weights > 0.05).numpy()
        return cls(cells[:, core].mean(dim=1), cells[:, ring].mean(dim=1))

    @classmethod
    def against(cls, embedding: torch.Tensor, mask: np.ndarray, points: np.ndarray) -> ObjectLook:
        """The look of the object under ``mask`` against that of the cells holding ``points`` ``(y, x)`` (negative
        clicks: what the object is not)."""
        cells = _cells(embedding, mask.shape)
        grid = embedding.shape[-1] / max(mask.shape)
        ys, xs = (np.minimum((points[:, i] * grid).astype(int), cells.shape[i + 1] - 1) for i in (0, 1))
        return cls(cells[:, _core(_weights(embedding, mask))].mean(dim=1), cells[:, ys, xs].mean(dim=1))

    def _alike(self, cells: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(cells, self.inside[:, None, None], dim=0) > F.cosine_similarity(
            cells, self.around[:, None, None], dim=0)

    def fraction(self, embedding: torch.Tensor, mask: np.ndarray) -> float:
        """The part of ``mask`` (by area) on cells that look like the object."""
        weights = _weights(embedding, mask)
        return float((weights * self._alike(_cells(embedding, mask.shape))).sum() / weights.sum().clamp_min(1e-6))

    def alike(self, embedding: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
        """A slice mask of ``shape``: the pixels on cells that look like the object."""
        alike = self._alike(_cells(embedding, shape))[None, None].float()
        return F.interpolate(alike, size=shape, mode="nearest")[0, 0].numpy() > 0.5


def _cells(embedding: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A slice's embedding cells (256, h, w) without the padding, their mean subtracted."""
    h, w = SliceTransform(*shape, embedding.shape[-1]).resized
    cells = embedding[:, :h, :w].float()
    return cells - cells.mean(dim=(1, 2), keepdim=True)


def _weights(embedding: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """``mask``'s area fraction in each cell of `_cells` (h, w)."""
    h, w = SliceTransform(*mask.shape, embedding.shape[-1]).resized
    return masks_to_grid(mask[None], embedding.shape[-1])[0, :h, :w]


def _core(weights: torch.Tensor) -> np.ndarray:
    """The cells mostly inside a mask (those it touches when none is)."""
    return ((weights > 0.5) if (weights > 0.5).any() else (weights > 0)).numpy()


def quality(logits: np.ndarray, iou: float, first: np.ndarray, previous: np.ndarray, look: torch.Tensor,
            start: torch.Tensor, before: torch.Tensor, looks: float = 1.0) -> SliceQuality:
    """`SliceQuality` of the mask ``logits > 0`` (slice-sized logits), propagated from the mask ``first`` through
    ``previous`` (both non-empty); ``look``, ``start`` and ``before``: `appearance` of the three masks; ``looks``:
    `ObjectLook.fraction` of the mask."""
    mask = logits > 0
    area, prior = int(mask.sum()), int(previous.sum())
    shift = float(np.hypot(*(_centroid(mask) - _centroid(previous))) / np.sqrt(prior / np.pi)) if area else 0.0
    sims = [float(F.cosine_similarity(look, ref, dim=0)) for ref in (start, before)]
    return SliceQuality(iou, stability(logits), area, area / int(first.sum()), shift, *sims, looks)


def propagate(backbone: Backbone, embeddings: VolumeEmbeddings, z: int, mask: np.ndarray,
              z_range: tuple[int, int], limit: tuple[int, int, int, int] | None = None,
              rule: StopRule = DEFAULT_STOP, avoid: np.ndarray | None = None,
              existing: Mapping[int, np.ndarray] | None = None, combine: str | None = None,
              unlike: ObjectLook | None = None) -> Generator[Propagated, None, dict[int, Stop]]:
    """From ``mask`` (non-empty) on slice ``z``, segment the slices above, then below, within ``z_range``.

    ``limit`` clips every prompt box (a box known to hold the object). ``avoid``: a (z, y, x) mask of voxels the
    object must not take (locked objects), cut from every slice's mask before it prompts the next.
    ``existing``: the object's masks as they were (a correction re-propagates): a direction stops before the
    first slice where what it would keep agrees with the old mask there (`AGREE`; `AGREE_REMOVE` for "remove").
    ``combine`` says what it keeps: the new mask (None), the new mask added to the old one ("add": a positive
    click removes nothing), or the part of the old mask the new one covers ("remove": a negative click adds
    nothing; it stops where the object had no mask, and propagates what it keeps). ``unlike``: what the object
    looks like against what it must not take (`ObjectLook.against` negative clicks): pixels that look like the
    latter are not kept.
    Yields each kept slice; returns where and why each direction stopped: ``{+1: Stop, -1: Stop}``.
    """
    shape = embeddings.slice_shape
    margin = box_margin(shape)
    agree = AGREE_REMOVE if combine == "remove" else AGREE
    start = appearance(embeddings.get(z), mask)
    object_look = ObjectLook.of(embeddings.get(z), mask)
    stops = {}
    for step in (1, -1):
        prev, zz, before = mask, z + step, start
        while z_range[0] <= zz <= z_range[1]:
            old = np.zeros(shape, bool) if existing is None or zz not in existing else existing[zz]
            if combine == "remove" and not old.any():
                ended, reason = False, "the object had no mask there"
                break
            boxes = [grow_box(b, margin, shape) for b in part_boxes(prev)]
            if limit is not None:
                boxes = [(max(b[0], limit[0]), max(b[1], limit[1]), min(b[2], limit[2]), min(b[3], limit[3]))
                         for b in boxes]
            embedding = embeddings.get(zz)
            out = backbone.decode(embedding, shape, boxes=np.array(boxes))
            logits = out.logits[:, 0].amax(dim=0).numpy()
            if avoid is not None:
                logits = np.where(avoid[zz], -10.0, logits)  # below every threshold, stability's -1 too
            new = logits > 0
            kept = new if combine is None else (new | old) if combine == "add" else (new & old)
            if unlike is not None:
                kept = kept & unlike.alike(embedding, shape)
            ended, reason = True, "empty mask"
            if not kept.any():
                break
            if old.any() and dice(kept, old) >= agree:
                ended, reason = False, "agrees with the object as it was"
                break
            if not new.any():
                break
            look = appearance(embedding, new)
            q = quality(logits, float(out.iou[:, 0].mean()), mask, prev, look, start, before,
                        object_look.fraction(embedding, new))
            reason = rule.failure(q)
            if reason:
                break
            prev, before = (kept if combine == "remove" else new), look
            yield Propagated(zz, kept, q)
            zz += step
        else:
            ended, reason = False, "end of the range"
        stops[step] = Stop(zz - step, reason, ended)
    return stops

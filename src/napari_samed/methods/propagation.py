"""Propagation of one object's mask through neighbouring slices, stopped where the object ends.

From a mask on slice z, each next slice (up, then down) is prompted with the previous slice's mask bounding
box, grown by about 1% of the slice size. Every propagated slice gets a `SliceQuality` from the model's own
signals; a `StopRule` ends the direction at the first slice that fails it, and that slice is not kept.
The rule's defaults were chosen on the real-data benchmark (docs/benchmarks.md, "Propagation stop").
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..masks import grow_box, mask_bbox
from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from ..models.preprocess import masks_to_grid


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


@dataclass(frozen=True)
class StopRule:
    """Where an object ends: the first slice whose mask fails one of these bounds."""

    min_iou: float = 0.0
    min_stability: float = 0.0
    max_size: float = float("inf")
    max_shift: float = float("inf")
    min_similarity: float = -1.0
    min_similarity_prev: float = -1.0

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
        return None


#: Only an empty mask (or the end of the range) stops: a 3D box's rule (its z range bounds the object), and the
#: behaviour before the quality stop.
UNTIL_EMPTY = StopRule()
#: The default, chosen on the real-data benchmark (docs/benchmarks.md, "Propagation stop"): against `UNTIL_EMPTY`,
#: the mean overrun past the object fell from 7.3 to 0.9 slices and the mean volume DSC rose.
DEFAULT_STOP = StopRule(max_size=1.5, min_similarity=0.5, min_similarity_prev=0.85)


@dataclass(frozen=True)
class Propagated:
    """One propagated slice."""

    z: int
    mask: np.ndarray
    quality: SliceQuality


@dataclass(frozen=True)
class Stop:
    """Where a direction of propagation ended: ``z`` is the last slice kept, ``reason`` why the next was not."""

    z: int
    reason: str


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


def quality(logits: np.ndarray, iou: float, first: np.ndarray, previous: np.ndarray, look: torch.Tensor,
            start: torch.Tensor, before: torch.Tensor) -> SliceQuality:
    """`SliceQuality` of the mask ``logits > 0`` (slice-sized logits), propagated from the mask ``first`` through
    ``previous`` (both non-empty); ``look``, ``start`` and ``before``: `appearance` of the three masks."""
    mask = logits > 0
    area, prior = int(mask.sum()), int(previous.sum())
    shift = float(np.hypot(*(_centroid(mask) - _centroid(previous))) / np.sqrt(prior / np.pi)) if area else 0.0
    sims = [float(F.cosine_similarity(look, ref, dim=0)) for ref in (start, before)]
    return SliceQuality(iou, stability(logits), area, area / int(first.sum()), shift, *sims)


def propagate(backbone: Backbone, embeddings: VolumeEmbeddings, z: int, mask: np.ndarray,
              z_range: tuple[int, int], limit: tuple[int, int, int, int] | None = None,
              rule: StopRule = DEFAULT_STOP, avoid: np.ndarray | None = None
              ) -> Generator[Propagated, None, dict[int, Stop]]:
    """From ``mask`` (non-empty) on slice ``z``, segment the slices above, then below, within ``z_range``.

    ``limit`` clips every prompt box (a box known to hold the object). ``avoid``: a (z, y, x) mask of voxels the
    object must not take (locked objects), cut from every slice's mask before it prompts the next. Yields each
    kept slice; returns where and why each direction stopped: ``{+1: Stop, -1: Stop}``.
    """
    shape = embeddings.slice_shape
    margin = max(2, round(0.01 * max(shape)))
    start = appearance(embeddings.get(z), mask)
    stops = {}
    for step in (1, -1):
        prev, zz, before = mask, z + step, start
        while z_range[0] <= zz <= z_range[1]:
            box = grow_box(mask_bbox(prev), margin, shape)
            if limit is not None:
                box = (max(box[0], limit[0]), max(box[1], limit[1]), min(box[2], limit[2]), min(box[3], limit[3]))
            embedding = embeddings.get(zz)
            out = backbone.decode(embedding, shape, boxes=np.array([box]))
            logits = out.logits[0, 0].numpy()
            if avoid is not None:
                logits = np.where(avoid[zz], -10.0, logits)  # below every threshold, stability's -1 too
            if not (logits > 0).any():
                reason = "empty mask"
                break
            look = appearance(embedding, logits > 0)
            q = quality(logits, float(out.iou[0, 0]), mask, prev, look, start, before)
            reason = rule.failure(q)
            if reason:
                break
            prev, before = logits > 0, look
            yield Propagated(zz, prev, q)
            zz += step
        else:
            reason = "end of the range"
        stops[step] = Stop(zz - step, reason)
    return stops

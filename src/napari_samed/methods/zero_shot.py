"""Zero-shot prompted segmentation with a pretrained SAM / MedSAM / LiteMedSAM (the baseline of all papers).

Boxes and points on a slice; several objects at once; a 3D box propagated from its middle slice up and down
(each slice prompted with the previous mask's bounding box). Box-only backbones turn clicks into boxes by
trying candidate boxes around the positive points and keeping the most plausible mask (see `click_to_mask`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from .base import PROMPT_KINDS, Progress, Task, register
from .prompts import BoxPrompt3D, Prompt, SlicePrompt, check_prompts

#: Candidate half-margins around the clicked points, as fractions of the slice's longest side.
CLICK_MARGINS = (0.015, 0.025, 0.04, 0.06, 0.085, 0.12, 0.17, 0.24, 0.33)
#: Refinement rounds of a click's box from its own mask.
CLICK_REFINE = 3
#: Boxes decoded in one batch: bounds the memory of many boxes on one slice.
BOX_CHUNK = 32


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)`` of a 2D mask's foreground, or None when it is empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if not len(ys):
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return (int(ys[0]), int(xs[0]), int(ys[-1]), int(xs[-1]))


def grow_box(box: tuple[int, int, int, int], margin: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    y0, x0, y1, x1 = box
    return (max(y0 - margin, 0), max(x0 - margin, 0), min(y1 + margin, shape[0] - 1), min(x1 + margin, shape[1] - 1))


def _respects(mask: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> bool:
    """Every positive point inside the mask and no negative point."""
    pos = [mask[int(y), int(x)] for y, x in positives]
    neg = [mask[int(y), int(x)] for y, x in negatives]
    return all(pos) and not any(neg)


def click_to_mask(backbone: Backbone, embedding, shape: tuple[int, int], positives: np.ndarray,
                  negatives: np.ndarray) -> np.ndarray:
    """Segment from clicks with a box-only decoder.

    Candidate boxes of growing size around the positive points go through the decoder as one batch; the mask
    with the best IoU-head score among those that hold every positive and no negative point wins. Its own
    bounding box is then decoded again, a few rounds, while the result still respects the points.
    Measured on single clicks (docs/benchmarks.md): the IoU head picks better than mask stability across
    sizes or the smallest box that holds the whole mask.
    """
    y0, x0 = positives.min(axis=0)
    y1, x1 = positives.max(axis=0)
    core = (int(y0), int(x0), int(np.ceil(y1)), int(np.ceil(x1)))
    boxes = [grow_box(core, max(2, round(f * max(shape))), shape) for f in CLICK_MARGINS]
    out = backbone.decode(embedding, shape, boxes=np.array(boxes))
    masks = out.masks()[:, 0]
    ok = np.array([m.any() and _respects(m, positives, negatives) for m in masks])
    best = masks[int(np.argmax(out.iou[:, 0].numpy() + ok))]  # a mask that respects the clicks beats any other
    margin = max(2, round(0.01 * max(shape)))
    for _ in range(CLICK_REFINE):
        box = mask_bbox(best)
        if box is None:
            break
        refined = backbone.decode(embedding, shape, boxes=np.array([grow_box(box, margin, shape)])).masks()[0, 0]
        if not (refined.any() and _respects(refined, positives, negatives)) or np.array_equal(refined, best):
            break
        best = refined
    return best


def _box_only(obj: SlicePrompt) -> bool:
    return obj.box is not None and not obj.points


@register
class ZeroShot:
    """Prompted segmentation with the backbone's pretrained decoder."""

    name = "zero-shot"
    trained = False
    prompts = PROMPT_KINDS

    def __init__(self, backbone: Backbone):
        self.backbone = backbone

    def segment(self, embeddings: VolumeEmbeddings, prompts: list[Prompt]) -> Task[np.ndarray]:
        """Task: label volume (z, y, x) with each object's label; later objects paint over earlier ones.

        The plain boxes of one slice go through the decoder in batches of up to `BOX_CHUNK`.
        """
        check_prompts(prompts, embeddings.data.shape)
        top = max(obj.label for obj in prompts)
        labels = np.zeros(embeddings.data.shape, np.uint8 if top < 256 else np.uint16)
        total = sum(o.box[3] - o.box[0] + 1 if isinstance(o, BoxPrompt3D) else 1 for o in prompts)
        done = 0
        ahead: dict[int, np.ndarray] = {}  # id(object) -> mask of box-only objects decoded in a batch ahead of use
        for i, obj in enumerate(prompts):
            if isinstance(obj, BoxPrompt3D):
                slices = self.propagate_box(embeddings, obj)
            elif _box_only(obj):
                if id(obj) not in ahead:
                    batch = [o for o in prompts[i:] if isinstance(o, SlicePrompt) and o.z == obj.z and _box_only(o)]
                    batch = batch[:BOX_CHUNK]
                    ahead.update(zip(map(id, batch), self.segment_boxes(embeddings, obj.z, [o.box for o in batch]),
                                     strict=True))
                slices = [(obj.z, ahead.pop(id(obj)))]
            else:
                slices = [(obj.z, self.segment_slice(embeddings, obj))]
            for z, mask in slices:
                labels[z][mask] = obj.label
                done += 1
                yield Progress(done, total, f"object {obj.label}, slice {z}")
        return labels

    def segment_boxes(self, embeddings: VolumeEmbeddings, z: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        """(N, H, W) masks of N boxes on slice ``z``, decoded as one batch against the slice's embedding."""
        return self.box_masks(embeddings.get(z), embeddings.slice_shape, boxes)

    def box_masks(self, embedding, shape: tuple[int, int], boxes) -> np.ndarray:
        """(N, H, W) masks of N boxes ``(y0, x0, y1, x1)`` against one slice embedding, decoded in batches."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        return np.concatenate([self.backbone.decode(embedding, shape, boxes=boxes[i:i + BOX_CHUNK]).masks()[:, 0]
                               for i in range(0, len(boxes), BOX_CHUNK)])

    def segment_slice(self, embeddings: VolumeEmbeddings, obj: SlicePrompt) -> np.ndarray:
        """Boolean mask of one object on its slice."""
        emb, shape = embeddings.get(obj.z), embeddings.slice_shape
        box = None if obj.box is None else np.array([obj.box])
        if self.backbone.spec.box_only or not obj.points:
            if box is None:
                return click_to_mask(self.backbone, emb, shape, obj.positives, obj.negatives)
            return self.backbone.decode(emb, shape, boxes=box).masks()[0, 0]
        points = np.array(obj.points, dtype=float)[None]
        labels = np.array(obj.point_labels)[None]
        multimask = box is None and len(obj.points) == 1  # a lone click is ambiguous: keep SAM's best guess
        out = self.backbone.decode(emb, shape, boxes=box, points=points, point_labels=labels, multimask=multimask)
        return out.masks()[0, int(out.iou[0].argmax())]

    def propagate_box(self, embeddings: VolumeEmbeddings, obj: BoxPrompt3D) -> Iterator[tuple[int, np.ndarray]]:
        """Segment the middle slice of a 3D box, then propagate up and down inside the box's z range."""
        z0, y0, x0, z1, y1, x1 = obj.box
        mid = (z0 + z1) // 2
        first = self.segment_slice(embeddings, SlicePrompt(mid, obj.label, (y0, x0, y1, x1)))
        yield mid, first
        yield from self.propagate_mask(embeddings, mid, first, (z0, z1), limit=(y0, x0, y1, x1))

    def propagate_mask(self, embeddings: VolumeEmbeddings, z: int, mask: np.ndarray, z_range: tuple[int, int],
                       limit: tuple[int, int, int, int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """From ``mask`` on slice ``z``, segment the neighbouring slices up and down within ``z_range``.

        Each slice is prompted with the previous slice's mask bounding box grown by about 1% of the slice size
        (clipped to ``limit``, a box that holds the object); propagation stops where the mask vanishes.
        """
        shape = embeddings.slice_shape
        margin = max(2, round(0.01 * max(shape)))
        for step in (1, -1):
            prev, zz = mask, z + step
            while z_range[0] <= zz <= z_range[1]:
                box = mask_bbox(prev)
                if box is None:
                    break
                box = grow_box(box, margin, shape)
                if limit is not None:
                    box = (max(box[0], limit[0]), max(box[1], limit[1]), min(box[2], limit[2]), min(box[3], limit[3]))
                prev = self.backbone.decode(embeddings.get(zz), shape, boxes=np.array([box])).masks()[0, 0]
                if not prev.any():
                    break
                yield zz, prev
                zz += step

"""Zero-shot prompted segmentation with a pretrained SAM / MedSAM / LiteMedSAM (the baseline of all papers).

Boxes and points on a slice; several objects at once; a 3D box propagated from its middle slice up and down
(each slice prompted with the previous mask's bounding box). Box-only backbones turn clicks into boxes by
trying candidate boxes around the positive points and keeping the most plausible mask (see `click_to_mask`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from ..masks import deepest_point, grow_box, label_dtype, mask_bbox
from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from ..tasks import Progress, Task, relay
from .base import PROMPT_KINDS, register
from .prompts import BoxPrompt3D, ObjectPrompt3D, Prompt, SlicePrompt, check_prompts
from .propagation import DEFAULT_STOP, UNTIL_EMPTY, SliceQuality, Stop, StopRule, propagate

#: Candidate half-margins around the clicked points, as fractions of the slice's longest side. Chosen on the
#: real-data benchmark (benchmarks/click_search.py): these five beat the nine used before on the structures'
#: largest slices (mean DSC 0.785 against 0.736, minimum 0.415 against 0.152) in about half the time.
CLICK_MARGINS = (0.025, 0.05, 0.085, 0.145, 0.24)
#: Refinement rounds of a click's box from its own mask (a second round changed no benchmark click).
CLICK_REFINE = 1
#: Boxes decoded in one batch: bounds the memory of many boxes on one slice.
BOX_CHUNK = 32


def _respects(mask: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> bool:
    """Every positive point inside the mask and no negative point."""
    pos = [mask[int(y), int(x)] for y, x in positives]
    neg = [mask[int(y), int(x)] for y, x in negatives]
    return all(pos) and not any(neg)


def _best_box(backbone: Backbone, embedding, shape: tuple[int, int], boxes: list, positives: np.ndarray,
              negatives: np.ndarray) -> np.ndarray:
    """Decode candidate ``boxes`` as one batch; the mask with the best IoU-head score among those that hold every
    positive and no negative point wins (the best-scored mask when none does)."""
    out = backbone.decode(embedding, shape, boxes=np.array(boxes))
    masks = out.masks()[:, 0]
    ok = np.array([m.any() and _respects(m, positives, negatives) for m in masks])
    return masks[int(np.argmax(out.iou[:, 0].numpy() + ok))]  # a mask that respects the clicks beats any other


def click_to_mask(backbone: Backbone, embedding, shape: tuple[int, int], positives: np.ndarray,
                  negatives: np.ndarray) -> np.ndarray:
    """Segment from clicks with a box-only decoder.

    Candidate boxes of growing size around the positive points go through the decoder as one batch (`_best_box`).
    The winner's own bounding box is then decoded again, a few rounds, while the result still respects the points.
    Measured on single clicks (docs/benchmarks.md): the IoU head picks better than mask stability, their
    product, the refined mask's IoU or a penalty for masks that touch their box.
    """
    y0, x0 = positives.min(axis=0)
    y1, x1 = positives.max(axis=0)
    core = (int(y0), int(x0), int(np.ceil(y1)), int(np.ceil(x1)))
    boxes = [grow_box(core, max(2, round(f * max(shape))), shape) for f in CLICK_MARGINS]
    best = _best_box(backbone, embedding, shape, boxes, positives, negatives)
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


def box_with_clicks(backbone: Backbone, embedding, shape: tuple[int, int], box: tuple[int, int, int, int],
                    positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """A box refined by clicks, with a box-only decoder: positive points outside the box extend it, and a
    negative point inside it offers the four boxes cut at that point that still hold the positives; the
    candidates (also the box grown a little) are decoded as one batch and chosen by `_best_box`."""
    ys = [box[0], box[2], *positives[:, 0]]
    xs = [box[1], box[3], *positives[:, 1]]
    base = (int(min(ys)), int(min(xs)), int(np.ceil(max(ys))), int(np.ceil(max(xs))))
    boxes = [base] + [grow_box(base, max(2, round(f * max(shape))), shape) for f in CLICK_MARGINS[:2]]
    py, px = positives[:, 0], positives[:, 1]
    y0, x0, y1, x1 = base
    for y, x in negatives.astype(int):
        if not (y0 <= y <= y1 and x0 <= x <= x1):
            continue
        for cut in ((y + 1, x0, y1, x1), (y0, x0, y - 1, x1), (y0, x + 1, y1, x1), (y0, x0, y1, x - 1)):
            if cut[0] <= cut[2] and cut[1] <= cut[3] and np.all((py >= cut[0]) & (py <= cut[2])
                                                                   & (px >= cut[1]) & (px <= cut[3])):
                boxes.append(cut)
    return _best_box(backbone, embedding, shape, boxes, positives, negatives)


def lock_negatives(prompt: SlicePrompt, avoid: np.ndarray) -> SlicePrompt:
    """``prompt`` with a negative click at the deepest pixel of each part of ``avoid`` (a slice mask of voxels the
    object must not take) near it: inside its box, or within the widest click margin of its positive points."""
    from scipy import ndimage

    shape = avoid.shape
    if prompt.box is not None:
        region = prompt.box
    else:
        (y0, x0), (y1, x1) = prompt.positives.min(axis=0), prompt.positives.max(axis=0)
        region = grow_box((int(y0), int(x0), int(y1), int(x1)), round(CLICK_MARGINS[-1] * max(shape)), shape)
    y0, x0, y1, x1 = region
    near = np.zeros_like(avoid)
    near[y0:y1 + 1, x0:x1 + 1] = avoid[y0:y1 + 1, x0:x1 + 1]
    parts, n = ndimage.label(near)
    if not n:
        return prompt
    clicks = [deepest_point(parts == i) for i in range(1, n + 1)]
    return replace(prompt, points=[*prompt.points, *[(float(y), float(x)) for y, x in clicks]],
                   point_labels=[*prompt.point_labels, *[0] * n])


@dataclass
class Object3D:
    """One object segmented through the volume: its mask on each slice it covers, the `SliceQuality` of every
    propagated slice, and where and why propagation stopped below (-1) and above (+1) it."""

    label: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    quality: dict[int, SliceQuality] = field(default_factory=dict)
    stops: dict[int, Stop] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the slices covered and why each end stopped."""
        zs = [z for z, m in self.masks.items() if m.any()]
        if not zs:
            return f"object {self.label}: empty"
        ends = "; ".join(f"{'above' if d > 0 else 'below'} slice {s.z}: {s.reason}"
                         for d, s in sorted(self.stops.items(), reverse=True))
        return f"object {self.label}: slices {min(zs)}-{max(zs)} ({len(zs)}); stopped {ends}"


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
        labels, _ = yield from self.segment_reporting(embeddings, prompts)
        return labels

    def segment_reporting(self, embeddings: VolumeEmbeddings,
                          prompts: list[Prompt]) -> Task[tuple[np.ndarray, list[Object3D]]]:
        """Task: `segment`'s label volume, and the `Object3D` of each `ObjectPrompt3D` (where and why it stopped)."""
        check_prompts(prompts, embeddings.data.shape)
        top = max(obj.label for obj in prompts)
        labels = np.zeros(embeddings.data.shape, label_dtype(top))
        nz = embeddings.num_slices
        total = sum(o.box[3] - o.box[0] + 1 if isinstance(o, BoxPrompt3D) else nz if isinstance(o, ObjectPrompt3D)
                    else 1 for o in prompts)
        done = 0
        ahead: dict[int, np.ndarray] = {}  # id(object) -> mask of box-only objects decoded in a batch ahead of use
        objects = []
        for i, obj in enumerate(prompts):
            if isinstance(obj, ObjectPrompt3D):
                result = yield from relay(self.segment_object(embeddings, obj),
                                          lambda step, base=done: Progress(base + step.done, total, step.message))
                done += nz - len(result.masks)  # the slices it does not cover count as done
                objects.append(result)
                slices = result.masks.items()
            elif isinstance(obj, BoxPrompt3D):
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
                if not isinstance(obj, ObjectPrompt3D):
                    yield Progress(done, total, f"object {obj.label}, slice {z}")
        return labels, objects

    def segment_object(self, embeddings: VolumeEmbeddings, obj: ObjectPrompt3D, rule: StopRule = DEFAULT_STOP,
                       avoid: np.ndarray | None = None) -> Task[Object3D]:
        """Task: one object through the volume from its prompts on one or more slices.

        Each prompted slice is segmented from its own prompts (yielded as the ``partial`` result {z: mask}, so a
        GUI can show them at once); propagation (`propagation.propagate`, stopped by ``rule``) then goes below the
        lowest and above the highest prompted slice, and from each prompted slice halfway to the next.
        ``avoid``: a (z, y, x) mask of voxels the object must not take (locked objects), see `segment_slice`.
        """
        check_prompts([obj], embeddings.data.shape)
        result = Object3D(obj.label)
        nz = embeddings.num_slices
        for prompt in sorted(obj.slices, key=lambda p: p.z):
            mask = self.segment_slice(embeddings, prompt, None if avoid is None else avoid[prompt.z])
            result.masks[prompt.z] = result.masks[prompt.z] | mask if prompt.z in result.masks else mask
        yield Progress(len(result.masks), nz, f"object {obj.label}: prompted slices done, propagating",
                       partial=dict(result.masks))

        def keep(step):
            result.masks[step.z], result.quality[step.z] = step.mask, step.quality
            return Progress(len(result.masks), nz, f"object {obj.label}, slice {step.z}")

        zs = sorted(result.masks)
        for i, z in enumerate(zs):
            low = 0 if i == 0 else (zs[i - 1] + z) // 2 + 1
            high = nz - 1 if i == len(zs) - 1 else (z + zs[i + 1]) // 2
            if result.masks[z].any():
                run = propagate(self.backbone, embeddings, z, result.masks[z], (low, high), rule=rule, avoid=avoid)
                stops = yield from relay(run, keep)
                if i == 0:
                    result.stops[-1] = stops[-1]
                if i == len(zs) - 1:
                    result.stops[1] = stops[1]
        return result

    def segment_boxes(self, embeddings: VolumeEmbeddings, z: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        """(N, H, W) masks of N boxes on slice ``z``, decoded as one batch against the slice's embedding."""
        return self.box_masks(embeddings.get(z), embeddings.slice_shape, boxes)

    def box_masks(self, embedding, shape: tuple[int, int], boxes) -> np.ndarray:
        """(N, H, W) masks of N boxes ``(y0, x0, y1, x1)`` against one slice embedding, decoded in batches."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        return np.concatenate([self.backbone.decode(embedding, shape, boxes=boxes[i:i + BOX_CHUNK]).masks()[:, 0]
                               for i in range(0, len(boxes), BOX_CHUNK)])

    def segment_slice(self, embeddings: VolumeEmbeddings, obj: SlicePrompt,
                      avoid: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of one object on its slice.

        A box-only backbone takes a box with clicks through `box_with_clicks` and clicks alone through
        `click_to_mask`. ``avoid``: a slice mask the object must not take (locked objects): its parts near the
        prompt become negative clicks (`lock_negatives`) and it is cut from the mask.
        """
        if avoid is not None and avoid.any():
            obj = lock_negatives(obj, avoid)
        emb, shape = embeddings.get(obj.z), embeddings.slice_shape
        box = None if obj.box is None else np.array([obj.box])
        if self.backbone.spec.box_only or not obj.points:
            if box is None:
                mask = click_to_mask(self.backbone, emb, shape, obj.positives, obj.negatives)
            elif obj.points:
                mask = box_with_clicks(self.backbone, emb, shape, obj.box, obj.positives, obj.negatives)
            else:
                mask = self.backbone.decode(emb, shape, boxes=box).masks()[0, 0]
        else:
            points = np.array(obj.points, dtype=float)[None]
            labels = np.array(obj.point_labels)[None]
            multimask = box is None and len(obj.points) == 1  # a lone click is ambiguous: keep SAM's best guess
            out = self.backbone.decode(emb, shape, boxes=box, points=points, point_labels=labels,
                                       multimask=multimask)
            mask = out.masks()[0, int(out.iou[0].argmax())]
        return mask if avoid is None else mask & ~avoid

    def propagate_box(self, embeddings: VolumeEmbeddings, obj: BoxPrompt3D,
                      rule: StopRule = UNTIL_EMPTY) -> Iterator[tuple[int, np.ndarray]]:
        """Segment the middle slice of a 3D box, then propagate up and down inside the box (`propagate`).

        The box's z range is the user's word on where the object ends, so by default only an empty mask stops
        sooner: the quality stop cut compact lesions short (DeepLesion 000001: DSC 0.959 to 0.580).
        """
        z0, y0, x0, z1, y1, x1 = obj.box
        mid = (z0 + z1) // 2
        first = self.segment_slice(embeddings, SlicePrompt(mid, obj.label, (y0, x0, y1, x1)))
        yield mid, first
        if first.any():
            for step in propagate(self.backbone, embeddings, mid, first, (z0, z1), (y0, x0, y1, x1), rule):
                yield step.z, step.mask

"""Zero-shot prompted segmentation with a pretrained SAM / MedSAM / LiteMedSAM (the baseline of all papers).

Boxes and points on a slice; several objects at once; a 3D box propagated from its middle slice up and down
(each slice prompted with the previous mask's bounding box). Box-only backbones turn clicks into boxes by
trying candidate boxes around the positive points and keeping the most plausible mask (`methods/clicks.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from ..errors import SamedError
from ..masks import box_margin, deepest_point, grow_box, label_dtype, mask_bbox, part_boxes
from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from ..tasks import Progress, Task, relay
from .base import PROMPT_KINDS, register
from .clicks import box_with_clicks, click_to_mask, lock_negatives
from .prompts import BoxPrompt3D, ObjectPrompt3D, Prompt, SlicePrompt, check_prompts
from .propagation import DEFAULT_STOP, UNTIL_EMPTY, ObjectLook, SliceQuality, Stop, StopRule, propagate

#: Boxes decoded in one batch: bounds the memory of many boxes on one slice.
BOX_CHUNK = 32
#: Pixels of the model's input by which a user's box is grown: the SAM family was trained on boxes a few pixels
#: wider than the object, and a tight box can miss it (MR organs on 117-pixel slices: DSC 0.03 instead of 0.85).
#: Chosen on the real-data benchmark (docs/benchmarks.md, "A user's box"): a box on every slice, mean DSC 0.803
#: tight, 0.822 grown by 2, 0.821 by 4.
BOX_PAD = 2


@dataclass
class Object3D:
    """One object segmented through the volume: its mask on each slice it covers, the `SliceQuality` of every
    propagated slice, and where and why propagation stopped below (-1) and above (+1) it.

    ``origin`` says where each mask came from: its own slice for a prompted slice (an anchor), the prompted slice
    it was propagated from otherwise (absent when unknown: a painted or restored mask). ``touched``: the slices
    the last segmentation wrote, cleared ones included.
    """

    label: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    quality: dict[int, SliceQuality] = field(default_factory=dict)
    stops: dict[int, Stop] = field(default_factory=dict)
    origin: dict[int, int] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)

    def copy(self) -> Object3D:
        """A copy to segment further (the masks are shared until replaced; nothing is touched yet)."""
        return Object3D(self.label, dict(self.masks), dict(self.quality), dict(self.stops), dict(self.origin))

    def put(self, z: int, mask: np.ndarray, origin: int | None) -> None:
        """Set slice ``z``'s mask, from ``origin`` (None: the mask is empty, it comes from nowhere)."""
        self.masks[z] = mask
        if origin is None:
            self.origin.pop(z, None)
        else:
            self.origin[z] = origin
        self.quality.pop(z, None)
        self.touched.add(z)

    def anchors(self) -> list[int]:
        """The prompted slices, in order."""
        return sorted(z for z, o in self.origin.items() if o == z)

    def clear_through(self, z: int, step: int, zs: range) -> None:
        """Empty the slices of ``zs`` (beyond ``z`` in direction ``step``) whose masks were propagated through
        slice ``z``: from ``z`` itself or from a prompted slice behind it."""
        for zz in zs:
            o = self.origin.get(zz)
            if o is not None and (z - o) * step >= 0 and self.masks[zz].any():
                self.put(zz, np.zeros_like(self.masks[zz]), None)

    def describe(self) -> str:
        """One line: the slices covered and why each end stopped."""
        zs = [z for z, m in self.masks.items() if m.any()]
        if not zs:
            return f"object {self.label}: empty"
        ends = "; ".join(f"{'above' if d > 0 else 'below'} slice {s.z}: {s.reason}"
                         for d, s in sorted(self.stops.items(), reverse=True))
        return f"object {self.label}: slices {min(zs)}-{max(zs)} ({len(zs)}); stopped {ends}"


def _clicks(positives, negatives) -> SlicePrompt:
    """A slice prompt of clicks ``(y, x)``."""
    points = [(float(y), float(x)) for y, x in [*positives, *negatives]]
    return SlicePrompt(0, 0, points=points, point_labels=[1] * len(positives) + [0] * len(negatives))


def _inside(box, y: float, x: float) -> bool:
    return box[0] <= y <= box[2] and box[1] <= x <= box[3]


def _reaches(box, y: float, x: float, near: float = 0.25) -> bool:
    """Whether ``(y, x)`` lies within ``near`` times the box's size of it."""
    dy, dx = near * (box[2] - box[0] + 1), near * (box[3] - box[1] + 1)
    return box[0] - dy <= y <= box[2] + dy and box[1] - dx <= x <= box[3] + dx


def _combine(prompt: SlicePrompt, obj: Object3D) -> str | None:
    """How a step's clicks change an object that has a mask already: a positive last click only adds ("add"), a
    negative one only removes ("remove"); a box, or an object without a mask, starts afresh (None)."""
    if prompt.box is not None or not prompt.points or not any(m.any() for m in obj.masks.values()):
        return None
    return "add" if prompt.point_labels[-1] else "remove"


def _box_only(obj: SlicePrompt) -> bool:
    return obj.box is not None and not obj.points


@register
class ZeroShot:
    """Prompted segmentation with the backbone's pretrained decoder."""

    name = "zero-shot"
    trained = False
    prompts = PROMPT_KINDS
    box_pad = BOX_PAD  #: `BOX_PAD` for this method's decoder

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
                       avoid: np.ndarray | None = None, existing: Object3D | None = None) -> Task[Object3D]:
        """Task: one object through the volume, a step for each prompted slice of ``obj``, in order.

        A step segments its slice from that slice's prompts (`segment_slice`; clicks without a box correct the
        object's mask there, if it has one) and yields it at once as the ``partial`` result {z: mask}. It then
        propagates from that slice up and down (`propagation.propagate`, stopped by ``rule``) until the object
        ends, the next prompted slice, or a slice where the new mask agrees with the object as it was.

        On an object that has a mask already, a step whose last click is positive only adds to it and one whose
        last click is negative only removes from it (`_combine`): a click never undoes what it was not meant to.
        What a negative click removes is also removed on the slices it propagates to where it looks like the
        clicked spot (`ObjectLook.against`). Where the object now ends sooner, or the slice's mask is empty, the
        masks that had been propagated through the slice are cleared up to the next prompted slice (never by a
        positive click). ``existing``: the object before these steps (an interactive session's), else none.
        ``avoid``: a (z, y, x) mask of voxels the object must not take (locked objects), see `segment_slice`.
        """
        check_prompts([obj], embeddings.data.shape)
        result = Object3D(obj.label) if existing is None else existing.copy()
        if not any(m.any() for m in result.masks.values()) and not any(p.box or len(p.positives) for p in obj.slices):
            raise SamedError(f"object {obj.label} has only negative points; add a positive point or a box")
        nz = embeddings.num_slices

        def keep(step, z):
            result.put(step.z, step.mask, z)
            result.quality[step.z] = step.quality
            return Progress(len(result.touched), nz, f"object {obj.label}, slice {step.z}")

        for prompt in obj.slices:
            z = prompt.z
            base = result.masks.get(z)
            combine = _combine(prompt, result)
            mask = self.segment_slice(embeddings, prompt, None if avoid is None else avoid[z], base)
            if combine and base is not None:
                mask = (mask | base) if combine == "add" else (mask & base)
            unlike = None
            if combine == "remove" and mask.any():
                unlike = ObjectLook.against(embeddings.get(z), mask, prompt.negatives)
            result.put(z, mask, z)
            yield Progress(len(result.touched), nz, f"object {obj.label}: slice {z} segmented, propagating",
                           partial={z: mask})
            anchors = result.anchors()
            below = max((a for a in anchors if a < z), default=-1)
            above = min((a for a in anchors if a > z), default=nz)
            if not mask.any():
                result.clear_through(z, 1, range(z + 1, above))
                result.clear_through(z, -1, range(z - 1, below, -1))
                continue
            run = propagate(self.backbone, embeddings, z, mask, (below + 1, above - 1), rule=rule, avoid=avoid,
                            existing=result.masks, combine=combine, unlike=unlike)
            stops = yield from relay(run, lambda step, z=z: keep(step, z))
            for step, stop in stops.items():
                end = above if step > 0 else below
                if stop.ended and combine != "add":
                    result.clear_through(z, step, range(stop.z + step, end, step))
                if end in (-1, nz) and (stop.ended or end == stop.z + step):
                    result.stops[step] = stop
        return result

    def segment_boxes(self, embeddings: VolumeEmbeddings, z: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        """(N, H, W) masks of N user boxes on slice ``z`` (grown by `box_pad`), decoded as one batch against the
        slice's embedding."""
        shape = embeddings.slice_shape
        return self.box_masks(embeddings.get(z), shape, [self.padded(box, shape) for box in boxes])

    def padded(self, box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """A user's box grown by `box_pad` pixels of the model's input."""
        return grow_box(box, round(self.box_pad * max(shape) / self.backbone.spec.image_size), shape)

    def box_masks(self, embedding, shape: tuple[int, int], boxes) -> np.ndarray:
        """(N, H, W) masks of N boxes ``(y0, x0, y1, x1)`` against one slice embedding, decoded in batches."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        return np.concatenate([self.backbone.decode(embedding, shape, boxes=boxes[i:i + BOX_CHUNK]).masks()[:, 0]
                               for i in range(0, len(boxes), BOX_CHUNK)])

    def segment_slice(self, embeddings: VolumeEmbeddings, obj: SlicePrompt, avoid: np.ndarray | None = None,
                      base: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of one object on its slice.

        A user's box is grown by `box_pad`. A box-only backbone takes a box with clicks through `box_with_clicks`
        and clicks alone through `click_to_mask`. ``base``: the object's mask on this slice as it is (a 3D
        object's), which clicks without a box correct (`correct`); negative clicks alone where the object has no
        mask give an empty mask.
        ``avoid``: a slice mask the object must not take (locked objects): its parts near the prompt become
        negative clicks (`lock_negatives`) and it is cut from the mask.
        """
        emb, shape = embeddings.get(obj.z), embeddings.slice_shape
        if obj.box is None and base is not None and base.any():
            mask = self.correct(emb, shape, base, obj.positives, obj.negatives)
        elif obj.box is None and not len(obj.positives):
            mask = np.zeros(shape, bool)
        else:
            if obj.box is not None:
                obj = replace(obj, box=self.padded(obj.box, shape))
            if avoid is not None and avoid.any():
                obj = lock_negatives(obj, avoid)
            mask = self._prompted(emb, shape, obj)
        return mask if avoid is None else mask & ~avoid

    def _prompted(self, emb, shape: tuple[int, int], obj: SlicePrompt) -> np.ndarray:
        """The mask of a box and/or clicks (at least one positive) on one slice embedding."""
        box = None if obj.box is None else np.array([obj.box])
        if self.backbone.spec.box_only or not obj.points:
            if box is None:
                return click_to_mask(self.backbone, emb, shape, obj.positives, obj.negatives)
            if obj.points:
                return box_with_clicks(self.backbone, emb, shape, obj.box, obj.positives, obj.negatives)
            return self.backbone.decode(emb, shape, boxes=box).masks()[0, 0]
        points = np.array(obj.points, dtype=float)[None]
        labels = np.array(obj.point_labels)[None]
        multimask = box is None and len(obj.points) == 1  # a lone click is ambiguous: keep SAM's best guess
        out = self.backbone.decode(emb, shape, boxes=box, points=points, point_labels=labels, multimask=multimask)
        return out.masks()[0, int(out.iou[0].argmax())]

    def correct(self, emb, shape: tuple[int, int], base: np.ndarray, positives: np.ndarray,
                negatives: np.ndarray) -> np.ndarray:
        """The object's mask ``base`` on a slice, corrected by clicks, part by part (`masks.part_boxes`). A positive
        click outside the mask but near a part (within a quarter of its size) segments that part's box again, grown
        to hold the click (`box_with_clicks`); far from every part it adds what the model finds around it (another
        cross-section of the object). A negative click removes the part it falls in when that is not the largest
        part; in the largest part it segments the part's box again away from the click, with a positive click at
        the part's deepest point away from the negative ones."""
        mask = base.copy()
        for y, x in positives.astype(int):
            if mask[y, x]:
                continue
            near = [b for b in part_boxes(mask) if _reaches(b, y, x)]
            if not near:
                mask |= self._prompted(emb, shape, _clicks([(y, x)], negatives))
                continue
            y0, x0, y1, x1 = near[0]
            box = grow_box((min(y0, y), min(x0, x), max(y1, y), max(x1, x)), box_margin(shape), shape)
            mask = self._again(emb, shape, mask, box, [p for p in positives if _inside(box, *p)], negatives)
        for y, x in negatives.astype(int):
            if not mask[y, x]:
                continue
            parts, count = ndimage.label(mask)
            part = parts == parts[y, x]
            inside = part.copy()
            inside[tuple(negatives.astype(int).T)] = False  # the part's deepest point keeps away from every negative
            if not inside.any() or (count > 1 and part.sum() < np.bincount(parts.ravel())[1:].max()):
                mask &= ~part
                continue
            box = grow_box(mask_bbox(part), box_margin(shape), shape)
            keep = [deepest_point(inside), *(p for p in positives if part[int(p[0]), int(p[1])])]
            mask = self._again(emb, shape, mask, box, keep, negatives, part)
        return mask

    def _again(self, emb, shape, mask: np.ndarray, box: tuple[int, int, int, int], positives, negatives,
               part: np.ndarray | None = None) -> np.ndarray:
        """``mask`` with what lies in ``box`` (or ``part``) segmented again from the box and the clicks."""
        region = np.zeros(shape, bool)
        region[box[0]:box[2] + 1, box[1]:box[3] + 1] = True
        again = self._prompted(emb, shape, replace(_clicks(positives, negatives), box=box))
        return (mask & ~(region if part is None else part)) | (again & region)

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
            limit = self.padded((y0, x0, y1, x1), embeddings.slice_shape)
            for step in propagate(self.backbone, embeddings, mid, first, (z0, z1), limit, rule):
                yield step.z, step.mask

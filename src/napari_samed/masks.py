"""Small mask helpers: bounding boxes ``(y0, x0, y1, x1)`` in pixels (inclusive), margins, Dice, label dtypes, 3D
parts."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)`` of a 2D mask's foreground, or None when it is empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if not len(ys):
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return (int(ys[0]), int(xs[0]), int(ys[-1]), int(xs[-1]))


def grow_box(box: tuple[int, int, int, int], margin: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` pixels on every side, clipped to a slice of ``shape``."""
    y0, x0, y1, x1 = box
    return (max(y0 - margin, 0), max(x0 - margin, 0), min(y1 + margin, shape[0] - 1), min(x1 + margin, shape[1] - 1))


def part_boxes(mask: np.ndarray, smallest: float = 0.1, near: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of a 2D mask's parts (connected components, leaving out those under ``smallest`` times the
    largest), parts nearer each other than ``near`` times their size sharing one box: a box-only model prompted
    with each box finds each part, where one box around far-apart parts (the aorta's two cross-sections on one
    slice) takes what lies between them."""
    from scipy import ndimage

    parts, count = ndimage.label(mask)
    if count < 2:
        return [] if not count else [mask_bbox(mask)]
    sizes = np.bincount(parts.ravel())[1:]
    boxes = [(s[0].start, s[1].start, s[0].stop - 1, s[1].stop - 1)
             for i, s in enumerate(ndimage.find_objects(parts)) if sizes[i] >= smallest * sizes.max()]

    def reach(b):
        dy, dx = near * (b[2] - b[0] + 1), near * (b[3] - b[1] + 1)
        return b[0] - dy, b[1] - dx, b[2] + dy, b[3] + dx

    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = reach(boxes[i]), reach(boxes[j])
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    u, v = boxes[i], boxes.pop(j)
                    boxes[i] = (min(u[0], v[0]), min(u[1], v[1]), max(u[2], v[2]), max(u[3], v[3]))
                    merged = True
                    break
            if merged:
                break
    return [tuple(int(v) for v in b) for b in boxes]


def box_margin(shape: tuple[int, int]) -> int:
    """The margin, in pixels, by which a box drawn from a mask is grown before it prompts a box-only decoder
    (about 1% of the slice's longest side, at least 2 pixels)."""
    return max(2, round(0.01 * max(shape)))


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks of any shape; 0 when both are empty. (Surface metrics: `evaluation.metrics`.)"""
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    return 2 * float((pred & ref).sum()) / max(float(pred.sum() + ref.sum()), 1.0)


def deepest_point(mask: np.ndarray, spacing=None) -> tuple[int, ...]:
    """The voxel of ``mask`` farthest from its background (in mm with ``spacing``): where a user clicks an
    object once, and where the papers simulate that click."""
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(mask, sampling=None if spacing is None else [float(s) for s in spacing])
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), mask.shape))


def label_dtype(highest: int) -> type:
    """The smallest unsigned dtype of a label volume whose highest value is ``highest``."""
    return np.uint8 if highest < 2**8 else np.uint16 if highest < 2**16 else np.int64


def touching_slices(mask: np.ndarray, first: int, last: int) -> np.ndarray:
    """The 3D connected parts of ``mask`` (z, y, x) that reach a slice from ``first`` to ``last`` (26-connected)."""
    parts, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    kept = np.unique(parts[first:last + 1])
    return np.isin(parts, kept[kept > 0])


def tapering_from(mask: np.ndarray, start: int, step: int, grow: float = 1.0) -> np.ndarray:
    """``mask`` (z, y, x) with what lies beyond slice ``start`` in direction ``step`` (+1 or -1) kept only while it
    tapers: going outward, a slice keeps its 2D parts that overlap the slice before's kept mask, and nothing is
    kept from the first slice whose kept area is more than ``grow`` × the slice before's."""
    out = mask.copy()
    stop = len(out) if step > 0 else -1
    for z in range(start + step, stop, step):
        parts, _ = ndimage.label(out[z])
        kept = np.unique(parts[out[z - step]])
        out[z] = np.isin(parts, kept[kept > 0])
        if out[z].sum() > grow * out[z - step].sum():
            out[z::step] = False
            break
    return out


def within_labelled_extent(mask: np.ndarray, span: tuple[int, int], tapers: tuple[bool, bool] = (False, False),
                           grow: float = 1.0, absent: tuple[int | None, int | None] = (None, None)) -> np.ndarray:
    """What of a structure's mask ``mask`` (z, y, x) a model trained on labelled slices may draw: nothing from a
    slice labelled without it onward (``absent``: the nearest such slices below and above ``span``, None where
    there is none), then the 3D parts reaching ``span`` (its first and last labelled slice, `touching_slices`),
    then past each end of ``span`` flagged in ``tapers`` only while it tapers (`tapering_from`, ``grow``)."""
    out = mask.copy()
    below, above = absent
    if below is not None:
        out[:below + 1] = False
    if above is not None:
        out[above:] = False
    out = touching_slices(out, *span)
    if tapers[0]:
        out = tapering_from(out, span[0], -1, grow)
    if tapers[1]:
        out = tapering_from(out, span[1], 1, grow)
    return out

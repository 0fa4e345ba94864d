"""Clicks on a box-only decoder (LiteMedSAM, MedSAM): candidate boxes around the clicked points, decoded as one
batch, the most plausible mask that respects every click kept; and the negative clicks that keep an object off a
locked one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..masks import box_margin, deepest_point, grow_box, mask_bbox
from ..models.backbone import Backbone
from .prompts import SlicePrompt

#: Candidate half-margins around the clicked points, as fractions of the slice's longest side. Chosen on the
#: real-data benchmark (benchmarks/click_search.py): these five beat the nine used before on the structures'
#: largest slices (mean DSC 0.785 against 0.736, minimum 0.415 against 0.152) in about half the time.
CLICK_MARGINS = (0.025, 0.05, 0.085, 0.145, 0.24)
#: Refinement rounds of a click's box from its own mask (a second round changed no benchmark click).
CLICK_REFINE = 1

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
    margin = box_margin(shape)
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

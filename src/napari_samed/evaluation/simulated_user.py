"""The simulated user of the interactive benchmarks (as in nnInteractive's and SAM-Med3D's evaluations): the first
click at the deepest point of the object's largest slice, each next click at the deepest point of the largest
error region on the slice with the most wrong voxels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..masks import deepest_point


@dataclass(frozen=True)
class Click:
    """A click on voxel ``(z, y, x)``; ``positive`` adds to the object, negative removes from it."""

    z: int
    y: int
    x: int
    positive: bool = True


def first_click(ref: np.ndarray) -> Click:
    """A positive click at the deepest point of the reference's largest slice (``ref``: (z, y, x) boolean)."""
    z = int(ref.sum(axis=(1, 2)).argmax())
    return Click(z, *deepest_point(ref[z]))


def next_click(pred: np.ndarray, ref: np.ndarray) -> Click | None:
    """The next corrective click on ``pred`` against ``ref`` (both (z, y, x) boolean), None when they agree: on the
    slice with the most wrong voxels, at the deepest point of its largest 2D region of missed voxels (a positive
    click) or of extra voxels (a negative click)."""
    wrong = (pred != ref).sum(axis=(1, 2))
    if not wrong.any():
        return None
    z = int(wrong.argmax())
    best, positive = None, True
    for errors, polarity in ((ref[z] & ~pred[z], True), (pred[z] & ~ref[z], False)):
        parts, count = ndimage.label(errors)
        if count:
            sizes = np.bincount(parts.ravel())[1:]
            if best is None or sizes.max() > best.sum():
                best, positive = parts == int(sizes.argmax()) + 1, polarity
    return Click(z, *deepest_point(best), positive)

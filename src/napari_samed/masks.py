"""Small mask helpers: bounding boxes ``(y0, x0, y1, x1)`` in pixels (inclusive), margins, Dice, label dtypes."""

from __future__ import annotations

import numpy as np


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

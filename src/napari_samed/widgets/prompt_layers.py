"""napari prompt layers as voxel prompts: Shapes rectangles as boxes on their slice, Points as clicks."""

from __future__ import annotations

import numpy as np
from napari.layers import Points, Shapes

Box = tuple[int, int, int, int]


def layer_boxes(boxes: Shapes, shape: tuple[int, int, int]) -> list[tuple[int, Box]]:
    """Each rectangle of ``boxes`` that lies on one slice, in drawing order, as ``(z, (y0, x0, y1, x1))`` in voxel
    indices of an image of ``shape`` (z, y, x): corners rounded outwards and clipped to the image."""
    ny, nx = shape[1:]
    out = []
    for corners in boxes.data:
        zs = np.round(corners[:, 0])
        if np.all(zs == zs[0]):
            (y0, x0), (y1, x1) = corners[:, 1:].min(axis=0), corners[:, 1:].max(axis=0)
            out.append((int(zs[0]), (max(int(y0), 0), max(int(x0), 0), min(int(np.ceil(y1)), ny - 1),
                                     min(int(np.ceil(x1)), nx - 1))))
    return out


def layer_points(points: Points) -> list[tuple[int, float, float, int]]:
    """The points as ``(z, y, x, polarity)``: z rounded to its slice, polarity 1 (positive) or 0 from the
    ``positive`` feature (all positive without it)."""
    positive = (points.features["positive"].to_numpy() if "positive" in points.features
                else np.ones(len(points.data), bool))
    return [(int(np.round(z)), float(y), float(x), int(p)) for (z, y, x), p in zip(points.data, positive, strict=True)]

"""napari prompt layers as voxel prompts: Shapes rectangles as boxes on their slice, Points as clicks.

The Segment widget's prompt layers carry a ``label`` feature, the object each prompt belongs to; layers without
it (the user's own) hold prompts of any object.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
from napari.layers import Points, Shapes

Box = tuple[int, int, int, int]


def prompt_labels(layer: Points | Shapes) -> np.ndarray | None:
    """The object label of each prompt of ``layer``, or None when it has no ``label`` feature."""
    return layer.features["label"].to_numpy() if "label" in layer.features else None


def _objects(layer: Points | Shapes) -> list[int | None]:
    labels = prompt_labels(layer)
    return [None] * len(layer.data) if labels is None else [int(v) for v in labels]


def layer_boxes(boxes: Shapes, shape: tuple[int, int, int]) -> list[tuple[int, int | None, Box]]:
    """Each rectangle of ``boxes`` that lies on one slice, in drawing order, as ``(z, object, (y0, x0, y1, x1))``
    in voxel indices of an image of ``shape`` (z, y, x): corners rounded outwards and clipped to the image; the
    object None when the layer has no ``label`` feature."""
    ny, nx = shape[1:]
    out = []
    for corners, label in zip(boxes.data, _objects(boxes), strict=True):
        z = box_slice(corners)
        if z is not None:
            (y0, x0), (y1, x1) = corners[:, 1:].min(axis=0), corners[:, 1:].max(axis=0)
            out.append((z, label, (max(int(y0), 0), max(int(x0), 0), min(int(np.ceil(y1)), ny - 1),
                                   min(int(np.ceil(x1)), nx - 1))))
    return out


def box_slice(corners: np.ndarray) -> int | None:
    """The slice a rectangle's corners ``(z, y, x)`` lie on, None when they span several."""
    zs = np.round(corners[:, 0])
    return int(zs[0]) if np.all(zs == zs[0]) else None


def layer_points(points: Points) -> list[tuple[int, float, float, int, int | None]]:
    """The points as ``(z, y, x, polarity, object)``: z rounded to its slice, polarity 1 (positive) or 0 from the
    ``positive`` feature (all positive without it), the object None without a ``label`` feature."""
    positive = (points.features["positive"].to_numpy() if "positive" in points.features
                else np.ones(len(points.data), bool))
    return [(int(np.round(z)), float(y), float(x), int(p), label)
            for (z, y, x), p, label in zip(points.data, positive, _objects(points), strict=True)]


def style_prompts(points: Points, boxes: Shapes, current: int, color: Callable[[int], np.ndarray],
                  hidden: Collection[int]) -> None:
    """Draw each prompt in its object's colour (``color(label)``: RGBA), the current object's boxes thicker and
    hidden objects' prompts not at all; new prompts belong to ``current``."""
    hidden = list(hidden)
    for layer in (points, boxes):
        layer.feature_defaults = {**layer.feature_defaults.iloc[0].to_dict(), "label": current}
    boxes.current_edge_color = color(current)
    boxes.current_edge_width = 3
    if len(boxes.data):
        labels = prompt_labels(boxes)
        colors = np.array([color(label) for label in labels])
        colors[np.isin(labels, hidden), 3] = 0
        boxes.edge_color = colors
        boxes.edge_width = list(np.where(labels == current, 3, 1))
    if len(points.data):
        labels = prompt_labels(points)
        points.border_color = np.array([color(label) for label in labels])
        points.shown = ~np.isin(labels, hidden)


def saved_prompts(points: Points | None, boxes: Shapes | None) -> dict[str, np.ndarray]:
    """The prompts of the widget's layers (None: a removed one) as `SavedSession` fields."""
    out = {}
    if points is not None:
        out.update(points=np.asarray(points.data, float).reshape(-1, 3),
                   point_positive=points.features["positive"].to_numpy(bool),
                   point_label=prompt_labels(points).astype(int))
    if boxes is not None:
        out.update(boxes=np.array([np.asarray(c, float) for c in boxes.data]).reshape(-1, 4, 3),
                   box_label=prompt_labels(boxes).astype(int))
    return out


def restore_prompts(points: Points, boxes: Shapes, saved) -> None:
    """Put a `SavedSession`'s prompts in the (empty) prompt layers, without announcing them as new prompts."""
    with points.events.data.blocker(), boxes.events.data.blocker():
        points.data = saved.points
        points.features = {"positive": saved.point_positive, "label": saved.point_label}
        if len(saved.boxes):
            boxes.add_rectangles(list(saved.boxes))
            boxes.features = {"label": saved.box_label}

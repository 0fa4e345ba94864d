"""The Segment widget's images and their napari layers (`ImageLayers`): the result Labels layer and the Points/Shapes
prompt layers of each image, and their prompts as the controller reads them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from qtpy.QtCore import QTimer

from ...interactive import InteractiveSession
from ...interactive.controller import Prompts
from ...napari_io import geometry_metadata
from ..prompt_layers import box_slice, layer_boxes, layer_points, prompt_labels, restore_prompts
from .state import ImageState

if TYPE_CHECKING:
    import napari

POSITIVE, NEGATIVE = "#30e030", "#ff3030"


def add_prompt_layers(viewer: napari.viewer.Viewer, image: Image, label: int, positive: bool,
                      on_change: Callable) -> tuple[Points, Shapes]:
    """New Points and Shapes layers for ``image``'s prompts; each prompt's ``label`` feature is its object (new ones:
    ``label``), each point's ``positive`` its polarity. ``on_change`` hears their data events."""
    points = viewer.add_points(
        np.empty((0, 3)), ndim=3, name=f"{image.name} points", scale=image.scale, size=6,
        features={"positive": np.empty(0, bool), "label": np.empty(0, int)}, face_color=POSITIVE,
        border_color="white", border_width=0.15)
    points.feature_defaults = {"positive": positive, "label": label}
    boxes = viewer.add_shapes(ndim=3, name=f"{image.name} boxes", scale=image.scale,
                              features={"label": np.empty(0, int)}, edge_color="yellow",
                              face_color="transparent", edge_width=1)
    boxes.feature_defaults = {"label": label}
    for layer in (points, boxes):
        layer.events.data.connect(on_change)
    return points, boxes


def add_result_layer(viewer: napari.viewer.Viewer, image: Image, labels: np.ndarray, label: int,
                     colors) -> Labels:
    """A new Labels layer over ``labels`` for ``image``, in its geometry, leaving the user's selected layer
    selected."""
    active = viewer.layers.selection.active
    layer = viewer.add_labels(labels, name=f"{image.name} segmentation", scale=image.scale,
                              metadata=geometry_metadata(image, "zero-shot"), colormap=colors)
    layer.selected_label = label
    if active is not None:
        viewer.layers.selection.active = active  # napari selects a new layer: keep the user's
    return layer


def read_prompts(points: Points, boxes: Shapes, shape: tuple[int, int, int]) -> Prompts:
    """The layers' prompts in voxel indices of an image of ``shape``."""
    return Prompts(layer_boxes(boxes, shape), layer_points(points))


def give_box_objects(boxes: Shapes, z: int, labels: list[int]) -> None:
    """Give the boxes on slice ``z`` (in drawing order) the objects ``labels``."""
    on_slice = [i for i, corners in enumerate(boxes.data) if box_slice(corners) == z]
    if prompt_labels(boxes) is not None and prompt_labels(boxes)[on_slice].tolist() != labels:
        boxes.features.loc[on_slice, "label"] = labels


def recolor_points(points: Points) -> None:
    """Each point's fill shows its polarity."""
    colors = np.where(points.features["positive"].to_numpy(), POSITIVE, NEGATIVE)
    if len(colors):
        with points.events.data.blocker():
            points.face_color = list(colors)


class ImageLayers:
    """Each image's state (`ImageState`) and its layers in ``viewer``, made on first use. An edit of a prompt layer
    calls ``on_prompts(image)`` once it is done; picking another label in a result layer calls
    ``on_select(label, image)``; painting in it marks the labels changed and calls ``on_painted(image)``;
    ``bind(layer)`` binds the widget's keys on each new layer."""

    def __init__(self, viewer: napari.viewer.Viewer, cache_dir: str | None, colors, on_prompts: Callable,
                 on_select: Callable[[int, Image], None], on_painted: Callable[[Image], None], bind: Callable):
        self.viewer, self.cache_dir, self.colors = viewer, cache_dir, colors
        self.on_prompts, self.on_select, self.on_painted, self.bind = on_prompts, on_select, on_painted, bind
        self.states: dict[Image, ImageState] = {}  # per image layer, dropped when it is removed
        self.positive = True  # the polarity of new points

    def state(self, image: Image) -> ImageState:
        if image not in self.states:
            self.states[image] = ImageState(InteractiveSession(
                np.asarray(image.data), cache_dir=self.cache_dir, spacing=tuple(float(s) for s in image.scale)))
        return self.states[image]

    def prompt_layers(self, image: Image) -> tuple[Points, Shapes]:
        """The image's Points and Shapes prompt layers, created on first use."""
        state = self.state(image)
        if not all(layer is not None and layer in self.viewer.layers for layer in (state.points, state.boxes)):
            state.points, state.boxes = add_prompt_layers(self.viewer, image, state.session.current_label,
                                                          self.positive, self._edited)
            self.bind(state.points)
            self.bind(state.boxes)
        return state.points, state.boxes

    def result_layer(self, image: Image) -> Labels:
        """The Labels layer the widget writes for ``image`` (never one of the user's own layers)."""
        state = self.state(image)
        if state.result is None or state.result not in self.viewer.layers:
            state.result = add_result_layer(self.viewer, image, state.session.labels, state.session.current_label,
                                            self.colors)
            state.result.events.selected_label.connect(lambda _event: self._picked(image))
            state.result.events.paint.connect(lambda _event: QTimer.singleShot(0, lambda: self._painted(image)))
            self.bind(state.result)  # over the Labels layer's own keys
        return state.result

    def _edited(self, event) -> None:
        if event.action in ("adding", "removing", "changing"):
            return  # napari announces each edit twice: act once it is done
        if isinstance(event.source, Points):
            recolor_points(event.source)
        image = self.owner(event.source)
        if image is not None:
            self.states[image].prompt_edits += 1
            self.on_prompts(image)

    def _picked(self, image: Image) -> None:
        state = self.states.get(image)
        if state is not None and state.result is not None:
            if state.result.selected_label != state.session.current_label:
                self.on_select(state.result.selected_label, image)

    def _painted(self, image: Image) -> None:
        """The user painted in the result layer, looked at once the event loop runs again (napari announces a
        single `paint` call before it writes the voxels; a brush stroke after)."""
        if image in self.states:
            self.states[image].session.labels_changed()
            self.on_painted(image)

    def put_saved(self, image: Image, saved) -> None:
        """Put a `SavedSession`'s labels, objects and prompts in the image's new session, as no undo step."""
        session = self.state(image).session
        session.labels[...] = saved.labels
        session.labels_changed()
        session.current_label, session.locked, session.hidden = saved.current, set(saved.locked), set(saved.hidden)
        points, boxes = self.prompt_layers(image)
        restore_prompts(points, boxes, saved)
        recolor_points(points)

    def remove_prompts(self, image: Image, label: int) -> None:
        """Remove object ``label``'s prompts."""
        state = self.state(image)
        for layer in self.prompt_layers(image):
            mine = np.flatnonzero(prompt_labels(layer) == label)
            if len(mine):
                with layer.events.data.blocker():
                    layer.selected_data = set(mine.tolist())
                    layer.remove_selected()
                state.prompt_edits += 1

    def forget(self, layer) -> None:
        """Drop a removed image's state (its layers stay in the viewer), or the references to a removed layer."""
        self.states.pop(layer, None)
        for state in self.states.values():
            state.forget_layer(layer)

    def owner(self, layer) -> Image | None:
        """The image whose result or prompt layer ``layer`` is."""
        return next((image for image, state in self.states.items() if state.owns(layer)), None)

    def set_polarity(self, positive: bool) -> None:
        """New points are positive or negative."""
        self.positive = positive
        for state in self.states.values():
            if state.points is not None:
                state.points.feature_defaults["positive"] = positive
                state.points.current_face_color = POSITIVE if positive else NEGATIVE

"""How the Segment widget draws an image's objects: the object list, the prompts in their objects' colours and the
result layer's colours, hidden objects not at all."""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import DirectLabelColormap, label_colormap

from ..objects import ObjectTable
from ..prompt_layers import style_prompts
from .state import ImageState


class ObjectColors:
    """The objects' colours: napari's default label colormap, given to the result layers."""

    def __init__(self):
        self.colormap = label_colormap(49, 0.5, background_value=0)

    def __call__(self, label: int) -> np.ndarray:
        """An object's RGBA colour, as the result layer draws it."""
        return self.colormap.map(np.array([label]))[0]

    def restyle(self, state: ImageState, table: ObjectTable) -> None:
        """Bring the object list, the prompts' colours and the result layer's colours up to date."""
        session = state.session
        objects = session.objects()
        if state.points is not None and state.boxes is not None:
            with state.points.events.data.blocker(), state.boxes.events.data.blocker():
                style_prompts(state.points, state.boxes, session.current_label, self, session.hidden)
        table.show_objects(objects, session.current_label, self, session.hidden, session.locked)
        layer = state.result
        if layer is not None and (session.hidden or layer.colormap is not self.colormap):
            clear = {0: np.zeros(4), None: np.zeros(4)}
            layer.colormap = self.colormap if not session.hidden else DirectLabelColormap(color_dict={
                **clear, **{label: np.zeros(4) if label in session.hidden else self(label) for label in objects}})

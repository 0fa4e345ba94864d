"""The Segment widget: prompt layers in, a Labels layer out, all compute in napari thread workers.

Opening it imports no model code (torch): `_import_models` does that in a thread, so napari does not freeze.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.colormaps import DirectLabelColormap, label_colormap
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget
from superqt import QCollapsible

from ..errors import SamedError
from ..interactive import InteractiveSession
from ..io.session import SavedSession, load_session, session_path, set_aside
from ..methods.prompts import SlicePrompt
from ..napari_io import geometry_metadata
from . import actions
from .autosave import AutoSave
from .common import ModelFields, chosen_path, chosen_volume, forget, layer_choices
from .objects import ObjectTable
from .prompt_layers import layer_boxes, layer_points, prompt_labels, restore_prompts, saved_prompts, style_prompts
from .tasks import TaskRunner

if TYPE_CHECKING:
    import napari

POSITIVE, NEGATIVE = "#30e030", "#ff3030"
LAYER_WINDOW = "layer contrast limits"
FIRST_STEP = "Draw a box around the object (or click it in the points layer): it is segmented at once"
HELP = ("Draw boxes in the boxes layer and click points in the points layer, then segment. Each prompt belongs to "
        "the object selected in the list.\nKeys (napari's preferences list and rebind them): "
        + "; ".join(f"{actions.ACTIONS[name][0]}: {actions.ACTIONS[name][1]}" for name in actions.ACTIONS))


def _docked(viewer) -> SegmentWidget | None:
    """The Segment widget docked in ``viewer``, if any."""
    window = getattr(viewer, "window", None)
    found = [w for w in (window.dock_widgets.values() if window else ()) if isinstance(w, SegmentWidget)]
    return found[0] if found else None


class SegmentWidget(QWidget):
    """Interactive zero-shot segmentation of the chosen image with a SAM-family model."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, cache_dir: str | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self.cache_dir = cache_dir
        self.sessions: dict[Image, InteractiveSession] = {}  # state per image layer, dropped when it is removed
        self.results: dict[Image, Labels] = {}
        self.points: dict[Image, Points] = {}
        self.boxes: dict[Image, Shapes] = {}
        self.files: dict[Image, Path] = {}  # where each image's session is saved
        self.positive = True
        self._pending_auto = False
        self.colors = label_colormap(49, 0.5, background_value=0)  # napari's default, given to the result layers
        actions.register(_docked)
        self.autosave = AutoSave()
        threading.Thread(target=_import_models, name="napari-samed-import").start()

        self.image = ComboBox(label="image", choices=layer_choices(self.viewer, Image), nullable=True)
        self.fields = ModelFields()
        self.model, self.checkpoint, self.device, self.precision = self.fields.widgets
        self.trained = FileEdit(label="trained model", mode="r", filter="*.ckpt *.pt", value="",
                                tooltip="optional, trained on the chosen model: a co-trained decoder (napari-samed "
                                        "train cotrain) replaces the model's decoder and segments the boxes of a "
                                        "slice together, one object each; a ProMISe model (train promise) turns "
                                        "clicks into a 3D segmentation")
        self.window = ComboBox(label="window", choices=["auto", "ct", "mr", LAYER_WINDOW], value="auto")
        self.auto = CheckBox(text="segment as prompts change", value=True)
        self.in3d = CheckBox(text="3D: the object through the volume", value=True,
                             tooltip="on: a box or click segments the whole object, propagated from the prompted "
                                     "slices until it ends; prompts on other slices refine it. Off: the current "
                                     "slice only")
        self.segment_button = PushButton(text="Segment slice", tooltip=actions.tooltip("napari-samed:segment"))
        self.propagate_button = PushButton(text="Propagate 3D", tooltip=actions.tooltip("napari-samed:propagate"))
        self.new_button = PushButton(text="New object", tooltip=actions.tooltip("napari-samed:new_object"))
        self.undo_button = PushButton(text="Undo", tooltip=actions.tooltip("napari-samed:undo"))
        self.delete_button = PushButton(text="Delete object",
                                        tooltip="delete the selected object's voxels and prompts (Undo restores "
                                                "the voxels)")
        self.objects = ObjectTable(self.select_object, self.show_object, self.lock_object)
        self.embed_button = PushButton(text="Embed volume",
                                       tooltip="embed every slice now (the current one first), so that later "
                                               "prompts answer at once")
        self.tasks = TaskRunner(on_step=self._show_partial)
        self._running: Image | None = None  # the image of the running task, while it may show partial results
        self._amend = False  # a partial result of the running task is applied: its result amends that undo step
        self.progress, self.status = self.tasks.progress, self.tasks.status
        self.model_form = Container(widgets=[self.model, self.checkpoint, self.device, self.precision, self.trained,
                                             self.window, self.fields.machine])
        self.model_section = QCollapsible()  # the defaults serve a first segmentation: folded until wanted
        self.model_section.addWidget(self.model_form.native)
        self.form = Container(widgets=[
            self.image, self.auto, self.in3d,
            Container(widgets=[self.segment_button, self.propagate_button], layout="horizontal", labels=False),
            Container(widgets=[self.new_button, self.undo_button], layout="horizontal", labels=False),
        ])
        self.footer = Container(widgets=[self.delete_button, self.embed_button, self.tasks.cancel_button],
                                layout="horizontal", labels=False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.model_section)
        layout.addWidget(self.form.native)
        layout.addWidget(QLabel("objects"))
        layout.addWidget(self.objects)
        layout.addWidget(self.footer.native)
        layout.addWidget(self.status.native)
        layout.addWidget(self.progress)
        layout.addStretch()
        self._title_model()
        for field in self.model_form:
            field.changed.connect(self._title_model)
        self.setToolTip(HELP)

        self.segment_button.clicked.connect(self.segment_slice)
        self.propagate_button.clicked.connect(self.propagate)
        self.new_button.clicked.connect(self.new_object)
        self.undo_button.clicked.connect(self.undo)
        self.delete_button.clicked.connect(self.delete_object)
        self.embed_button.clicked.connect(self.embed)
        self.image.changed.connect(self._on_image)
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._forget)
        self._refresh_images()

    def _title_model(self, _value=None) -> None:
        """The folded model section says what it holds."""
        trained = chosen_path(self.trained)
        extra = f", trained {Path(trained).name}" if trained else ""
        self.model_section.setText(f"model: {self.model.value} on {self.device.value}, window {self.window.value}"
                                   + extra)

    # -- layers --------------------------------------------------------------------------------------------
    def _refresh_images(self, _event=None) -> None:
        """Update the image choices; with none chosen and one 3D image open, choose it."""
        self.image.reset_choices()
        volumes = [layer for layer in self.image.choices if layer is not None and layer.ndim == 3 and not layer.rgb]
        if self.image.value is None and len(volumes) == 1:
            self.image.value = volumes[0]

    def _forget(self, event) -> None:
        """Drop the state of a removed layer (an image's session and the references to its result and prompt
        layers, which stay in the viewer; or the reference to a removed result or prompt layer). A pending save
        is written first."""
        self.autosave.flush()
        forget(event.value, self.sessions, self.results, self.points, self.boxes, self.files)
        if event.value is self._running:
            self._running = None

    def _on_image(self, layer: Image | None) -> None:
        """A 3D image chosen: its result and prompt layers (the prompts on top), the boxes layer selected with the
        rectangle tool, its saved session restored, and a hint."""
        if layer is not None and layer.ndim == 3 and not layer.rgb:
            fresh = layer not in self.sessions
            self.result_layer(layer)  # now, not with the first result: napari's first Labels layer takes ~0.4 s
            _, boxes = self.prompt_layers(layer)
            self.viewer.layers.selection.active = boxes
            boxes.mode = "add_rectangle"
            self.status.value = FIRST_STEP
            if fresh:
                self._restore(layer)
            self._restyle(layer)

    # -- the session file ----------------------------------------------------------------------------------
    def session_file(self, image: Image) -> Path:
        """Where the image's session is saved after each change (`session_path`, found once per image)."""
        if image not in self.files:
            self.files[image] = session_path(image.source.path, image.name, image.data)
        return self.files[image]

    def _saved_fields(self) -> dict:
        """The form's fields that a session file keeps, by name."""
        return {"model": self.model, "checkpoint": self.checkpoint, "device": self.device,
                "precision": self.precision, "window": self.window, "trained": self.trained, "in3d": self.in3d,
                "auto": self.auto}

    def _choices(self) -> dict:
        """The form's choices, as a session file keeps them (a file not chosen: "")."""
        return {key: (chosen_path(field) or "") if isinstance(field, FileEdit) else field.value
                for key, field in self._saved_fields().items()}

    def _snapshot(self, image: Image) -> SavedSession | None:
        """The image's session as its file keeps it (None once the image is gone)."""
        session = self.sessions.get(image)
        if session is None:
            return None
        return SavedSession(session.labels.copy(), **saved_prompts(self.points.get(image), self.boxes.get(image)),
                            current=session.current_label, locked=sorted(session.locked),
                            hidden=sorted(session.hidden), settings=self._choices())

    def _restore(self, image: Image) -> None:
        """Restore the image's saved session, if it has one: labels, prompts, objects and the form's choices (those
        it still offers), as no undo step. A file that cannot be used is renamed, never overwritten, with one error
        message, and nothing of it is restored."""
        path = self.session_file(image)
        if not path.is_file():
            return
        try:
            saved = load_session(path, image.data.shape)
        except SamedError as exc:
            self._set_aside(path, str(exc))
            return
        choices = self._choices()
        try:
            self._apply_saved(image, saved)
        except Exception as exc:  # a file that passed the checks yet napari refuses: back to a new session
            self._set_aside(path, " ".join(f"the session file {path} cannot be used ({type(exc).__name__}: "
                                           f"{exc})".split()))
            boxes = self.prompt_layers(image)[1]
            with boxes.events.data.blocker():
                boxes.data, boxes.features = [], {"label": np.empty(0, int)}
            self._apply_saved(image, SavedSession(np.zeros(image.data.shape, np.uint16), settings=choices))
            return
        session = self.sessions[image]
        self.status.value = f"restored the saved session ({len(session.objects())} objects) from {path.name}"

    def _apply_saved(self, image: Image, saved: SavedSession) -> None:
        """Put a session file's state in the image's (new) session, prompt layers and the form."""
        session = self.session(image)
        session.labels[...] = saved.labels
        session.labels_changed()
        session.current_label, session.locked, session.hidden = saved.current, set(saved.locked), set(saved.hidden)
        points, boxes = self.prompt_layers(image)
        restore_prompts(points, boxes, saved)
        self._recolor_points(points)
        fields = self._saved_fields()
        for key, value in saved.settings.items():
            field = fields.get(key)
            if isinstance(field, FileEdit) and isinstance(value, str):
                field.line_edit.value = value  # FileEdit.value = "" would mean the working folder
            elif value in getattr(field, "choices", ()) or isinstance(field, CheckBox) and isinstance(value, bool):
                field.value = value  # a choice the form no longer offers stays as it is
        self._show(image)

    def _set_aside(self, path: Path, problem: str) -> None:
        """Tell the user once why a session file is not used, and rename it so that a new session keeps it."""
        try:
            show_error(f"{problem}. It was renamed {set_aside(path).name}; a new session starts.")
        except OSError as exc:
            show_error(f"{problem}. It could not be renamed ({exc}); a new session starts.")

    def _changed(self, image: Image) -> None:
        """Save the session soon (when it holds work, or replaces a saved one)."""
        session, path = self.sessions[image], self.session_file(image)
        prompts = [layer for layer in (self.points.get(image), self.boxes.get(image)) if layer is not None]
        voxels = any(count for *_, count in session.objects().values())
        if voxels or any(len(layer.data) for layer in prompts) or path.is_file():
            self.autosave.request(path, lambda: self._snapshot(image))

    def prompt_layers(self, image: Image) -> tuple[Points, Shapes]:
        """The image's Points and Shapes prompt layers, created on first use; each prompt's ``label`` feature is
        its object."""
        points, boxes = self.points.get(image), self.boxes.get(image)
        label = self.session(image).current_label
        if points is None or points not in self.viewer.layers:
            points = self.viewer.add_points(
                np.empty((0, 3)), ndim=3, name=f"{image.name} points", scale=image.scale, size=6,
                features={"positive": np.empty(0, bool), "label": np.empty(0, int)}, face_color=POSITIVE,
                border_color="white", border_width=0.15)
            points.feature_defaults = {"positive": self.positive, "label": label}
            points.events.data.connect(self._on_prompts)
            actions.bind_layer(points, self._call)
        if boxes is None or boxes not in self.viewer.layers:
            boxes = self.viewer.add_shapes(ndim=3, name=f"{image.name} boxes", scale=image.scale,
                                           features={"label": np.empty(0, int)}, edge_color="yellow",
                                           face_color="transparent", edge_width=1)
            boxes.feature_defaults = {"label": label}
            boxes.events.data.connect(self._on_prompts)
            actions.bind_layer(boxes, self._call)
        self.points[image], self.boxes[image] = points, boxes
        return points, boxes

    def _call(self, method: str) -> None:
        getattr(self, method)()

    def result_layer(self, image: Image) -> Labels:
        """The Labels layer this widget writes for ``image`` (never one of the user's own layers)."""
        session = self.session(image)
        layer = self.results.get(image)
        if layer is None or layer not in self.viewer.layers:
            active = self.viewer.layers.selection.active
            layer = self.viewer.add_labels(session.labels, name=f"{image.name} segmentation", scale=image.scale,
                                           metadata=geometry_metadata(image), colormap=self.colors)
            layer.selected_label = session.current_label
            layer.events.selected_label.connect(lambda _event: self._on_selected_label(image))
            layer.events.paint.connect(lambda _event: self._on_paint(image))
            actions.bind_layer(layer, self._call)  # over the Labels layer's own keys
            if active is not None:
                self.viewer.layers.selection.active = active  # napari selects a new layer: keep the user's
            self.results[image] = layer
        return layer

    def session(self, image: Image) -> InteractiveSession:
        if image not in self.sessions:
            self.sessions[image] = InteractiveSession(np.asarray(image.data), cache_dir=self.cache_dir,
                                                      spacing=tuple(float(s) for s in image.scale))
        return self.sessions[image]

    # -- reading the GUI -----------------------------------------------------------------------------------
    def _chosen_image(self) -> Image:
        return chosen_volume(self.image, "the Segment widget")

    def _image_or_report(self) -> Image | None:
        try:
            return self._chosen_image()
        except SamedError as exc:
            show_error(str(exc))
            return None

    def current_slice(self, image: Image) -> int:
        return int(round(image.world_to_data(self.viewer.dims.point)[0]))

    def _settings(self, image: Image | None) -> dict:
        """The form's choices as `InteractiveSession.configure` takes them (files: None when not chosen)."""
        window = tuple(image.contrast_limits) if image and self.window.value == LAYER_WINDOW else self.window.value
        return {**self.fields.settings(), "window": window, "trained": chosen_path(self.trained)}

    def slice_boxes(self, image: Image, z: int, label: int | None = None) -> list[tuple[int, int, int, int]]:
        """The boxes (of object ``label``, if given) on slice ``z`` in drawing order, in voxel indices of
        ``image``."""
        return [box for bz, box in layer_boxes(self.prompt_layers(image)[1], image.data.shape, label) if bz == z]

    def object_prompts(self, image: Image) -> list[SlicePrompt]:
        """The current object's prompts on every slice that has some (the latest box and all points of each)."""
        points, boxes = self.prompt_layers(image)
        label = self.session(image).current_label
        zs = {p[0] for p in layer_points(points, label)} | {z for z, _ in layer_boxes(boxes, image.data.shape, label)}
        return [SlicePrompt(z, label, *self.slice_prompts(image, z)) for z in sorted(zs)]

    def slice_prompts(self, image: Image, z: int) -> tuple[tuple | None, list, list]:
        """The current object's latest box and all its points on slice ``z``, in voxel indices of ``image``."""
        label = self.session(image).current_label
        boxes = self.slice_boxes(image, z, label)
        clicks = [(y, x, p) for pz, y, x, p in layer_points(self.prompt_layers(image)[0], label) if pz == z]
        return (boxes[-1] if boxes else None), [(y, x) for y, x, _ in clicks], [p for *_, p in clicks]

    def _box_objects(self, image: Image, z: int) -> tuple[list, list[int]]:
        """Every box on slice ``z`` and its object: the boxes' own objects when they differ, else objects 1, 2,
        ... in drawing order (given to the boxes)."""
        layer = self.prompt_layers(image)[1]
        found = layer_boxes(layer, image.data.shape)
        on_slice = [i for i, (bz, _) in enumerate(found) if bz == z]
        boxes = [found[i][1] for i in on_slice]
        labels = [int(v) for v in prompt_labels(layer)[on_slice]]
        if len(set(labels)) < len(labels):
            labels = list(range(1, len(boxes) + 1))
            layer.features.loc[on_slice, "label"] = labels
        return boxes, labels

    # -- actions -------------------------------------------------------------------------------------------
    def segment_slice(self) -> None:
        """Segment the current object from the current slice's prompts: through the volume with the 3D toggle on,
        else on the current slice only. In 3D, an object's first result comes from its prompts on every slice;
        after that, the current slice's prompts correct it there and from there on (`InteractiveSession.segment_3d`).

        With a co-trained decoder chosen and several boxes on the slice, the boxes are segmented together as
        objects 1, 2, ... in drawing order (points are not used then). With a ProMISe model chosen, the slice's
        clicks segment the current object in 3D.
        """
        def plan(image, session):
            z = self.current_slice(image)
            trained = self._settings(image)["trained"]
            use = _interactive_use(trained) if trained else None
            if use == "decoder" and len(self.slice_boxes(image, z)) > 1:
                boxes, labels = self._box_objects(image, z)
                return 1, f"segmenting {len(boxes)} boxes on slice {z}", session.segment_boxes(z, boxes, labels)
            session.check_editable(session.current_label)
            box, points, labels = self.slice_prompts(image, z)
            if use == "click3d":
                if not any(labels):
                    raise SamedError(f"ProMISe segments from clicks: add a positive point on slice {z}")
                task = session.segment_click_3d(z, points, labels)
                return 1, f"ProMISe 3D from slice {z}", _one_object(task, session.current_label)
            if box is None and not points:
                raise SamedError(f"no prompts on slice {z}: draw a box or click points first")
            if self.in3d.value:
                task = _one_object(session.segment_3d(self.object_prompts(image), z), session.current_label)
                return image.data.shape[0], f"object {session.current_label} in 3D", task
            task = session.segment_slice(z, box, points, labels)
            return 1, f"segmenting slice {z}", _one_object(task, session.current_label)

        self._start(plan, apply=True)

    def propagate(self) -> None:
        """Propagate the current object (its mask, else the box on this slice) through the volume."""
        def plan(image, session):
            session.check_editable(session.current_label)
            z = self.current_slice(image)
            box = None
            if not (session.labels[z] == session.current_label).any():
                box = self.slice_prompts(image, z)[0]
                if box is None:
                    raise SamedError(f"nothing to propagate on slice {z}: draw a box or segment the slice first")
            return image.data.shape[0], "propagating", _one_object(session.propagate(z, box), session.current_label)

        self._start(plan, apply=True)

    def embed(self) -> None:
        """Embed the whole volume, the current slice first."""
        def plan(image, session):
            z = self.current_slice(image)
            return image.data.shape[0], "embedding", session.embed(first=z)

        self._start(plan, apply=False)

    def new_object(self) -> None:
        """Start the next object; the earlier objects' prompts stay theirs."""
        image = self._image_or_report()
        if image is not None:
            self.select_object(self.session(image).new_object(), image)

    def select_object(self, label: int, image: Image | None = None) -> None:
        """Make ``label`` the current object (also when the user picks it in the result layer's label box): the
        prompts added now are its, and only it is segmented again."""
        image = image or self._image_or_report()
        if image is None or image not in self.sessions or label < 1:
            return
        session = self.sessions[image]
        if label != session.current_label:
            session.select(label)
        self.status.value = f"object {label}: the prompts added now are its"
        layer = self.results.get(image)
        if layer is not None and layer.selected_label != label:
            layer.selected_label = label
        self._restyle(image)

    def _on_selected_label(self, image: Image) -> None:
        """The user picked a label in the result layer: make it the current object."""
        layer, session = self.results.get(image), self.sessions.get(image)
        if layer is not None and session is not None and layer.selected_label != session.current_label:
            self.select_object(layer.selected_label, image)

    def _on_paint(self, image: Image) -> None:
        """The user painted in the result layer: its objects changed. Looked at once the event loop runs again
        (napari announces a single `paint` call before it writes the voxels; a brush stroke after)."""
        def repainted():
            if image in self.sessions:
                self.sessions[image].labels_changed()
                self._restyle(image)

        QTimer.singleShot(0, repainted)

    def delete_object(self) -> None:
        """Delete the current object: its voxels (one undo step) and its prompts."""
        image = self._image_or_report()
        if image is None or not self.tasks.idle():
            return
        session = self.session(image)
        label = session.current_label
        session.delete(label)
        for layer in self.prompt_layers(image):
            mine = np.flatnonzero(prompt_labels(layer) == label)
            if len(mine):
                with layer.events.data.blocker():
                    layer.selected_data = set(mine.tolist())
                    layer.remove_selected()
        self._show(image)
        self.status.value = f"object {label} deleted"

    def lock_object(self, label: int, locked: bool) -> None:
        """Lock or unlock an object; locking the current one starts a new object."""
        image = self._image_or_report()
        if image is None or not self.tasks.idle():
            self._restyle(image)
            return
        session = self.session(image)
        session.lock(label, locked)
        if locked and label == session.current_label:
            self.new_object()
        self._restyle(image)
        self.status.value = f"object {label} {'locked' if locked else 'unlocked'}"

    def show_object(self, label: int, shown: bool) -> None:
        """Show or hide an object's labels and prompts."""
        image = self._image_or_report()
        if image is not None:
            (self.session(image).hidden.discard if shown else self.session(image).hidden.add)(label)
            self._restyle(image)

    def _restyle(self, image: Image | None) -> None:
        """Bring the object list, the prompts' colours and the result layer's colours up to date."""
        if image is None or image not in self.sessions:
            return
        session = self.sessions[image]
        objects = session.objects()
        points, boxes = self.prompt_layers(image)
        with points.events.data.blocker(), boxes.events.data.blocker():
            style_prompts(points, boxes, session.current_label, self.color, session.hidden)
        self.objects.show_objects(objects, session.current_label, self.color, session.hidden, session.locked)
        layer = self.results.get(image)
        if layer is not None and (session.hidden or layer.colormap is not self.colors):
            clear = {0: np.zeros(4), None: np.zeros(4)}
            layer.colormap = self.colors if not session.hidden else DirectLabelColormap(color_dict={
                **clear, **{label: np.zeros(4) if label in session.hidden else self.color(label)
                            for label in objects}})
        self._changed(image)

    def color(self, label: int) -> np.ndarray:
        """An object's RGBA colour, as the result layer draws it."""
        return self.colors.map(np.array([label]))[0]

    def undo(self) -> None:
        image = self._image_or_report()
        if image is None:
            return
        if self.session(image).undo():
            self._show(image)
        else:
            show_info("nothing to undo")

    def toggle_polarity(self) -> None:
        self.positive = not self.positive
        for points in self.points.values():
            points.feature_defaults["positive"] = self.positive
            points.current_face_color = POSITIVE if self.positive else NEGATIVE
        self.status.value = "new points are " + ("positive" if self.positive else "negative")

    def _on_prompts(self, event=None) -> None:
        if getattr(event, "action", "added") in ("adding", "removing", "changing"):
            return  # napari announces each edit twice: act once it is done
        points = getattr(event, "source", None)
        if isinstance(points, Points):
            self._recolor_points(points)
        self._restyle(next((image for image in self.sessions if points in (self.points.get(image),
                                                                           self.boxes.get(image))), None))
        if not self.auto.value:
            return
        if self.tasks.busy:
            self._pending_auto = True
            return
        self.segment_slice()

    @staticmethod
    def _recolor_points(points: Points) -> None:
        """Each point's fill shows its polarity."""
        colors = np.where(points.features["positive"].to_numpy(), POSITIVE, NEGATIVE)
        if len(colors):
            with points.events.data.blocker():
                points.face_color = list(colors)

    # -- workers -------------------------------------------------------------------------------------------
    @property
    def worker(self):
        return self.tasks.worker

    def cancel(self) -> None:
        self.tasks.cancel()

    def _start(self, plan, apply: bool) -> None:
        """Validate on the GUI thread, then run the task in a worker; apply its masks when it returns."""
        if not self.tasks.idle():
            return
        try:
            image = self._chosen_image()
            session = self.session(image)
            settings = self._settings(image)
            total, desc, task = plan(image, session)
        except SamedError as exc:
            show_error(str(exc))
            return

        def run():
            session.configure(**settings)
            return (yield from task)

        returned = (lambda objects: self._apply(image, objects)) if apply else None
        self._running, self._amend = (image if apply else None), False
        self.tasks.start(run, total, desc, returned, finished=self._on_finished)

    def _show_partial(self, step) -> None:
        """Show the first part of a running result at once (a 3D object's prompted slices) as an undo step that
        the whole result amends."""
        if step.partial and self._running is not None:
            self.sessions[self._running].apply_objects(step.partial, amend=self._amend)
            self._amend = True
            self._show(self._running)

    def _apply(self, image: Image, objects: dict) -> None:
        """Write {label: masks or `Object3D`} to the result layer as one undo step (nothing if ``image`` is gone)."""
        if image not in self.sessions:
            self.status.value = f"{image.name!r} was removed: its result is dropped"
            return
        from ..methods.zero_shot import Object3D

        reports = [o.describe() for o in objects.values() if isinstance(o, Object3D)]
        self.sessions[image].apply_objects(objects, amend=self._amend)
        self._amend = False
        self._show(image)
        slices = len({z for masks in objects.values() if isinstance(masks, dict) for z, m in masks.items() if m.any()})
        self.status.value = reports[0] if reports else f"object(s) {', '.join(map(str, objects))}: {slices} slice(s)"

    def _show(self, image: Image) -> None:
        layer, labels = self.result_layer(image), self.sessions[image].labels
        if layer.data is not labels:
            layer.data = labels
        layer.refresh()
        self._restyle(image)

    def _on_finished(self) -> None:
        session = self.sessions.get(self._running or self.image.value)
        if session is not None and session.embeddings is not None:
            self.fields.show_machine(session.embeddings)
        self._running, self._amend = None, False
        if self._pending_auto:
            self._pending_auto = False
            self.segment_slice()


def _import_models() -> None:
    """Import the model code (torch, the SAM family) off the GUI thread while the user draws the first prompt:
    opening the widget does not wait for it, and the first result does not either."""
    from ..methods import propagation, trained, zero_shot  # noqa: F401
    from ..models import backbone, cache  # noqa: F401


def _interactive_use(trained: str) -> str | None:
    """What a trained model file does in this widget (`TrainedMethod.interactive`)."""
    from ..methods.trained import trained_class

    return trained_class(trained).interactive


def _one_object(task, label: int):
    """A task returning one object's masks, as {label: masks}."""
    return {label: (yield from task)}

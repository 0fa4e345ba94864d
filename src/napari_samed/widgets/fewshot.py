"""The Few-shot workbench: paint a few slices, train the decoder in the background, segment the volume."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from ..errors import SamedError
from ..methods import next_slice
from ..methods.fewshot import FewShot
from ..models import VolumeEmbeddings, load_backbone
from ..models.preprocess import window_rule
from ..napari_io import geometry_metadata
from ..tasks import Progress
from .common import ModelFields, chosen_volume, layer_choices
from .plots import LossPlot
from .tasks import TaskRunner, wrapped_label

#: A Labels layer's metadata entry: the slices its user marked as holding none of the structure.
EMPTY_KEY = "napari_samed_empty_slices"

if TYPE_CHECKING:
    import napari


class FewShotWidget(QWidget):
    """Train the few-shot decoder on the labelled slices of a Labels layer and segment the whole volume."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, cache_dir: str | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self.cache_dir = cache_dir
        self.embeddings: dict[Image, VolumeEmbeddings] = {}  # per image layer, dropped when it is removed
        self.training_set: dict[Image, Labels] = {}  # other images trained on with the chosen one, and their labels
        self.method: FewShot | None = None
        self._watched: Labels | None = None  # the Labels layer whose painting updates the found slices
        self._recount = QTimer(self, singleShot=True, interval=200)  # a brush stroke's many events: one count
        self._recount.timeout.connect(self.update_found)

        self.image = ComboBox(label="image", choices=layer_choices(self.viewer, Image), nullable=True)
        self.labels = ComboBox(label="labels", choices=layer_choices(self.viewer, Labels), nullable=True,
                               tooltip="the Labels layer you painted a few slices in")
        self.fields = ModelFields()
        self.model, self.checkpoint, self.device, self.precision = self.fields.widgets
        self.window = ComboBox(label="window", choices=["auto", "ct", "mr"], value="auto")
        self.budget = FloatSpinBox(label="budget (s)", min=0, max=3600, step=5, value=0,
                                   tooltip="most seconds of training; 0: no limit (it stops by itself within a "
                                           "fixed number of steps, the same on every computer)")
        self.iterations = SpinBox(label="iterations", min=0, max=10_000, value=0,
                                  tooltip="0: stop by itself; N: exactly N steps")
        self.go_on = CheckBox(text="go on from the last model", value=True,
                              tooltip="train from the last model when it has the same labels and backbone; "
                                      "unticked: from the pretrained decoder")
        self.found = wrapped_label("no labelled slices")
        self.add_button = PushButton(text="Add to set",
                                     tooltip="keep this image and its labels for training, then choose another: "
                                             "training learns from the labelled slices of every image in the set "
                                             "and of the chosen one")
        self.clear_button = PushButton(text="Clear set")
        self.set_label = wrapped_label("")
        self.train_button = PushButton(text="Train")
        self.suggest_button = PushButton(text="Suggest", tooltip="go to the slice to label next, and say why")
        self.empty_button = PushButton(text="Nothing here",
                                       tooltip="the current slice holds none of the structure: train on it as a "
                                               "labelled slice without labels (e.g. a suggested slice where the "
                                               "model drew something); press again to take it back")
        self.segment_button = PushButton(text="Segment volume")
        self.save_button = PushButton(text="Save model")
        self.load_button = PushButton(text="Load model")
        self.plot = LossPlot(self.viewer)
        self.tasks = TaskRunner(on_step=self._on_step)
        self.form = Container(widgets=[
            self.image, self.labels, self.model, self.checkpoint, self.device, self.precision, self.window,
            self.budget, self.iterations, self.go_on, self.found,
            Container(widgets=[self.add_button, self.clear_button], layout="horizontal", labels=False),
            self.set_label,
            Container(widgets=[self.train_button, self.tasks.cancel_button], layout="horizontal", labels=False),
            Container(widgets=[self.suggest_button, self.empty_button, self.segment_button], layout="horizontal",
                      labels=False),
            Container(widgets=[self.save_button, self.load_button], layout="horizontal", labels=False),
            self.tasks.status,
        ])
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.tasks.progress)
        layout.addWidget(self.plot)

        self.train_button.clicked.connect(self.train)
        self.suggest_button.clicked.connect(self.suggest)
        self.empty_button.clicked.connect(self.mark_empty)
        self.add_button.clicked.connect(self.add_to_set)
        self.clear_button.clicked.connect(self.clear_set)
        self.segment_button.clicked.connect(self.segment_volume)
        self.save_button.clicked.connect(lambda: self._ask_path(save=True))
        self.load_button.clicked.connect(lambda: self._ask_path(save=False))
        self.labels.changed.connect(self._watch_labels)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._forget)

    # -- layers --------------------------------------------------------------------------------------------
    def _refresh(self, _event=None) -> None:
        self.image.reset_choices()
        self.labels.reset_choices()

    def _forget(self, event) -> None:
        self.embeddings.pop(event.value, None)
        kept = {image: labels for image, labels in self.training_set.items() if event.value not in (image, labels)}
        if len(kept) < len(self.training_set):
            self.training_set = kept
            self._show_set()
        if event.value is self._watched:
            self._watch_labels(None)

    def _watch_labels(self, layer: Labels | None) -> None:
        """Count the painted slices of ``layer`` as the user paints (a while after the last stroke), and no longer
        those of the layer watched before."""
        if self._watched is not None:
            for event in (self._watched.events.paint, self._watched.events.data):
                event.disconnect(self._painted)
        self._watched = layer
        if layer is not None:
            for event in (layer.events.paint, layer.events.data):
                event.connect(self._painted)
        self.update_found()

    def _painted(self, _event=None) -> None:
        self._recount.start()

    def painted_slices(self, layer: Labels | None = None) -> np.ndarray:
        """The indices of the slices of ``layer`` (default: the chosen Labels layer) that hold a label."""
        layer = layer or self.labels.value
        if layer is None:
            return np.empty(0, int)
        data = np.asarray(layer.data)
        return np.flatnonzero(data.reshape(len(data), -1).any(axis=1))

    def empty_slices(self, painted: np.ndarray | None = None, layer: Labels | None = None) -> list[int]:
        """The slices of ``layer`` (default: the chosen Labels layer) marked as holding nothing and still
        unpainted (the marks live in the layer's metadata, and go with it); ``painted``: `painted_slices` when the
        caller has them."""
        layer = layer or self.labels.value
        if layer is None:
            return []
        painted = set((self.painted_slices(layer) if painted is None else painted).tolist())
        return [z for z in layer.metadata.get(EMPTY_KEY, []) if z not in painted]

    def labelled_slices(self, layer: Labels | None = None) -> list[int]:
        """Painted slices and slices marked empty of ``layer`` (default: the chosen Labels layer), in order."""
        painted = self.painted_slices(layer)
        return sorted({*painted.tolist(), *self.empty_slices(painted, layer)})

    def annotations(self, layer: Labels | None = None) -> dict[int, np.ndarray]:
        """The labelled slices of ``layer`` (default: the chosen Labels layer): {slice index: a copy of its label
        plane} (zeros for a slice marked empty)."""
        layer = layer or self.labels.value
        data = np.asarray(layer.data) if layer is not None else None
        return {int(z): data[z].copy() for z in self.labelled_slices(layer)}

    def add_to_set(self) -> None:
        """Keep the chosen image and Labels layer for training (checked as training checks them); the user then
        chooses the next image."""
        try:
            image, labels = self._checked_pair(self._image(), self.labels.value)
        except SamedError as exc:
            show_error(str(exc))
            return
        self.training_set[image] = labels
        self._show_set()
        self.tasks.status.value = f"{image.name!r} added: choose the next image and its labels, or train"

    def clear_set(self) -> None:
        self.training_set = {}
        self._show_set()

    def _show_set(self) -> None:
        self.set_label.value = "" if not self.training_set else "set: " + ", ".join(
            f"{image.name} ({len(self.labelled_slices(labels))} slices)" for image, labels in self.training_set.items())

    def _checked_pair(self, image: Image, labels: Labels | None) -> tuple[Image, Labels]:
        """``image`` and ``labels``, or `SamedError` when they cannot be trained on."""
        if labels is None:
            raise SamedError("choose the Labels layer with your painted slices")
        if labels.data.shape != image.data.shape:
            raise SamedError(f"labels layer {labels.name!r} of shape {labels.data.shape} does not match the image "
                             f"{image.name!r} of shape {image.data.shape}")
        if not len(self.painted_slices(labels)):
            raise SamedError(f"nothing painted in {labels.name!r}: label a few slices first")
        return image, labels

    def mark_empty(self) -> None:
        """Mark the current slice as holding none of the structure, or take the mark back."""
        layer = self.labels.value
        if layer is None:
            self.tasks.status.value = "choose the Labels layer with your painted slices"
            return
        z = int(self.viewer.dims.current_step[0])
        painted = self.painted_slices()
        if z in painted:
            self.tasks.status.value = f"slice {z} has labels painted: erase them to mark it empty"
            return
        marked = self.empty_slices(painted)
        layer.metadata[EMPTY_KEY] = sorted(set(marked) ^ {z})
        self.tasks.status.value = f"slice {z} {'no longer marked' if z in marked else 'marked'} empty"
        self.update_found()

    def update_found(self, _event=None) -> None:
        """Say which slices are labelled, with which labels (read in place, no copies)."""
        slices = self.painted_slices()
        empty = self.empty_slices(slices)
        if not len(slices) and not empty:
            self.found.value = "no labelled slices"
            return
        values = [int(v) for v in np.unique(np.asarray(self.labels.value.data)[slices]) if v]
        found = f"slices {', '.join(map(str, slices))}\nlabels {', '.join(map(str, values))}" if len(slices) else \
            "no painted slices"
        self.found.value = found + (f"\nempty {', '.join(map(str, empty))}" if empty else "")

    @property
    def worker(self):
        return self.tasks.worker

    # -- actions -------------------------------------------------------------------------------------------
    def _image(self) -> Image:
        return chosen_volume(self.image, "few-shot training")

    def train(self) -> None:
        """Fine-tune the decoder on the labelled slices (painted, or marked empty; a worker), going on from the
        current model when it has the same labels and model; the current model stays until training is done."""
        if not self.tasks.idle():
            return
        try:
            chosen = self._checked_pair(self._image(), self.labels.value)
            pairs = [chosen] + [self._checked_pair(*pair) for pair in self.training_set.items()
                                if pair[0] is not chosen[0]]
        except SamedError as exc:
            show_error(str(exc))
            return
        images = [image for image, _ in pairs]
        annotations = [self.annotations(labels) for _, labels in pairs]
        held = [(self.embeddings.get(image), np.asarray(image.data)) for image in images]
        settings, window, cache_dir = self.fields.settings(), self.window.value, self.cache_dir
        iterations, budget = self.iterations.value or None, self.budget.value or None
        last = self.method if self.go_on.value else None

        def run():
            backbone = load_backbone(*(settings[key] for key in ("model", "checkpoint", "device", "precision")))
            every = []
            for embeddings, data in held:  # each image's, kept while it is open, unless the model or window changed
                if embeddings is None or embeddings.backbone is not backbone or \
                        embeddings.window_rule != window_rule(window, data):
                    embeddings = VolumeEmbeddings(data, backbone, window, cache_dir)
                every.append(embeddings)
            method = FewShot(backbone)
            yield from method.fit(every, annotations, iterations=iterations, budget=budget, start=last)
            return method, every

        self.plot.reset()
        self.tasks.start(run, sum(map(len, annotations)) + (iterations or 1), "training",
                         returned=lambda out: self._trained(images, *out))

    def _trained(self, images: list[Image], method: FewShot, embeddings: list[VolumeEmbeddings]) -> None:
        for image, held in zip(images, embeddings, strict=True):
            if image in self.viewer.layers:
                self.embeddings[image] = held
        self.method = method
        self.plot.stopped(method.stopped)
        origin = "went on from the last model" if method.continued else "started from the pretrained decoder"
        on = f" on {len(images)} images" if len(images) > 1 else ""
        self.tasks.status.value = (f"trained{on}: labels {method.labels}, {origin}; {method.stopped}, final loss "
                                   f"{self.plot.losses[-1]:.4f}; {method.drawing}")

    def _on_step(self, step: Progress) -> None:
        if step.loss is not None:
            self.plot.add(step.loss, step.score)

    def _image_with_model(self, missing: str) -> Image | None:
        """The chosen image when no task runs and a model is there; else None, with the reason shown."""
        if not self.tasks.idle():
            return None
        try:
            image = self._image()
            if self.method is None:
                raise SamedError(f"no few-shot model: {missing}")
        except SamedError as exc:
            show_error(str(exc))
            return None
        return image

    def suggest(self) -> None:
        """Score the unlabelled slices with the trained model (a worker), then go to the one to label next."""
        if (image := self._image_with_model("train one first, then ask which slice to label next")) is None:
            return
        method, labelled, cache_dir = self.method, self.labelled_slices(), self.cache_dir

        def run():
            embeddings = method.embeddings(np.asarray(image.data), cache_dir)
            return (yield from next_slice.suggest(method, embeddings, labelled))

        self.tasks.start(run, image.data.shape[0], "choosing the slice to label next",
                         returned=self._suggested)

    def _suggested(self, picks: list[next_slice.Suggestion]) -> None:
        if not picks:
            self.tasks.status.value = "nothing to suggest: every slice near the structure is labelled"
            return
        z = picks[0].z
        self.viewer.dims.set_current_step(0, z)
        self.tasks.status.value = f"label slice {z} next: {picks[0].why}"

    def segment_volume(self) -> None:
        """Segment every slice with the trained decoder into a new Labels layer (a worker)."""
        if (image := self._image_with_model("train one or load a saved one first")) is None:
            return
        method, cache_dir = self.method, self.cache_dir

        def run():
            embeddings = method.embeddings(np.asarray(image.data), cache_dir)
            return (yield from method.segment(embeddings))

        self.tasks.start(run, image.data.shape[0], "segmenting the volume",
                         returned=lambda labels: self._show(image, labels))

    def _show(self, image: Image, labels: np.ndarray) -> None:
        name = f"{image.name} fewshot"
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], Labels):
            self.viewer.layers[name].data = labels
        else:
            self.viewer.add_labels(labels, name=name, scale=image.scale,
                                    metadata=geometry_metadata(image, "fewshot"))
        self.tasks.status.value = f"segmented {labels.shape[0]} slices"

    def save_model(self, path: str) -> None:
        try:
            if self.method is None:
                raise SamedError("no trained model to save")
            self.method.save(path)
        except SamedError as exc:
            show_error(str(exc))
            return
        self.tasks.status.value = f"saved {path}"

    def load_model(self, path: str) -> None:
        """Load a saved model with the backbone it was trained on (a worker)."""
        if not self.tasks.idle():
            return
        device, precision = self.device.value, self.precision.value

        def run():
            yield Progress(0, 1, f"loading {path}")
            return FewShot.open(path, device, precision)

        self.tasks.start(run, 1, "loading model", returned=self._loaded)

    def _loaded(self, method: FewShot) -> None:
        self.method = method
        self.model.value = method.backbone.name
        self.tasks.status.value = f"loaded: labels {method.labels} on {method.backbone.name}"

    def _ask_path(self, save: bool) -> None:
        pattern = "few-shot model (*.ckpt *.pt)"
        if save and self.method is None:
            show_error("no trained model to save: train one first")
            return
        if save:
            path, _ = QFileDialog.getSaveFileName(self, "Save few-shot model", "fewshot.ckpt", pattern)
            if path:
                self.save_model(path)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Load few-shot model", "", pattern)
            if path:
                self.load_model(path)

"""`SegmentForm`: the Segment widget's fields, buttons and layout, and the choices they hold; no behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton
from napari.layers import Image
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget
from superqt import QCollapsible

from .. import actions
from ..common import ModelFields, chosen_path, layer_choices
from ..objects import ObjectTable
from ..tasks import TaskRunner

if TYPE_CHECKING:
    import napari

LAYER_WINDOW = "layer contrast limits"
HELP = ("Draw boxes in the boxes layer and click points in the points layer, then segment. Each prompt belongs to "
        "the object selected in the list.\nKeys (napari's preferences list and rebind them): "
        + "; ".join(f"{key}: {description}" for key, description in actions.ACTIONS.values()))


class SegmentForm(QWidget):
    """The form of the Segment widget: the model section (folded), the image and toggles, the action buttons, the
    object list (``objects``, calling ``on_select``, ``on_show``, ``on_lock``), the status line and progress bar of
    its `TaskRunner` (``tasks``)."""

    def __init__(self, viewer: napari.viewer.Viewer, tasks: TaskRunner, on_select, on_show, on_lock):
        super().__init__()
        self.tasks = tasks
        self.progress, self.status = tasks.progress, tasks.status
        self.image = ComboBox(label="image", choices=layer_choices(viewer, Image), nullable=True)
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
        self.embed_button = PushButton(text="Embed volume",
                                       tooltip="embed every slice now (the current one first), so that later "
                                               "prompts answer at once")
        self.objects = ObjectTable(on_select, on_show, on_lock)
        self.model_form = Container(widgets=[self.model, self.checkpoint, self.device, self.precision, self.trained,
                                             self.window, self.fields.machine])
        self.model_section = QCollapsible()  # the defaults serve a first segmentation: folded until wanted
        self.model_section.addWidget(self.model_form.native)
        rows = Container(widgets=[
            self.image, self.auto, self.in3d,
            Container(widgets=[self.segment_button, self.propagate_button], layout="horizontal", labels=False),
            Container(widgets=[self.new_button, self.undo_button], layout="horizontal", labels=False),
        ])
        footer = Container(widgets=[self.delete_button, self.embed_button, tasks.cancel_button],
                           layout="horizontal", labels=False)
        layout = QVBoxLayout(self)
        for part in (self.model_section, rows.native, QLabel("objects"), self.objects, footer.native,
                     self.status.native, self.progress):
            layout.addWidget(part)
        layout.addStretch()
        self._title_model()
        for field in self.model_form:
            field.changed.connect(self._title_model)
        self.setToolTip(HELP)

    def refresh_images(self, _event=None) -> None:
        """Update the image choices; with none chosen and one 3D image open, choose it."""
        self.image.reset_choices()
        volumes = [layer for layer in self.image.choices if layer is not None and layer.ndim == 3 and not layer.rgb]
        if self.image.value is None and len(volumes) == 1:
            self.image.value = volumes[0]

    def _title_model(self, _value=None) -> None:
        """The folded model section says what it holds."""
        trained = chosen_path(self.trained)
        extra = f", trained {Path(trained).name}" if trained else ""
        self.model_section.setText(f"model: {self.model.value} on {self.device.value}, window {self.window.value}"
                                   + extra)

    def _saved_fields(self) -> dict:
        """The fields that a session file keeps, by name."""
        return {"model": self.model, "checkpoint": self.checkpoint, "device": self.device,
                "precision": self.precision, "window": self.window, "trained": self.trained, "in3d": self.in3d,
                "auto": self.auto}

    def choices(self) -> dict:
        """The choices a session file keeps (a file not chosen: "")."""
        return {key: (chosen_path(field) or "") if isinstance(field, FileEdit) else field.value
                for key, field in self._saved_fields().items()}

    def restore_choices(self, saved: dict) -> None:
        """Put a session file's choices back, those the form still offers."""
        fields = self._saved_fields()
        for key, value in saved.items():
            field = fields.get(key)
            if isinstance(field, FileEdit) and isinstance(value, str):
                field.line_edit.value = value  # FileEdit.value = "" would mean the working folder
            elif value in getattr(field, "choices", ()) or isinstance(field, CheckBox) and isinstance(value, bool):
                field.value = value  # a choice the form no longer offers stays as it is

    def _settings(self, image: Image | None) -> dict:
        """The choices as `InteractiveSession.configure` takes them (files: None when not chosen)."""
        window = tuple(image.contrast_limits) if image and self.window.value == LAYER_WINDOW else self.window.value
        return {**self.fields.settings(), "window": window, "trained": chosen_path(self.trained)}

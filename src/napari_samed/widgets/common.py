"""Form pieces the widgets share: layer choices, the model fields and the 3D image check."""

from __future__ import annotations

from magicgui.widgets import ComboBox, FileEdit, Label
from napari.layers import Image

from ..errors import SamedError
from ..models.registry import BACKBONES, DEFAULT_BACKBONE, PRECISIONS

PRECISION_TIP = ("image encoder arithmetic: auto is fp16 on CUDA, bf16 on a CPU with native bf16 (about 3x faster, "
                 "masks within about 0.005 DSC of fp32), else fp32")


def chosen_path(field: FileEdit) -> str | None:
    """A file field's path, or None when none is chosen (an empty FileEdit reads as ".")."""
    path = str(field.value)
    return path if path not in ("", ".") else None


def precision_field() -> ComboBox:
    return ComboBox(label="precision", choices=list(PRECISIONS), value="auto", tooltip=PRECISION_TIP)


def layer_choices(viewer, kind: type):
    """A magicgui ``choices`` callable listing the viewer's layers of one kind by name."""
    return lambda _widget=None: [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]


class ModelFields:
    """Model, checkpoint file, device and precision fields; ``settings()`` gives them as
    `InteractiveSession.configure` takes."""

    def __init__(self):
        self.model = ComboBox(label="model", choices=list(BACKBONES), value=DEFAULT_BACKBONE)
        self.checkpoint = FileEdit(label="checkpoint", mode="r", filter="*.pth *.pt", value="",
                                   tooltip="weights file for models other than lite-medsam")
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto")
        self.precision = precision_field()
        self.machine = Label(label="machine", value="(known once the model is loaded)",
                             tooltip="the device, its CPU capability, the encoder precision, threads and the "
                                     "last embedding's speed (napari-samed info says more)")

    def show_machine(self, embeddings) -> None:
        """Say what the model runs on and how fast ``embeddings`` (`VolumeEmbeddings`) were computed."""
        from ..models.machine import summary

        self.machine.value = summary(embeddings.backbone, embeddings.rate)

    @property
    def widgets(self) -> list:
        return [self.model, self.checkpoint, self.device, self.precision]

    def settings(self) -> dict:
        return {"model": self.model.value, "checkpoint": chosen_path(self.checkpoint),
                "device": self.device.value, "precision": self.precision.value}


def chosen_volume(combo: ComboBox, purpose: str) -> Image:
    """The image layer chosen in ``combo``; `SamedError` unless it is a 3D single-channel volume."""
    layer = combo.value
    if layer is None:
        raise SamedError("choose an image layer first (open a volume or File > Open Sample > napari-samed)")
    if layer.rgb or layer.ndim != 3:
        raise SamedError(f"layer {layer.name!r} is {layer.ndim}D; {purpose} needs a 3D volume (z, y, x)")
    return layer

"""`Deferred`: a dock widget that appears at once and builds the real widget when its module, and the model code
(torch, MONAI) that module imports, has loaded in a thread: napari does not freeze while it loads."""

from __future__ import annotations

import threading
from importlib import import_module
from typing import TYPE_CHECKING

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from .model_code import keep_triton_out

if TYPE_CHECKING:
    import napari


class Deferred(QWidget):
    """Holds ``module:name``'s widget, built with the viewer once ``module`` is imported (``widget`` until then:
    None, and a line saying it is loading)."""

    loaded = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer, module: str, name: str):
        super().__init__()
        self.viewer = napari_viewer
        self.widget: QWidget | None = None
        self.note = QLabel("loading the model code (a few seconds, once per session)…")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        self.loaded.connect(self._build)
        threading.Thread(target=self._import, args=(module, name), name=f"napari-samed-import-{name}").start()

    def _import(self, module: str, name: str) -> None:
        try:
            keep_triton_out()
            found = getattr(import_module(module), name)
        except Exception as exc:  # shown in the dock: there is no one else to tell on this thread
            found = exc
        try:
            self.loaded.emit(found)
        except RuntimeError:  # the dock was closed meanwhile
            pass

    def _build(self, found) -> None:
        if isinstance(found, Exception):
            self.note.setText(f"could not load the widget: {type(found).__name__}: {found}")
            return
        self.widget = found(self.viewer)
        self.layout().removeWidget(self.note)
        self.note.deleteLater()
        self.layout().addWidget(self.widget, stretch=1)


class FewShotDock(Deferred):
    """The Few-shot workbench, loaded off the GUI thread."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, "napari_samed.widgets.fewshot", "FewShotWidget")


class CompareDock(Deferred):
    """The Compare widget, loaded off the GUI thread."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer, "napari_samed.widgets.compare", "CompareWidget")

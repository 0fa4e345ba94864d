"""The Compare widget: several methods on one image and the Segment widget's prompts, shown side by side and
scored against a reference. All compute runs in `TaskRunner` workers; the logic lives in `evaluation.compare`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import SamedError
from ..evaluation.compare import (
    METRICS,
    MethodSlot,
    SlotResult,
    check_reference,
    dsc_curves,
    load_slots,
    metrics_table,
    run_slots,
    with_prompts,
    write_csv,
)
from ..methods import METHODS, Progress, Prompt, SlicePrompt, group_prompts
from ..models import BACKBONES, DEFAULT_BACKBONE
from ..napari_io import geometry_metadata
from .common import chosen_path, chosen_volume, layer_choices, precision_field
from .prompt_layers import layer_boxes, layer_points
from .slice_scores import DscPlot, SliceScores
from .tasks import TaskRunner, wrapped_label

if TYPE_CHECKING:
    import napari

DEFAULT_SLOTS = ("zero-shot", "cotrain", "fewshot", "promise")
HEADERS = ("method", "scope", "DSC", "IoU", "NSD", "ASSD", "HD95")


def layer_prompts(points: Points | None, boxes: Shapes | None, shape: tuple[int, int, int]) -> dict[str, list[Prompt]]:
    """The Segment widget's prompt layers as prompt kinds: ``box`` (each rectangle, on its slice) and ``click``
    (the points of each slice, one object per slice; the ``positive`` feature gives their polarity)."""
    out: dict[str, list[Prompt]] = {}
    found = layer_boxes(boxes, shape) if boxes is not None else []
    if found:
        out["box"] = [SlicePrompt(z, 1, box) for z, _, box in found]
    if points is not None and len(points.data):
        out["click"] = group_prompts(points=[p[:4] for p in layer_points(points)])
    return out


class MethodRow(Container):
    """One method slot: use it or not, the method, its backbone model, its checkpoint, and its status."""

    def __init__(self, method: str, enabled: bool):
        self.use = CheckBox(text="use", value=enabled, tooltip="run this method in the comparison")
        self.method = ComboBox(choices=list(METHODS), value=method, tooltip="method")
        self.model = ComboBox(choices=list(BACKBONES), value=DEFAULT_BACKBONE,
                              tooltip="backbone model (untrained methods; a trained one uses its own)")
        self.checkpoint = FileEdit(mode="r", filter="*.ckpt *.pt *.pth", value="",
                                   tooltip="trained methods: their checkpoint; zero-shot: weights of models "
                                           "other than lite-medsam")
        self.status = wrapped_label()
        super().__init__(widgets=[
            Container(widgets=[self.use, self.method, self.model], layout="horizontal", labels=False),
            Container(widgets=[Label(value="file"), self.checkpoint], layout="horizontal", labels=False),
            self.status], labels=False)
        self.method.changed.connect(self._on_method)
        self._on_method(method)

    def _on_method(self, method: str) -> None:
        self.model.enabled = not METHODS[method].trained

    def slot(self) -> MethodSlot:
        path = chosen_path(self.checkpoint)
        return MethodSlot(self.method.value, self.model.value, Path(path) if path else None)


class CompareWidget(QWidget):
    """Run several methods on the chosen image with the same prompts; overlays, side-by-side grid, metrics."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, cache_dir: str | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self.cache_dir = cache_dir
        self.results: dict[str, SlotResult] = {}
        self.layers: dict[str, Labels] = {}
        self.rows: list[dict] = []
        self.volume_rows: list[dict] = []
        self._image: Image | None = None
        self._reference: np.ndarray | None = None
        self._copies: list[Image] = []  # the image views of the grid
        self._titled: list = []  # the grid's overlays, whose names are drawn as their cells' titles
        self._hidden: list = []

        self.image = ComboBox(label="image", choices=layer_choices(self.viewer, Image), nullable=True)
        self.reference = ComboBox(label="reference", choices=layer_choices(self.viewer, Labels), nullable=True,
                                  tooltip="optional: the labels to score against (any non-zero voxel)")
        self.points = ComboBox(label="points", choices=layer_choices(self.viewer, Points), nullable=True,
                               tooltip="clicks: the Segment widget's '<image> points' layer")
        self.boxes = ComboBox(label="boxes", choices=layer_choices(self.viewer, Shapes), nullable=True,
                              tooltip="boxes: the Segment widget's '<image> boxes' layer")
        self.slots = [MethodRow(m, i == 0) for i, m in enumerate(DEFAULT_SLOTS)]
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto")
        self.precision = precision_field()
        self.window = ComboBox(label="window", choices=["auto", "ct", "mr"], value="auto",
                               tooltip="auto: uint8 as 0-255, CT when values below -500 occur, else MR")
        self.tolerance = FloatSpinBox(label="NSD tolerance (mm)", min=0.0, max=100.0, step=0.5, value=1.0)
        self.run_button = PushButton(text="Compare")
        self.grid = CheckBox(text="side by side", value=False)
        self.export_button = PushButton(text="Export CSV")
        self.tasks = TaskRunner()
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.plot = DscPlot(self.viewer)
        self.slice_scores = SliceScores(self._show_slice_rows, self)
        self.form = Container(widgets=[
            self.image, self.reference, self.points, self.boxes, *self.slots, self.device, self.precision, self.window,
            self.tolerance,
            Container(widgets=[self.run_button, self.tasks.cancel_button], layout="horizontal", labels=False),
            Container(widgets=[self.grid, self.export_button], layout="horizontal", labels=False),
            self.tasks.status,
        ])
        # The form scrolls and the results share a splitter: the widget fits beside the Segment widget on a
        # 1000-pixel-high screen.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form.native)
        results = QSplitter(Qt.Orientation.Vertical)
        results.addWidget(self.table)
        results.addWidget(self.plot)
        self.table.setMinimumHeight(90)
        self.plot.setMinimumHeight(120)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, stretch=1)
        layout.addWidget(self.tasks.progress)
        layout.addWidget(results, stretch=1)

        self.run_button.clicked.connect(self.compare)
        self.grid.changed.connect(self.side_by_side)
        self.export_button.clicked.connect(self._ask_csv)
        self.tolerance.changed.connect(self.rescore)
        self.image.changed.connect(self._default_prompt_layers)
        self.viewer.dims.events.current_step.connect(self.update_slice)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._end_grid)
        self._default_prompt_layers(self.image.value)

    # -- layers --------------------------------------------------------------------------------------------
    def _refresh(self, _event=None) -> None:
        for combo in (self.image, self.reference, self.points, self.boxes):
            combo.reset_choices()
        self._default_prompt_layers(self.image.value)

    def _end_grid(self, event) -> None:
        """Leave the grid when one of its layers (or the image) is removed: no view is left behind."""
        if self.grid.value and event.value in (self._image, *self._titled, *self._copies):
            self.grid.value = False

    def _default_prompt_layers(self, image: Image | None) -> None:
        """Point the prompt fields at the Segment widget's layers of ``image`` when they exist."""
        if image is None:
            return
        for combo, suffix in ((self.points, "points"), (self.boxes, "boxes")):
            name = f"{image.name} {suffix}"
            if combo.value is None and name in self.viewer.layers:
                combo.value = self.viewer.layers[name]

    @property
    def worker(self):
        return self.tasks.worker

    def current_slice(self) -> int:
        return int(round(self._image.world_to_data(self.viewer.dims.point)[0])) if self._image is not None else 0

    # -- running -------------------------------------------------------------------------------------------
    def compare(self) -> None:
        """Run the chosen methods on the image (a worker); each result becomes a Labels layer named after it."""
        if not self.tasks.idle():
            return
        try:
            image = chosen_volume(self.image, "the comparison")
            data = np.asarray(image.data)
            reference = None
            if self.reference.value is not None:
                reference = np.asarray(self.reference.value.data)
                check_reference(reference, data.shape)
            prompts = layer_prompts(self.points.value, self.boxes.value, data.shape)
            rows = [row for row in self.slots if row.use.value]
            if not rows:
                raise SamedError("tick at least one method to compare")
        except SamedError as exc:
            show_error(str(exc))
            return
        slots = with_prompts([row.slot() for row in rows], list(prompts), first_only=True)
        for row, slot in zip(rows, slots, strict=True):
            row.status.value = f"{slot.name}: waiting"
        spacing, device, window, cache = tuple(image.scale), self.device.value, self.window.value, self.cache_dir
        precision = self.precision.value
        tolerance = self.tolerance.value

        def run():
            results = yield from run_slots(data, spacing, prompts, load_slots(slots, device, precision), window, cache)
            if reference is None:
                return results, [], {}
            return results, metrics_table(results, reference, spacing, tolerance), dsc_curves(results, reference)

        self._image, self._reference = image, reference
        self.tasks.start(run, 100 * len(slots), "comparing",
                         returned=lambda out: self._show(image, rows, slots, *out))

    def _show(self, image: Image, rows: list[MethodRow], slots: list[MethodSlot], results: dict[str, SlotResult],
              volume_rows: list[dict], curves: dict[str, np.ndarray]) -> None:
        if self.grid.value:
            self.grid.value = False
        for row, slot in zip(rows, slots, strict=True):
            result = results[slot.name]
            row.status.value = (f"{slot.name}: error: {result.error}" if result.error
                                else f"{slot.name}: done in {result.seconds:.1f} s"
                                + (f"; {result.note}" if result.note else ""))
        self.results = results
        for name, result in results.items():
            if result.labels is None:
                continue
            layer = self.layers.get(name)
            if layer is None or layer not in self.viewer.layers:
                self.layers[name] = self.viewer.add_labels(result.labels, name=name, scale=image.scale,
                                                           metadata=geometry_metadata(image, name))
            else:
                layer.data = result.labels
        self.volume_rows = volume_rows
        self.plot.show_curves(curves, self.current_slice())
        self.update_slice()
        failed = sum(r.error is not None for r in results.values())
        self.tasks.status.value = f"compared {len(results)} method(s)" + (f", {failed} failed" if failed else "")

    def rescore(self, _value=None) -> None:
        """Score the volume again with the current tolerance (a worker)."""
        if self._reference is None or not self.results or not self.tasks.idle():
            return
        results, reference, spacing = self.results, self._reference, tuple(self._image.scale)
        tolerance = self.tolerance.value

        def run():
            yield Progress(0, 1, f"scoring with NSD at {tolerance:g} mm")
            return metrics_table(results, reference, spacing, tolerance)

        self.tasks.start(run, 1, "scoring", returned=self._rescored)

    def _rescored(self, rows: list[dict]) -> None:
        self.volume_rows = rows
        self.update_slice()

    def update_slice(self, _event=None) -> None:
        """Move the DSC plot's marker to the current slice, and score that slice in a thread (`SliceScores`): the
        table's slice rows follow when they are ready."""
        if self._reference is None or not self.results:
            return
        z = self.current_slice()
        self.plot.move_marker(z)
        self.slice_scores.request(self.results, self._reference, tuple(self._image.scale), self.tolerance.value, z)

    def _show_slice_rows(self, rows: list[dict]) -> None:
        self.rows = self.volume_rows + rows
        self._fill_table()

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            values = [row["method"], row["scope"]]
            if row.get("dsc") is None and row.get("error"):
                values += [row["error"], *[""] * (len(METRICS) - 1)]
            else:
                values += ["–" if row.get(m) is None else f"{row[m]:.4f}" for m in METRICS]
            for j, text in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(str(text)))
        self.table.resizeColumnsToContents()

    def export_csv(self, path: str) -> Path:
        """Write the table (volume and current-slice rows) as CSV."""
        return write_csv(self.rows, path)

    def _ask_csv(self) -> None:
        if not self.rows:
            show_error("nothing to export: compare methods against a reference first")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "comparison.csv", "CSV (*.csv)")
        if path:
            self.tasks.status.value = f"wrote {self.export_csv(path)}"

    # -- side by side --------------------------------------------------------------------------------------
    def side_by_side(self, on: bool) -> None:
        """Grid view: one cell per result (and the reference), titled with its name, each over its own view of
        the image (a layer over the same array, not a copy of it), the other layers hidden, in one row up to four
        cells; off (also when one of them is removed): the extra views removed, overlays on the image."""
        grid = self.viewer.canvas.grid
        overlays = [layer for layer in self.layers.values() if layer in self.viewer.layers]
        if on and (self._image is None or not overlays):
            show_error("nothing to show side by side: compare methods first")
            self.grid.value = False
            return
        if on:
            if self.reference.value is not None:
                overlays.insert(0, self.reference.value)
            self._hidden = [layer for layer in self.viewer.layers if layer.visible and layer not in overlays]
            for layer in self._hidden:
                layer.visible = False
            image = self._image
            pairs = []
            for overlay in overlays:
                view = self.viewer.add_image(image.data, name=f"{image.name} (view for {overlay.name})",
                                             scale=image.scale, contrast_limits=image.contrast_limits,
                                             colormap=image.colormap)
                self._copies.append(view)
                overlay.visible = overlay.name_overlay.visible = True  # the cell's title
                pairs += [view, overlay]
            for i, layer in enumerate(pairs):  # bottom up: (image view, overlay) pairs fill the stride-2 cells
                self.viewer.layers.move(self.viewer.layers.index(layer), i)
            self._titled = overlays
            grid.stride = 2
            grid.shape = (1, len(overlays)) if len(overlays) <= 4 else (2, -(-len(overlays) // 2))
            grid.enabled = True
            self.viewer.reset_view()  # every cell shows its whole image
        else:
            grid.enabled = False
            for overlay in self._titled:
                overlay.name_overlay.visible = False
            self._titled = []
            for copy in self._copies:
                if copy in self.viewer.layers:
                    self.viewer.layers.remove(copy)
            self._copies = []
            for layer in self._hidden:
                layer.visible = True
            self._hidden = []
            if self._image in self.viewer.layers:
                self.viewer.layers.move(self.viewer.layers.index(self._image), 0)

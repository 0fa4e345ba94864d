"""Screenshots of the widgets for docs/ on the real chest CT sample, on a 1600x1000 screen: the Segment and Compare
widgets docked together with two objects segmented (a box on the T12 vertebra in 3D, a click on the aorta) and a
comparison of zero-shot prompts (a box on each slice of the aorta and of the vertebra) against the sample's
reference, then the side-by-side grid.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py

Writes docs/screenshots/segment_and_compare.png, docs/screenshots/segment_model_section.png (the folded model
section opened) and docs/screenshots/side_by_side.png. About a minute on a 2-core CPU.
"""

import os
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_samed.masks import deepest_point, mask_bbox
from napari_samed.sample_data import SAMPLES
from napari_samed.widgets.demo import open_demo

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
Z = 14  # through the T12 vertebra and the descending aorta beside it
AORTA, T12 = 1, 2


def settle(widget=None, seconds: float = 0.5) -> None:
    """Let Qt draw; with a widget, first wait for its task to end."""
    while widget is not None and widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shoot(viewer, name: str) -> None:
    settle()
    viewer.reset_view()
    settle()
    viewer.screenshot(str(OUT / name), canvas_only=False)
    print(OUT / name)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ["NAPARI_SAMED_SESSIONS"] = tempfile.mkdtemp()  # a clean start: no session an earlier run saved
    viewer = napari.Viewer(title="napari-samed")
    viewer.window._qt_window.setGeometry(0, 0, 1600, 1000)
    segment = open_demo(viewer, "chest-ct")
    viewer.dims.set_point(0, Z * 1.5)
    compare_dock, deferred = viewer.window.add_plugin_dock_widget("napari-samed", "Compare methods")
    while deferred.widget is None:  # built once its model code has loaded in a thread
        settle()
    compare = deferred.widget
    segment_dock = next(d for d in viewer.window._wrapped_dock_widgets.values() if d.widget() is segment)
    window = viewer.window._qt_window
    window.splitDockWidget(segment_dock, compare_dock, Qt.Orientation.Horizontal)  # side by side
    settle()
    window.resizeDocks([segment_dock, compare_dock], [400, 460], Qt.Orientation.Horizontal)
    image = viewer.layers["chest CT"]
    _, labels = SAMPLES["chest-ct"].load()
    points, boxes = segment.prompt_layers(image)

    y0, x0, y1, x1 = mask_bbox(labels[Z] == T12)  # object 1: a box on the vertebra, segmented through the volume
    boxes.add_rectangles(np.array([[Z, y0, x0], [Z, y0, x1], [Z, y1, x1], [Z, y1, x0]], float))
    settle(segment)
    segment.new_object()  # object 2: one click on the aorta
    points.add([[Z, *deepest_point(labels[Z] == AORTA)]])
    settle(segment)

    segment.auto.value = False  # a box on each slice of each structure, for the comparison's volume metrics
    for z in range(len(labels)):
        for label in (AORTA, T12):
            if (labels[z] == label).any() and (z, label) != (Z, T12):
                y0, x0, y1, x1 = mask_bbox(labels[z] == label)
                boxes.add_rectangles(np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float))
    compare.image.value = image
    compare.reference.value = viewer.layers["chest CT reference"]
    compare.compare()
    settle(compare)
    viewer.layers.selection.active = boxes
    shoot(viewer, "segment_and_compare.png")

    segment.model_section.expand(animate=False)
    shoot(viewer, "segment_model_section.png")
    segment.model_section.collapse(animate=False)

    compare.grid.value = True
    shoot(viewer, "side_by_side.png")
    compare.grid.value = False
    segment.files.autosave.flush()
    viewer.close()


if __name__ == "__main__":
    main()

"""Refresh docs/segment_widget.png: the Segment widget at work on the sample volume.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py

Draws a box on the organ, propagates it through the volume, then segments a lesion from one click as a
second object, and saves a screenshot of the whole window.
"""

import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_samed.methods.zero_shot import mask_bbox
from napari_samed.phantom import LESION, make_phantom
from napari_samed.widgets.demo import open_demo

OUT = Path(__file__).resolve().parents[1] / "docs" / "segment_widget.png"
Z = 31


def wait(widget) -> None:
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)


def main() -> None:
    viewer = napari.Viewer(title="napari-samed")
    viewer.window.resize(1500, 950)
    widget = open_demo(viewer)
    widget.auto.value = False
    viewer.layers["sample CT reference"].visible = False
    image = viewer.layers["sample CT"]
    _, labels = make_phantom(0)
    points, boxes = widget.prompt_layers(image)

    y0, x0, y1, x1 = mask_bbox(labels[Z] > 0)
    boxes.add_rectangles(np.array([[Z, y0, x0], [Z, y0, x1], [Z, y1, x1], [Z, y1, x0]], float))
    widget.propagate()
    wait(widget)

    widget.new_object()
    ys, xs = np.nonzero(labels[Z] == LESION)
    points.add([[Z, ys.mean(), xs.mean()]])
    widget.segment_slice()
    wait(widget)
    boxes.add_rectangles(np.array([[Z, y0, x0], [Z, y0, x1], [Z, y1, x1], [Z, y1, x0]], float))
    viewer.layers.selection = {points}
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(str(OUT), canvas_only=False)
    print(OUT)


if __name__ == "__main__":
    main()

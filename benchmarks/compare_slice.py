"""The Compare widget's work on the GUI thread when the viewer steps one slice, with three results on a CT-sized
volume.

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/compare_slice.py [--slices 300] [--steps 20]

A 300×512×512 image, a reference (an ellipsoid through 200 slices) and three results (the ellipsoid shifted and
grown). The widget is docked in a shown viewer and given the results as a comparison ends (`_show`, the volume
rows left empty: they are computed once, in the worker). Printed: the median and worst time the widget takes on
the GUI thread per slice step (`update_slice`, the redraw it queues and, where the slice is scored in a thread,
filling the table with its rows), how long those rows take to appear, then a whole slice step (napari's own
slicing of the four layers included). Run it on an older commit (``PYTHONPATH=<checkout>/src``) for the figure before.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

import numpy as np
from undo_memory import ellipsoid as slice_ellipsoid


def ellipsoid(shape, centre, radii) -> np.ndarray:
    """A label volume holding an ellipsoid (1)."""
    volume = np.zeros(shape, np.uint8)
    for z, mask in slice_ellipsoid(shape, centre, radii).items():
        volume[z] = mask
    return volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_samed.evaluation.compare import SlotResult
    from napari_samed.widgets.compare import CompareWidget

    shape = (args.slices, 512, 512)
    viewer = napari.Viewer(show=True)
    image = viewer.add_image(np.zeros(shape, np.int16), name="ct")
    reference = viewer.add_labels(ellipsoid(shape, (shape[0] / 2, 256, 256), (100, 120, 90)), name="reference")
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Compare")
    results = {f"method {i}": SlotResult(ellipsoid(shape, (shape[0] / 2 + 3 * i, 256 + 4 * i, 250),
                                                   (100 - 5 * i, 120 + 3 * i, 90)), seconds=1.0) for i in range(3)}
    widget.image.value, widget.reference.value = image, reference
    widget._image, widget._reference = image, reference.data
    extra = {}
    if "curves" in inspect.signature(widget._show).parameters:  # this commit draws the curves once per comparison
        from napari_samed.evaluation.compare import dsc_curves

        extra["curves"] = dsc_curves(results, reference.data)
    widget._show(image, [], [], results, [], **extra)
    QApplication.processEvents()
    handler, latency, steps = [], [], []
    scorer = getattr(widget, "slice_scores", None)  # this commit scores the slice in a thread
    if scorer is not None:
        show, filled = widget._show_slice_rows, []

        def timed_show(rows):
            began = time.perf_counter()
            show(rows)
            filled.append(time.perf_counter() - began)

        scorer.show = timed_show
    start_z = shape[0] // 2 - args.steps // 2
    for z in range(start_z, start_z + args.steps):
        viewer.dims.set_current_step(0, z)  # napari slices; the widget's handler runs too
        while scorer is not None and scorer.busy:
            QApplication.processEvents()
        began = time.perf_counter()
        widget.update_slice()
        QApplication.processEvents()
        gui = time.perf_counter() - began
        if scorer is not None:
            filled.clear()
            while scorer.busy or not filled:
                QApplication.processEvents()
                time.sleep(0.001)
            latency.append((time.perf_counter() - began) * 1000)
            gui += filled[0]
        handler.append(gui * 1000)
    for z in range(start_z, start_z + args.steps):
        began = time.perf_counter()
        viewer.dims.set_current_step(0, z + 1)
        QApplication.processEvents()
        steps.append((time.perf_counter() - began) * 1000)
    while scorer is not None and scorer.busy:
        QApplication.processEvents()
    print(f"{shape}, 3 results: GUI-thread time of the widget per slice step median {statistics.median(handler):.1f} "
          f"ms (worst {max(handler):.1f})"
          + (f"; slice rows shown after {statistics.median(latency):.0f} ms (scored in a thread)" if latency else "")
          + f"; whole slice step median {statistics.median(steps):.1f} ms (worst {max(steps):.1f})")
    viewer.close()


if __name__ == "__main__":
    main()

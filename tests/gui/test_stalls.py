"""The GUI thread does not stall: a 10 ms timer keeps ticking while the Segment widget segments an object in 3D.

The first result of a fresh napari (docking, importing the model code, loading the model) is measured by
benchmarks/gui_stalls.py, not asserted here: this test process has imported and loaded everything already.
"""

import time

import numpy as np
from conftest import SAMPLE
from qtpy.QtCore import QTimer
from scipy import ndimage

from napari_samed.phantom import make_phantom
from napari_samed.widgets.segment import SegmentWidget

Z = 32


def _longest_gap(qtbot, start, busy) -> float:
    """Run ``start`` and tick a 10 ms timer until ``busy()`` is False; the longest time between ticks, in s."""
    stamps = [time.perf_counter()]
    timer = QTimer()
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start(10)
    start()
    qtbot.waitUntil(lambda: not busy(), timeout=300_000)
    timer.stop()
    return float(np.diff(stamps).max())


def test_one_click_in_3d_never_stalls_the_gui(qtbot, make_napari_viewer, cache_dir):
    viewer = make_napari_viewer()
    [image] = viewer.open(str(SAMPLE), plugin="napari-samed")
    widget = SegmentWidget(viewer, cache_dir=str(cache_dir))
    viewer.window.add_dock_widget(widget)
    widget.auto.value = False
    viewer.dims.set_point(0, image.data_to_world([Z, 0, 0])[0])
    organ = make_phantom(0)[1][Z] > 0
    cy, cx = np.unravel_index(int(ndimage.distance_transform_edt(organ).argmax()), organ.shape)
    points = widget.prompt_layers(image)[0]
    points.add([[Z, cy, cx]])
    widget.segment_slice()  # the first result loads the model and adds the result layer (measured: see below)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    widget.undo()
    gap = _longest_gap(qtbot, widget.segment_slice, lambda: widget.worker is not None)
    assert (widget.result_layer(image).data == 1).sum() > 10_000
    assert gap < 0.2, f"the GUI thread stalled for {gap * 1000:.0f} ms"

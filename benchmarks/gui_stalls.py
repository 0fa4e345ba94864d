"""GUI-thread stalls of a first result in the Segment widget, as a user meets it (issue 17).

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_stalls.py [--repeats 3] [--open "Compare methods"]

Each repeat is a fresh process: a napari viewer draws, the Segment widget is docked from the plugin (its modules
and torch imported then), the sample opens, and one click on the organ is segmented in 3D (the default) with an
empty embedding cache: the model loads, the slices embed, the first slice shows, the object propagates. A 10 ms
QTimer ticks on the GUI thread throughout; printed: the longest gaps between ticks and when they came (seconds
after the click), the whole result, and the time to dock the widget. With ``--open WIDGET`` (Few-shot, Compare
methods) only that widget is docked: the time to dock it, to build it (its model code loads in a thread
meanwhile) and the longest gaps until it is built.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def open_run(name: str) -> None:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer()
    for _ in range(30):
        QApplication.processEvents()
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    start = time.perf_counter()
    ticks.append(start)
    _, widget = viewer.window.add_plugin_dock_widget("napari-samed", name)
    dock = time.perf_counter() - start
    while getattr(widget, "widget", widget) is None:
        QApplication.processEvents()
        time.sleep(0.002)
    built = time.perf_counter() - start
    QApplication.processEvents()
    ticks.append(time.perf_counter())  # the GUI thread's first moment free after docking, if it never was before
    timer.stop()
    gaps = np.diff(ticks)
    worst = sorted(np.argsort(gaps)[::-1][:3])
    print(f"{name}: dock {dock:.1f} s; built {built:.1f} s; longest gaps: "
          + ", ".join(f"{gaps[i] * 1000:.0f} ms at {ticks[i] - start:.1f} s" for i in worst))
    viewer.close()


def one_run() -> None:
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    def pump(until):
        while not until():
            QApplication.processEvents()
            time.sleep(0.002)

    viewer = napari.Viewer()
    for _ in range(30):
        QApplication.processEvents()
    t = time.perf_counter()
    _, widget = viewer.window.add_plugin_dock_widget("napari-samed", "Segment")
    dock = time.perf_counter() - t  # on the GUI thread: napari waits for it
    [image] = viewer.open(str(ROOT / "sample_data" / "sample_ct.nii.gz"), plugin="napari-samed")
    widget.image.value = image
    widget.auto.value = False
    widget.session(image).cache_dir = tempfile.mkdtemp()
    viewer.dims.set_point(0, image.data_to_world([32, 0, 0])[0])
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    widget.prompt_layers(image)[0].add([[32, 100, 80]])
    start = time.perf_counter()
    ticks.append(start)
    widget.segment_slice()  # at once: the model code may still be importing in the background
    pump(lambda: widget.worker is None)
    end = time.perf_counter()
    pump(lambda: time.perf_counter() > end + 0.5)
    timer.stop()
    gaps = np.diff(ticks)
    worst = sorted(np.argsort(gaps)[::-1][:3])
    print(f"dock {dock:.1f} s; result {end - start:.1f} s; longest gaps: "
          + ", ".join(f"{gaps[i] * 1000:.0f} ms at {ticks[i] - start:.1f} s" for i in worst))
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--open", help="only dock this widget (Few-shot, Compare methods)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        open_run(args.open) if args.open else one_run()
        return
    for _ in range(args.repeats):
        extra = ["--open", args.open] if args.open else []
        out = subprocess.run([sys.executable, __file__, "--one", *extra], capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()

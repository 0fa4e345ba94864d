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
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


class Ticks:
    """A 10 ms timer on the GUI thread; ``report`` gives the longest gaps between its ticks."""

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.start = time.perf_counter()
        self.stamps = [self.start]
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: self.stamps.append(time.perf_counter()))
        self.timer.start(10)

    def report(self) -> str:
        self.stamps.append(time.perf_counter())  # the first moment the GUI thread is free again
        self.timer.stop()
        gaps = np.diff(self.stamps)
        worst = sorted(np.argsort(gaps)[::-1][:3])
        return "longest gaps: " + ", ".join(f"{gaps[i] * 1000:.0f} ms at {self.stamps[i] - self.start:.1f} s"
                                            for i in worst)


def pump(until) -> None:
    """Run the event loop until ``until()``."""
    from qtpy.QtWidgets import QApplication

    while not until():
        QApplication.processEvents()
        time.sleep(0.002)


def drawn_viewer():
    """A napari viewer that has drawn, in a process whose session files go to a new temporary folder."""
    import napari

    os.environ["NAPARI_SAMED_SESSIONS"] = tempfile.mkdtemp()
    viewer = napari.Viewer()
    end = time.perf_counter() + 0.3
    pump(lambda: time.perf_counter() > end)
    return viewer


def open_run(name: str) -> None:
    viewer = drawn_viewer()
    ticks = Ticks()
    _, widget = viewer.window.add_plugin_dock_widget("napari-samed", name)
    dock = time.perf_counter() - ticks.start
    pump(lambda: getattr(widget, "widget", widget) is not None)
    built = time.perf_counter() - ticks.start
    print(f"{name}: dock {dock:.1f} s; built {built:.1f} s; {ticks.report()}")
    viewer.close()


def one_run() -> None:
    viewer = drawn_viewer()
    t = time.perf_counter()
    _, widget = viewer.window.add_plugin_dock_widget("napari-samed", "Segment")
    dock = time.perf_counter() - t  # on the GUI thread: napari waits for it
    [image] = viewer.open(str(ROOT / "sample_data" / "sample_ct.nii.gz"), plugin="napari-samed")
    widget.image.value = image
    widget.auto.value = False
    widget.session(image).cache_dir = tempfile.mkdtemp()
    viewer.dims.set_point(0, image.data_to_world([32, 0, 0])[0])
    ticks = Ticks()
    widget.prompt_layers(image)[0].add([[32, 100, 80]])
    widget.segment_slice()  # at once: the model code may still be importing in the background
    pump(lambda: widget.worker is None)
    end = time.perf_counter()
    pump(lambda: time.perf_counter() > end + 0.5)
    print(f"dock {dock:.1f} s; result {end - ticks.start:.1f} s; {ticks.report()}")
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

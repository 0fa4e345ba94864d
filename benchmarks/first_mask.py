"""Time to the first mask in the Segment widget on a new volume, the model already loaded.

    xvfb-run -a python benchmarks/first_mask.py [--slices 100] [--size 512] [--repeats 3] [--precision auto]

A napari viewer (not shown) with the Segment widget; the model is loaded by segmenting a small warm-up
volume first. Then, per repeat, a new phantom CT volume (another seed, ``--slices`` slices of ``--size``² in HU,
an empty embedding cache) is added as a layer and chosen in the widget, and one box is drawn around the organ
on its middle slice. Timed: from adding the box to the mask being in the widget's Labels layer, through the
widget's own path (the box layer's event, the worker, the configure step with the image hash and the window,
the slice's embedding, the decoder, the layer update). Also an MR-like copy (intensities shifted positive, so
``auto`` computes percentiles). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime

import numpy as np
import torch
from qtpy.QtWidgets import QApplication

from napari_samed.masks import mask_bbox
from napari_samed.phantom import make_phantom
from napari_samed.widgets.segment import SegmentWidget


def _wait(done, what: str, timeout=300.0) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        QApplication.processEvents()
        if done():
            return
        time.sleep(0.002)
    raise TimeoutError(f"no {what} after {timeout} s")


def first_mask(viewer, widget, data: np.ndarray, box: tuple[int, int, int, int], name: str) -> tuple[float, float]:
    """Seconds from drawing ``box`` on the middle slice of a new image layer to its mask on screen, and to the
    end of the task (with the widget's 3D toggle on, its default: the whole object propagated)."""
    image = viewer.add_image(data, name=name)
    widget.image.value = image
    z = len(data) // 2
    viewer.dims.set_point(0, z)
    boxes = widget.prompt_layers(image)[1]
    y0, x0, y1, x1 = box
    start = time.perf_counter()
    boxes.add_rectangles(np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float))
    layer = f"{name} segmentation"
    _wait(lambda: layer in viewer.layers and viewer.layers[layer].data[z].any(), f"mask on slice {z}")
    shown = time.perf_counter() - start
    _wait(lambda: widget.worker is None, "end of the task")
    return shown, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import napari

    load0, started = os.getloadavg(), datetime.now()
    viewer = napari.Viewer(show=False)
    rows: dict[str, list[tuple[float, float]]] = {"CT (HU, window auto → CT)": [],
                                                  "MR-like (window auto → percentiles)": []}
    with tempfile.TemporaryDirectory() as cache:
        widget = SegmentWidget(viewer, cache_dir=cache)
        widget.device.value, widget.precision.value = args.device, args.precision
        warm, labels = make_phantom(99, (8, 128, 128))
        start = time.perf_counter()
        first_mask(viewer, widget, warm.data, mask_bbox(labels[4] > 0), "warm-up")
        warm_up = time.perf_counter() - start
        for seed in range(args.repeats):
            volume, labels = make_phantom(seed + 1, (args.slices, args.size, args.size), (2.5, 0.7, 0.7))
            box = mask_bbox(labels[args.slices // 2] > 0)
            rows["CT (HU, window auto → CT)"].append(first_mask(viewer, widget, volume.data, box, f"ct{seed}"))
            mr = (volume.data.astype(np.float32) + 1024.0) * 0.5
            rows["MR-like (window auto → percentiles)"].append(first_mask(viewer, widget, mr, box, f"mr{seed}"))
        backbone = widget.sessions[id(viewer.layers["ct0"])].embeddings.backbone
    load1 = os.getloadavg()
    print(f"`xvfb-run -a python benchmarks/first_mask.py --slices {args.slices} --size {args.size} --repeats "
          f"{args.repeats} --precision {args.precision}`, {started:%Y-%m-%d %H:%M}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {backbone.device}, precision {backbone.precision}, load average "
          f"{load0[0]:.2f} before, {load1[0]:.2f} after; warm-up (model load and first mask) {warm_up:.2f} s\n")
    print(f"| new {args.slices}×{args.size}² volume | first mask, s (median) | each repeat, s | whole task "
          f"(3D object), s (median) |\n|---|---|---|---|")
    for what, values in rows.items():
        shown, ended = zip(*values, strict=True)
        print(f"| {what} | {statistics.median(shown):.2f} | {' '.join(f'{v:.2f}' for v in shown)} | "
              f"{statistics.median(ended):.2f} |")
    viewer.close()


if __name__ == "__main__":
    main()

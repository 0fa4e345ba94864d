"""Latency of one click → 3D on a 100-slice 512×512 CT with its embeddings cached: the prompted slice, the whole
object, and a negative correction click.

    PYTHONPATH=src python benchmarks/click3d_latency.py [--precision auto|fp32] [--repeats 3] [--cache DIR]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=src \
        python benchmarks/click3d_latency.py --precision fp32

The volume is the sample phantom generated at 100 × 512 × 512 (1.25 × 0.5 × 0.5 mm), the organ spanning 74
slices; LiteMedSAM on the CPU (2 threads). The click is at the organ's deepest point on its largest slice;
``ZeroShot.segment_object`` runs from a cold start of the task (embeddings cached on disk, the backbone loaded).
Prints the median over ``--repeats`` of: seconds to the prompted slice's mask (the task's first partial result),
to the whole object, and (where the code has corrections) to a negative click 10 slices away. Run it with
another checkout's ``src`` on PYTHONPATH to time that code in the same way (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_samed.masks import deepest_point
from napari_samed.methods import ObjectPrompt3D, SlicePrompt, ZeroShot
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.phantom import make_phantom


def timed(task) -> tuple[float, float, object]:
    """Seconds to the task's first partial result and to its end, and its result."""
    start, first = time.perf_counter(), None
    try:
        while True:
            step = next(task)
            if first is None and getattr(step, "partial", None):
                first = time.perf_counter() - start
    except StopIteration as stop:
        return first, time.perf_counter() - start, stop.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "napari-samed-bench")
    args = parser.parse_args()
    volume, labels = make_phantom(0, shape=(100, 512, 512), spacing=(1.25, 0.5, 0.5))
    organ = labels > 0
    backbone = load_backbone(device="cpu", precision=args.precision)
    emb = VolumeEmbeddings(volume, backbone, "ct", args.cache)
    begin = time.perf_counter()
    list(emb.compute())
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, precision {backbone.precision}, "
          f"{torch.get_num_threads()} threads; organ on {int(organ.any(axis=(1, 2)).sum())} slices; embedding "
          f"{time.perf_counter() - begin:.0f} s (0 when cached)")
    z = int(organ.sum(axis=(1, 2)).argmax())
    click = SlicePrompt(z, 1, points=[tuple(float(v) for v in deepest_point(organ[z]))], point_labels=[1])
    zero = ZeroShot(backbone)
    runs = []
    for _ in range(args.repeats):
        first, whole, result = timed(zero.segment_object(emb, ObjectPrompt3D(1, [click])))
        row = [first, whole]
        if hasattr(result, "origin"):  # the code has corrections
            zc = z + 10
            outside = np.argwhere(result.masks[zc] & ~organ[zc]) if zc in result.masks else np.zeros((0, 2))
            spot = outside[len(outside) // 2] if len(outside) else np.array(deepest_point(result.masks[zc]))
            negative = SlicePrompt(zc, 1, points=[tuple(float(v) for v in spot)], point_labels=[0])
            row.append(timed(zero.segment_object(emb, ObjectPrompt3D(1, [negative]), existing=result))[1])
        runs.append(row)
        print("  " + ", ".join(f"{v:.2f} s" for v in row), flush=True)
    names = ("prompted slice", "whole object", "negative click 10 slices away")
    print("median: " + "; ".join(f"{n} {statistics.median(r[i] for r in runs):.2f} s"
                                 for i, n in enumerate(names[:len(runs[0])])))


if __name__ == "__main__":
    main()

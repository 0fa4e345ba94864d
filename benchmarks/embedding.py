"""Encoder seconds per slice and prompt latency on a cached slice, for a backbone on this machine.

    python benchmarks/embedding.py [--model lite-medsam] [--device cpu] [--slices 8]

Prints a markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from napari_samed.methods import ZeroShot, group_prompts, run_task
from napari_samed.methods.zero_shot import click_to_mask, mask_bbox
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.phantom import make_phantom


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lite-medsam")
    parser.add_argument("--checkpoint")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--slices", type=int, default=8, help="slices to embed per image size")
    parser.add_argument("--repeats", type=int, default=20, help="repeats of each prompt timing")
    args = parser.parse_args()

    backbone = load_backbone(args.model, args.checkpoint, args.device)
    volume, labels = make_phantom(0)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for size in (256, 512):
            data = volume.data[24:24 + args.slices]
            factor = size // data.shape[1]
            data = data.repeat(factor, axis=1).repeat(factor, axis=2)
            emb = VolumeEmbeddings(data, backbone, "ct", cache)
            backbone.encode(data[:1], emb.window)  # warm-up
            start = time.perf_counter()
            for _ in emb.compute():
                pass
            per_slice = (time.perf_counter() - start) / len(data)
            reload = _median_seconds(lambda d=data: VolumeEmbeddings(d, backbone, "ct", cache).get(0), 5)
            rows.append((f"encoder, {size}×{size} slice, into the disk cache", per_slice))
            rows.append((f"cached embedding read back from disk ({size}×{size} volume, new session)", reload))

        emb = VolumeEmbeddings(volume.data[30:33], backbone, "ct", cache)
        organ = labels[31] > 0
        box = (1, *mask_bbox(organ))
        zero_shot = ZeroShot(backbone)
        emb.get(1)
        rows.append(("one box → mask on a cached 256² slice",
                     _median_seconds(lambda: run_task(zero_shot.segment(emb, group_prompts(boxes=[box]))),
                                     args.repeats)))
        ys, xs = np.nonzero(organ)
        click = np.array([[ys.mean(), xs.mean()]])
        rows.append(("one click → mask (box-only model: candidate boxes + refinement)",
                     _median_seconds(lambda: click_to_mask(backbone, emb.get(1), organ.shape, click,
                                                           np.zeros((0, 2))), args.repeats)))

    print(f"model {backbone.name}, device {backbone.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}\n")
    print("| what | seconds |\n|---|---|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.3f} |")


if __name__ == "__main__":
    main()

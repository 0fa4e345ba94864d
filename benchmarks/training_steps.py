"""Seconds per optimiser step of each trained method on the CPU, embeddings cached (not timed).

    python benchmarks/training_steps.py [--steps 20] [--cache DIR] [--profile 5]

Each method trains at its defaults (LiteMedSAM): few-shot on the sample's five organ slices (batch 2), co-training
on the phantom folder of `napari-samed sample --cases 3` (organ and lesion, batch 4), ProMISe at its CPU
configuration on two phantoms (lesion, one crop per step). A step is the time between two steps' progress (the
loss, its backward pass, the optimiser and the data of the next step); the first 3 are left out. Run it once as
the machine is and once with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 NAPARI_SAMED_PRECISION=fp32`` for
an AVX2 CPU. Prints markdown; with ``--profile N``, then the operators that take most of N more steps of each
method (self CPU time, `torch.profiler`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_samed.methods import CoTrain, FewShot, Promise
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.phantom import LESION, make_phantom
from napari_samed.sample_data import write_sample_dataset
from napari_samed.tasks import run_task
from napari_samed.training import Dataset, load_slices, parse_structures

WARM_UP = 3


def step_times(task, steps: int) -> list[float]:
    """Seconds between the loss-carrying progress reports of ``task``, stopped after ``steps`` + `WARM_UP`."""
    stamps = []
    for progress in task:
        if progress.loss is not None:
            stamps.append(time.perf_counter())
            if len(stamps) > steps + WARM_UP:
                break
    return list(np.diff(stamps)[WARM_UP:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--profile", type=int, default=0, help="profile this many more steps of each method")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "napari-samed-steps")
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, encoder precision {backbone.precision}, "
          f"{torch.get_num_threads()} threads\n")
    volume, labels = make_phantom(0)
    embeddings = VolumeEmbeddings(volume, backbone, "ct", args.cache)
    list(embeddings.compute())
    shots = {z: (labels[z] > 0).astype(np.uint8) for z in (16, 24, 32, 40, 48)}
    runs = {"few-shot": FewShot(backbone).fit(embeddings, shots, iterations=args.steps + WARM_UP + 2 + args.profile)}

    folder = write_sample_dataset(args.cache / "phantoms", cases=3)
    structures = parse_structures("organ=1,lesion=2")
    splits = run_task(load_slices(Dataset.from_folder(folder), structures, backbone, "auto", args.cache))
    runs["co-train"] = CoTrain(backbone, structures).fit(splits, epochs=100)

    cases = [make_phantom(seed, (32, 128, 128), (2.0, 2.0, 2.0)) for seed in (100, 101)]
    runs["ProMISe"] = Promise(backbone).fit([(v, lab == LESION) for v, lab in cases], epochs=100, window="ct",
                                           crops_per_case=args.steps, cache_dir=args.cache)
    print("| method | s/step (median) | steps timed |")
    print("|---|---|---|")
    for name, task in runs.items():
        times = step_times(task, args.steps)
        print(f"| {name} | {np.median(times):.3f} | {len(times)} |")
    for name, task in runs.items() if args.profile else ():
        with torch.profiler.profile() as profile:
            step_times(task, args.profile - WARM_UP)
        print(f"\n{name}, {args.profile} steps:")
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()

"""Cases per minute of a trained model over a cohort: `apply` with 1 and 2 Dask workers against a shell loop of
`segment --trained`, in one run, each with its own empty embedding cache.

    PYTHONPATH=src python benchmarks/apply_throughput.py [--cases 8] [--shape 24,256,256] [--work DIR]

The cohort is phantoms (`make_phantom`, seeds 1..N, 2.5 mm slices) with their organ as reference; the model is a
few-shot decoder trained at the defaults on 5 slices of phantom 0. Each way runs the same `napari-samed` command
line a user would (a fresh process, the model loaded by it; the loop loads it once per case). Prints one markdown
row per way; the outputs of the three ways are checked to be the same.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_samed.io import read_labels, write_labels, write_volume
from napari_samed.methods import FewShot, run_task
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.phantom import make_phantom

COMMAND = [sys.executable, "-m", "napari_samed.cli"]


def make_cohort(folder: Path, cases: int, shape: tuple[int, ...]) -> list[Path]:
    images = []
    for seed in range(1, cases + 1):
        volume, labels = make_phantom(seed, shape, (2.5, 1.0, 1.0))
        images.append(write_volume(volume.data, folder / f"case{seed:02d}.nii.gz", volume))
        write_labels((labels > 0).astype(np.uint8), folder / f"case{seed:02d}_label.nii.gz", volume)
    return images


def train(path: Path, shape: tuple[int, ...], cache: Path) -> Path:
    volume, labels = make_phantom(0, shape, (2.5, 1.0, 1.0))
    organ = (labels > 0).astype(np.uint8)
    zs = np.flatnonzero(organ.any(axis=(1, 2)))
    shots = {int(zs[round(i)]): organ[zs[round(i)]] for i in np.linspace(1, len(zs) - 2, 5)}
    method = FewShot(load_backbone(device="cpu"))
    run_task(method.fit(VolumeEmbeddings(volume, method.backbone, "auto", cache), shots))
    return method.save(path)


def timed(args: list) -> float:
    start = time.perf_counter()
    subprocess.run([*COMMAND, *map(str, args)], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", default="24,256,256")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="apply-throughput-"))
    cohort = work / "cohort"
    cohort.mkdir(parents=True, exist_ok=True)
    images = make_cohort(cohort, args.cases, shape)
    model = train(work / "model.ckpt", shape, work / "cache-train")
    ways = {
        "shell loop of segment --trained": lambda out, cache: sum(
            timed(["segment", image, "--trained", model, "-o", out / image.name, "--cache", cache])
            for image in images),
        "apply, 1 worker (in process)": lambda out, cache: timed(
            ["apply", model, *images, "-o", out, "--cache", cache]),
        "apply --workers 2 (LocalCluster)": lambda out, cache: timed(
            ["apply", model, *images, "-o", out, "--cache", cache, "--workers", "2"]),
    }
    print(f"{args.cases} phantoms of {shape[0]} slices of {shape[1]}x{shape[2]}\n")
    print("| way | seconds | cases per minute |\n|---|---:|---:|")
    results = {}
    for i, (name, way) in enumerate(ways.items()):
        out = work / f"out{i}"
        out.mkdir()
        seconds = way(out, work / f"cache{i}")
        results[name] = {p.name: read_labels(p).data for p in sorted(out.glob("case*.nii.gz"))}
        print(f"| {name} | {seconds:.1f} | {60 * args.cases / seconds:.1f} |", flush=True)
    first, *others = results.values()
    same = all(o.keys() == first.keys() and all(np.array_equal(o[k], first[k]) for k in first) for o in others)
    print(f"\nthe three ways' outputs are {'the same' if same else 'NOT the same'}")


if __name__ == "__main__":
    main()

"""Co-training on the CPU: seconds per training epoch in each mode, embeddings cached (not timed).

    python benchmarks/cotrain.py [--cases 7] [--cache DIR]

The data is the phantom training folder of `napari-samed sample --cases 7` (24 slices of 256² per volume, organ
and lesion), split 70/15/15 by volume. Prints markdown: slices, optimiser steps and seconds per epoch per mode.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from napari_samed.methods import CoTrain, run_task
from napari_samed.models import load_backbone
from napari_samed.sample_data import write_sample_dataset
from napari_samed.training import Dataset, load_slices, parse_structures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=7)
    parser.add_argument("--cache", type=Path, help="embedding cache (default: a temporary folder)")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_sample_dataset(Path(tmp) / "phantoms", cases=args.cases)
        structures = parse_structures("organ=1,lesion=2")
        backbone = load_backbone("lite-medsam", device="cpu")
        splits = run_task(load_slices(Dataset.from_folder(folder), structures, backbone, "auto",
                                      args.cache or Path(tmp) / "cache"))
        print(f"{splits.summary()}, batch {args.batch}\n")
        print("| mode | items per epoch | optimiser steps | seconds per epoch (incl. validation) |")
        print("|---|---|---|---|")
        for mode in ("single", "cotrain"):
            method = CoTrain(backbone, structures, mode)
            items = len(method.training_items(splits.train))
            start = time.perf_counter()
            run_task(method.fit(splits, epochs=1, batch=args.batch))
            seconds = time.perf_counter() - start
            print(f"| {mode} | {items} | {-(-items // args.batch)} | {seconds:.1f} |")


if __name__ == "__main__":
    main()

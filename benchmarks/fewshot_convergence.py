"""Few-shot convergence probe on the real-data structures of at least 10 slices: DSC after a number of steps.

    PYTHONPATH=src python benchmarks/fewshot_convergence.py [--only SUBSTRING ...] [--lr 1e-4] [--batch 2]
        [--evals 50,100,200]

For each step count in ``--evals``, trains `FewShot.fit` that many iterations (5 spread shots, seed 0; a shorter
run is the start of a longer one) and prints the DSC on the unlabelled slices (``u``), on the shots, on the
unlabelled slices without the presence check (``raw``), the mean loss of the last 5 steps and the training
seconds, one JSON line per structure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import dice  # noqa: E402
from napari_samed.methods import FewShot  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402
from napari_samed.tasks import run_task  # noqa: E402


def probe(entry: rd.Entry, backbone, cache: Path, lr: float, batch: int, evals: list[int]) -> dict | None:
    case = rd.load_structure(entry, rd.DEFAULT_DATA, 10)
    ref = case.mask
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    if len(zs) < 10:
        return None
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    list(emb.compute(range(len(ref))))
    shots = rd.spread(zs)
    others = [z for z in range(len(ref)) if z not in shots]
    row = {"structure": entry.name}
    for steps in evals:
        method = FewShot(backbone)
        start = time.perf_counter()
        losses = run_task(method.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}, iterations=steps,
                                     batch=batch, lr=lr))
        seconds = time.perf_counter() - start
        pred = np.stack([method.predict_slice(emb.get(z), emb.slice_shape) for z in range(len(ref))]) > 0
        method.presence = 0.0
        raw = np.stack([method.predict_slice(emb.get(z), emb.slice_shape) for z in range(len(ref))]) > 0
        row[steps] = {"u": round(dice(pred[others], ref[others]), 3),
                      "shots": round(dice(pred[shots], ref[shots]), 3),
                      "raw": round(dice(raw[others], ref[others]), 3),
                      "loss": round(float(np.mean(losses[-5:])), 3), "s": round(seconds, 1)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--evals", default="50,100,200")
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    args = parser.parse_args()
    evals = [int(v) for v in args.evals.split(",")]
    backbone = load_backbone("lite-medsam", device="cpu")
    for entry in rd.select(args.only):
        if row := probe(entry, backbone, args.cache, args.lr, args.batch, evals):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""Few-shot convergence probe on the real-data structures of at least 10 slices: DSC after a number of steps.

    PYTHONPATH=src python benchmarks/fewshot_convergence.py [--only SUBSTRING ...] [--lr 4e-4] [--warmup 10]
        [--clip 1] [--batch 2] [--evals 50,100,150]

One training per structure (`FewShot.fit` with ``--iterations`` the last of ``--evals``, 5 spread shots, seed 0):
a run of N steps is the start of any longer one, so the model after each step count of ``--evals`` is scored as
the training passes it. Prints, one JSON line per structure and step count, the DSC on the unlabelled slices
(``u``), on the shots, on the unlabelled slices without the presence check (``raw``), the mean loss of the last
5 steps and the training seconds up to there (its own checks included, the scoring not).
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


def probe(entry: rd.Entry, backbone, cache: Path, evals: list[int], **options) -> dict | None:
    case = rd.load_structure(entry, rd.DEFAULT_DATA, 10)
    ref = case.mask
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    if len(zs) < 10:
        return None
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    list(emb.compute(range(len(ref))))
    shots = rd.spread(zs)
    others = [z for z in range(len(ref)) if z not in shots]
    method = FewShot(backbone)
    row, losses, seconds, clock = {"structure": entry.name}, [], 0.0, time.perf_counter()
    for step in method.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}, iterations=max(evals), **options):
        if step.loss is None:
            continue
        losses.append(step.loss)
        if len(losses) in evals:
            seconds += time.perf_counter() - clock
            pred = np.stack([method.predict_slice(emb.get(z), emb.slice_shape) for z in range(len(ref))]) > 0
            presence, method.presence = method.presence, 0.0
            raw = np.stack([method.predict_slice(emb.get(z), emb.slice_shape) for z in range(len(ref))]) > 0
            method.presence = presence
            row[len(losses)] = {"u": round(dice(pred[others], ref[others]), 3),
                                "shots": round(dice(pred[shots], ref[shots]), 3),
                                "raw": round(dice(raw[others], ref[others]), 3),
                                "loss": round(float(np.mean(losses[-5:])), 3), "s": round(seconds, 1)}
            clock = time.perf_counter()
    return row


def main() -> None:
    from napari_samed.methods.fewshot import CLIP, LR, WARMUP

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--clip", type=float, default=CLIP, help="gradient norm clip (0: none)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--evals", default="50,100,150")
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    args = parser.parse_args()
    evals = [int(v) for v in args.evals.split(",")]
    backbone = load_backbone("lite-medsam", device="cpu")
    for entry in rd.select(args.only):
        if row := probe(entry, backbone, args.cache, evals, lr=args.lr, warmup=args.warmup, clip=args.clip or None,
                        batch=args.batch):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

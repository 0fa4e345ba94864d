"""Few-shot convergence probe on the real-data structures of at least 10 slices: DSC after a number of steps.

    PYTHONPATH=src python benchmarks/fewshot_convergence.py [--only SUBSTRING ...] [--lr 1e-4] [--batch 2]
        [--evals 50,100,200]

Trains the few-shot decoder as `FewShot.fit` does (5 spread shots, seed 0, Adam) with the learning rate and
batch given, and at each step count in ``--evals`` prints the DSC on the unlabelled slices (``u``), on the
shots, on the unlabelled slices without the presence check (``raw``), the mean loss of the last 5 steps and
the training seconds so far, one JSON line per structure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.methods import FewShot  # noqa: E402
from napari_samed.methods import fewshot as fs  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402
from napari_samed.models.preprocess import masks_to_grid  # noqa: E402


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
    every = torch.stack([emb.get(z) for z in range(len(ref))]).float()
    method = FewShot(backbone)
    method.labels, method.window = [1], case.window
    method.targets = [fs.target_embeddings(every[shots], ref[shots])]
    method.presence = fs.calibrate_presence(method.targets)
    truth = (masks_to_grid(ref[shots], 256) > 0.5).long()[:, None]
    torch.manual_seed(0)
    method.decoder = fs.FewShotDecoder(backbone, 1).train()
    optimiser = torch.optim.Adam([p for p in method.decoder.parameters() if p.requires_grad], lr=lr,
                                 betas=(0.9, 0.99))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    generator, n = torch.Generator().manual_seed(0), len(shots)
    batch = min(batch, n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(max(evals) * batch // n + 1)])
    losses, seconds, row = [], 0.0, {"structure": entry.name}
    for step in range(1, max(evals) + 1):
        start = time.perf_counter()
        pick = order[(step - 1) * batch:step * batch]
        loss = loss_fn(method.decoder(every[shots][pick], method.targets).flatten(0, 1), truth[pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        seconds += time.perf_counter() - start
        if step in evals:
            method.decoder.eval()
            pred = np.stack([method.predict_slice(every[z], emb.slice_shape) for z in range(len(ref))]) > 0
            method.presence, presence = 0.0, method.presence
            raw = np.stack([method.predict_slice(every[z], emb.slice_shape) for z in range(len(ref))]) > 0
            method.presence = presence
            method.decoder.train()
            row[step] = {"u": round(rd.dice(pred[others], ref[others]), 3),
                         "shots": round(rd.dice(pred[shots], ref[shots]), 3),
                         "raw": round(rd.dice(raw[others], ref[others]), 3),
                         "loss": round(float(np.mean(losses[-5:])), 3), "s": round(seconds, 1)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--evals", default="50,100,200")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "napari-samed-bench")
    args = parser.parse_args()
    evals = [int(v) for v in args.evals.split(",")]
    backbone = load_backbone("lite-medsam", device="cpu")
    for entry in rd.MANIFEST:
        if not args.only or any(o in entry.name for o in args.only):
            row = probe(entry, backbone, args.cache, args.lr, args.batch, evals)
            if row:
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""The embedding cache's cost on a whole volume: `VolumeEmbeddings.compute` over the 64-slice phantom in memory
only, and into a disk cache with the old entry digest (BLAKE2b) and the current one (CRC-32), alternating.

    PYTHONPATH=src python benchmarks/cache_gpu.py [--device cuda] [--rounds 5]

Both batch shapes of the encoder are warmed up first (the first call of a shape on a GPU costs about a second,
which a short timed run would count). Prints each path's median rate and the ratio of the current digest to the
old. Meant for a GPU, where the encoder is fast enough for the cache to matter; it runs on a CPU too (slowly).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time

import numpy as np
import torch

from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.models import cache as cache_mod
from napari_samed.phantom import make_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    volume, _ = make_phantom(0)
    backbone = load_backbone("lite-medsam", device=args.device)
    for n in sorted({1, backbone.batch_size}):
        for _ in range(3):
            backbone.encode(volume.data[:n], (-160.0, 240.0))
            sync()
    current = cache_mod._digest
    digests = {"memory only": None, "old digest (BLAKE2b)": lambda b: hashlib.blake2b(b, digest_size=16).digest(),
               "current digest (CRC-32)": current}
    rates: dict[str, list[float]] = {name: [] for name in digests}
    for _ in range(args.rounds):
        for name, digest in digests.items():
            cache_mod._digest = digest or current
            emb = VolumeEmbeddings(volume, backbone, "ct", False if digest is None else tempfile.mkdtemp())
            total = len(emb.missing())
            start = time.perf_counter()
            for _ in emb.compute():
                pass
            sync()
            rates[name].append(total / (time.perf_counter() - start))
    cache_mod._digest = current
    for name, values in rates.items():
        print(f"{name}: median {np.median(values):.1f} slices/s (each: {', '.join(f'{v:.1f}' for v in values)})")
    ratio = np.median(rates["current digest (CRC-32)"]) / np.median(rates["old digest (BLAKE2b)"])
    print(f"current/old: {ratio:.2f}")


if __name__ == "__main__":
    main()

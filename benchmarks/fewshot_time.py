"""Seconds to train the few-shot decoder on 5 slices and segment a whole real volume, embeddings cached.

    PYTHONPATH=src python benchmarks/fewshot_time.py [--only "BraTS 0003 whole"] [--cache DIR]

The structure's crop (`realdata.load_structure`, 102 slices for BraTS 0003's whole tumour) is embedded first (not
timed); then `FewShot.fit` at its defaults on 5 spread slices and `FewShot.segment` of every slice are timed.
Run it once as the machine is and once with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
NAPARI_SAMED_PRECISION=fp32`` for an AVX2 CPU. Prints one markdown row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import dice  # noqa: E402
from napari_samed.methods import FewShot, run_task  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="BraTS 0003 whole")
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    [entry] = rd.select([args.only])
    case = rd.load_structure(entry, rd.DEFAULT_DATA)
    ref = case.mask
    emb = VolumeEmbeddings(case.volume, backbone, case.window, args.cache)
    list(emb.compute(range(len(ref))))
    shots = rd.spread(np.flatnonzero(ref.any(axis=(1, 2))))
    method, start = FewShot(backbone), time.perf_counter()
    losses = run_task(method.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}))
    trained = time.perf_counter()
    pred = run_task(method.segment(emb)) > 0
    done = time.perf_counter()
    others = [z for z in range(len(ref)) if z not in shots]
    print("| structure | slices | precision | steps | train s | segment s | total s | DSC, other slices |")
    print(f"| {entry.name} | {len(ref)} | {backbone.precision} | {len(losses)} | {trained - start:.1f} | "
          f"{done - trained:.1f} | {done - start:.1f} | {dice(pred[others], ref[others]):.3f} |")


if __name__ == "__main__":
    main()

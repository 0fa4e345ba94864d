"""Seconds to train the few-shot decoder on 5 slices and segment a whole real volume, embeddings cached.

    PYTHONPATH=src python benchmarks/fewshot_time.py [--only "BraTS 0003 whole"] [--cache DIR]

The structure's crop (`realdata.load_structure`, 102 slices for BraTS 0003's whole tumour) is embedded first (not
timed); then `realdata.run_structure`'s few-shot branch times `FewShot.fit` at its defaults on 5 spread slices
and `FewShot.segment` of every slice.
Run it once as the machine is and once with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
NAPARI_SAMED_PRECISION=fp32`` for an AVX2 CPU. Prints one markdown row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.models import load_backbone  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="BraTS 0003 whole")
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    [entry] = rd.select([args.only])
    row = rd.run_structure(entry, ["fewshot"], backbone, args.cache, rd.DEFAULT_DATA)  # the few-shot branch, timed
    slices, train = row["crop"][1], row["fewshot_train_s"]
    segment = row["fewshot_segment_s"] * slices
    print("| structure | slices | precision | steps | train s | segment s | total s | DSC, other slices |")
    print(f"| {entry.name} | {slices} | {backbone.precision} | {row['fewshot_steps']} | {train:.1f} | "
          f"{segment:.1f} | {train + segment:.1f} | {row['fewshot']:.3f} |")


if __name__ == "__main__":
    main()

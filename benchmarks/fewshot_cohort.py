"""Does a few-shot model trained on some patients work on the next? Leave one BraTS patient out.

    PYTHONPATH=src python benchmarks/fewshot_cohort.py [--structure "whole tumour"] [--margin 10] [--cache DIR]

For each of the five BraTS 2013 patients of ../shared/data (the structure's crop as `realdata.load_structure` makes
it, ±``margin`` slices: a margin of 200 keeps the whole volume, as `apply` segments it), three results on the same
unlabelled slices (the crop without its 5 spread slices):
``box``, zero-shot LiteMedSAM from a box on every slice (`realdata.slice_boxes`); ``own 5``, few-shot trained at the
defaults on the patient's own 5 spread slices; ``others 4x5``, few-shot trained at the defaults on 5 spread slices
of each of the other four patients (`FewShot.fit` on several images) and applied to this one. Every image is
embedded with the ``mr`` window rule (0.5-99.5 percentiles of its own voxels), as `--window auto` gives an MR
volume, so that one model can be trained on all of them. Prints a markdown table and the means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import dice  # noqa: E402
from napari_samed.methods import FewShot, ZeroShot, run_task  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402

PATIENTS = ("0002", "0003", "0004", "0005", "0006")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure", default="whole tumour", help='"whole tumour" (FLAIR) or "enhancing" (T1c)')
    parser.add_argument("--margin", type=int, default=10, help="slices kept beyond the structure (200: all)")
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    cases = {}
    for patient in PATIENTS:
        [entry] = rd.select([f"BraTS {patient} {args.structure}"])
        case = rd.load_structure(entry, rd.DEFAULT_DATA, args.margin)
        emb = VolumeEmbeddings(case.volume, backbone, "mr", args.cache)
        list(emb.compute())
        ref = case.mask
        shots = rd.spread(np.flatnonzero(ref.any(axis=(1, 2))))
        others = [z for z in range(len(ref)) if z not in shots]
        cases[patient] = (emb, ref, shots, others)
    print(f"| patient ({args.structure}) | box on every slice | own 5 slices | the other 4 patients' 5 slices each | "
          "steps (own / others) |\n|---|---:|---:|---:|---|")
    rows = []
    for patient, (emb, ref, shots, others) in cases.items():
        box = run_task(ZeroShot(backbone).segment(emb, rd.slice_boxes(ref))) > 0
        own = FewShot(backbone)
        run_task(own.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}, seed=0))
        rest = [cases[p] for p in PATIENTS if p != patient]
        lopo = FewShot(backbone)
        run_task(lopo.fit([e for e, *_ in rest], [{z: r[z].astype(np.uint8) for z in s} for _, r, s, _ in rest],
                          seed=0))
        scores = [dice(pred[others], ref[others]) for pred in
                  (box, run_task(own.segment(emb)) > 0, run_task(lopo.segment(emb)) > 0)]
        rows.append(scores)
        print(f"| {patient} | {scores[0]:.3f} | {scores[1]:.3f} | {scores[2]:.3f} | "
              f"{own.checks[-1][0]} / {lopo.checks[-1][0]} |", flush=True)
    mean = np.mean(rows, axis=0)
    print(f"| **mean** | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | |")


if __name__ == "__main__":
    main()

"""Few-shot against masks propagated from each labelled slice toward its neighbours (issue 27, item 2).

    PYTHONPATH=src python benchmarks/fewshot_bridge.py [STRUCTURE ...] [--no-train]

For each structure of `realdata.MANIFEST` whose name holds one of STRUCTURE (all when none; crop, window and 5
spread slices as `realdata.run_structure` makes them), the labelled slices' reference masks are propagated by
zero-shot LiteMedSAM (`propagation.propagate`, its stop rule) from each labelled slice up to the next labelled slice
on either side, and each unlabelled slice gets:

- ``near``: the propagated mask from the nearest labelled slice that reached it (empty where none did);
- ``fs``: few-shot trained at the defaults on the 5 slices (seed 0; skipped with ``--no-train``);
- ``near_fs``: ``near`` where a propagation reached the slice, ``fs`` elsewhere;
- ``vote``: between two labelled slices reached from both, the pixel-wise majority of the two propagated masks and
  ``fs``; ``fs`` elsewhere;
- ``bounded``: ``fs`` cleared on the slices more than one labelled gap (the largest distance between two
  consecutive labelled slices) beyond the first or the last labelled slice (`fewshot_extent.bounded`).

Prints one JSON line per structure: DSC on the unlabelled slices of the crop, and (``_in``) on those between the
first and last labelled slice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402
from fewshot_extent import bounded  # noqa: E402

from napari_samed.masks import dice  # noqa: E402
from napari_samed.methods import FewShot, run_task  # noqa: E402
from napari_samed.methods.propagation import propagate  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402


def propagated(backbone, emb, ref: np.ndarray, shots: list[int]) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Per slice, (distance, mask) of each propagation that reached it from a labelled slice."""
    reached = {z: [] for z in range(len(ref))}
    bounds = [-1, *shots, len(ref)]
    for i, s in enumerate(shots):
        for p in propagate(backbone, emb, s, ref[s], (bounds[i] + 1, bounds[i + 2] - 1)):
            reached[p.z].append((abs(p.z - s), p.mask))
    return reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("structures", nargs="*")
    parser.add_argument("--no-train", action="store_true", help="propagation only")
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    for entry in rd.select(args.structures):
        case = rd.load_structure(entry, rd.DEFAULT_DATA)
        ref = case.mask
        zs = np.flatnonzero(ref.any(axis=(1, 2)))
        if len(zs) < rd.SHOTS:
            continue
        emb = VolumeEmbeddings(case.volume, backbone, case.window, args.cache)
        list(emb.compute())
        shots = rd.spread(zs)
        others = [z for z in range(len(ref)) if z not in shots]
        inside = [z for z in others if shots[0] < z < shots[-1]]
        reached = propagated(backbone, emb, ref, shots)
        near = np.zeros_like(ref)
        for z in others:
            if reached[z]:
                near[z] = min(reached[z], key=lambda dm: dm[0])[1]
        preds = {"near": near}
        if not args.no_train:
            fewshot = FewShot(backbone)
            run_task(fewshot.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}, seed=0))
            fs = run_task(fewshot.segment(emb)) > 0
            near_fs, vote = fs.copy(), fs.copy()
            for z in others:
                masks = [m for _, m in reached[z]]
                if masks:
                    near_fs[z] = near[z]
                if len(masks) == 2:
                    vote[z] = masks[0].astype(int) + masks[1] + fs[z] >= 2
            preds.update(fs=fs, near_fs=near_fs, vote=vote, bounded=bounded(1.0)(fs, shots, ref[shots]))
        row = {"structure": entry.name, "slices": len(zs), "crop": len(ref)}
        for name, pred in preds.items():
            row[name] = round(dice(pred[others], ref[others]), 3)
            row[f"{name}_in"] = round(dice(pred[inside], ref[inside]), 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""Labelled slices to box quality: the few-shot workbench's own metric, with the next slice chosen two ways.

    PYTHONPATH=src python benchmarks/fewshot_effort.py [--only SUBSTRING ...] [--cap 10] [--start 3] [--json OUT]

On each structure of `realdata.MANIFEST` of at least 10 slices (cropped as there): the reference on ``--start``
spread slices (`realdata.spread`), `FewShot.fit` at its defaults, the DSC on the unlabelled slices; then one more
labelled slice at a time, each training going on from the last model (as the widget does), until the DSC reaches
the box on every slice (the reference's boxes, `ZeroShot`) or ``--cap`` slices are labelled. The next slice is
``suggested`` (`next_slice.suggest`) or ``spread`` (the one farthest from the labelled slices within the
structure's extent: a user who spreads their slices evenly). Prints markdown: per structure and way, the labelled
slices needed (``>cap`` when never reached) and the DSC after each slice.
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
from napari_samed.methods import FewShot, ZeroShot, run_task, suggest  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402

WAYS = ("spread", "suggested")


def farthest(zs: np.ndarray, labelled: list[int]) -> int:
    """The slice of ``zs`` farthest from the labelled slices (the first of equals)."""
    gaps = [min(abs(z - s) for s in labelled) for z in zs]
    return int(zs[int(np.argmax(gaps))])


def effort(way: str, emb: VolumeEmbeddings, ref: np.ndarray, box: float, start: int, cap: int, backbone) -> dict:
    """Label, train, score, add a slice the ``way`` way, until box quality or ``cap`` slices."""
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    labelled, method, curve, seconds = rd.spread(zs, start), None, [], []
    while True:
        clock = time.perf_counter()
        model = FewShot(backbone)
        run_task(model.fit(emb, {z: ref[z].astype(np.uint8) for z in labelled}, start=method))
        seconds.append(time.perf_counter() - clock)
        method = model
        pred = run_task(method.segment(emb)) > 0
        others = [z for z in range(len(ref)) if z not in labelled]
        curve.append(dice(pred[others], ref[others]))
        if curve[-1] >= box or len(labelled) >= cap:
            break
        if way == "spread":
            labelled.append(farthest(zs, labelled))
        else:
            picks = run_task(suggest(method, emb, labelled))
            if not picks:
                break
            labelled.append(picks[0].z)
    reached = len(labelled) if curve[-1] >= box else None
    return {"needed": reached, "curve": curve, "slices": labelled, "train_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--start", type=int, default=3)
    parser.add_argument("--cap", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    rows = []
    for entry in rd.select(args.only):
        case = rd.load_structure(entry, rd.DEFAULT_DATA)
        ref = case.mask
        if np.count_nonzero(ref.any(axis=(1, 2))) < 10 or entry.name.endswith(" HU"):
            continue
        emb = VolumeEmbeddings(case.volume, backbone, case.window, args.cache)
        list(emb.compute(range(len(ref))))
        box = dice(run_task(ZeroShot(backbone).segment(emb, rd.slice_boxes(ref))) > 0, ref)
        row = {"structure": entry.name, "box": box}
        for way in WAYS:
            row[way] = effort(way, emb, ref, box, args.start, args.cap, backbone)
            print(json.dumps({"structure": entry.name, "way": way, **row[way]}), file=sys.stderr, flush=True)
        rows.append(row)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    print(f"| structure | box | {' | '.join(f'{w}: slices needed | {w}: DSC per slice added' for w in WAYS)} |")
    print(f"|---|---|{'---|---|' * len(WAYS)}")
    for r in rows:
        cells = [f"{r[w]['needed'] or f'>{args.cap}'} | {' '.join(f'{d:.3f}' for d in r[w]['curve'])}" for w in WAYS]
        print(f"| {r['structure']} | {r['box']:.3f} | {' | '.join(cells)} |")
    for w in WAYS:  # never reached counts as cap + 1
        needed = [r[w]["needed"] or args.cap + 1 for r in rows]
        print(f"- {w}: mean labelled slices to box quality {np.mean(needed):.2f} (never reached counted as "
              f"{args.cap + 1}); reached on {sum(r[w]['needed'] is not None for r in rows)} of {len(rows)}")


if __name__ == "__main__":
    main()

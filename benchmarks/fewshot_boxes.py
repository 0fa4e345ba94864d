"""Few-shot regions as the decoder draws them, redrawn from their boxes, and the model's own choice, per structure.

    PYTHONPATH=src python benchmarks/fewshot_boxes.py [--data DIR] [--cache DIR] [--only SUBSTRING ...] [--json OUT]

On each structure of `realdata.MANIFEST` of at least 5 slices (cropped as there), `FewShot.fit` at its defaults
on 5 spread slices; then, from that one training, the DSC on the unlabelled slices of: every slice's regions as
the decoder predicts them (``regions``), the same regions redrawn by the pretrained decoder from their boxes
(``boxes``, `FewShot.redraw`) and what `FewShot.segment` gives (``chosen``: the one of the two that matched the
labelled slices better, ``boxes?`` says which). ``box`` is the reference's box on every slice. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import dice  # noqa: E402
from napari_samed.methods import FewShot, ZeroShot, run_task  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402

COLUMNS = ("box", "regions", "boxes", "chosen")


def run_structure(entry: rd.Entry, backbone, root: Path, cache: Path) -> dict | None:
    case = rd.load_structure(entry, root)
    ref = case.mask
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    if len(zs) < rd.SHOTS:
        return None
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    list(emb.compute(range(len(ref))))
    shots = rd.spread(zs)
    method = FewShot(backbone)
    run_task(method.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}, seed=0))
    regions = np.stack([method.predict_slice(emb.get(z), emb.slice_shape) for z in range(len(ref))])
    boxes = np.stack([method.redraw(emb, z, plane) for z, plane in enumerate(regions)])
    chosen = boxes if method.boxes else regions
    others = [z for z in range(len(ref)) if z not in shots]
    row = {"structure": entry.name, "slices": len(zs), "uses boxes": method.boxes,
           "box": dice(run_task(ZeroShot(backbone).segment(emb, rd.slice_boxes(ref))) > 0, ref)}
    row.update({name: dice(pred[others] > 0, ref[others]) for name, pred in
                (("regions", regions), ("boxes", boxes), ("chosen", chosen))})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=rd.DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    rows = [row for entry in rd.select(args.only) if (row := run_structure(entry, backbone, args.data, args.cache))]
    print(f"| structure | slices | {' | '.join(COLUMNS)} | boxes? |\n|---|---|{'---|' * (len(COLUMNS) + 1)}")
    for r in rows:
        print(f"| {r['structure']} | {r['slices']} | {' | '.join(f'{r[c]:.3f}' for c in COLUMNS)} "
              f"| {'yes' if r['uses boxes'] else 'no'} |")
    for label, chosen in (("all", rows), (">= 10 slices", [r for r in rows if r["slices"] >= 10])):
        means = " | ".join(f"{np.mean([r[c] for r in chosen]):.3f}" for c in COLUMNS)
        print(f"| **mean, {label}** ({len(chosen)}) | | {means} | {sum(r['uses boxes'] for r in chosen)} yes |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

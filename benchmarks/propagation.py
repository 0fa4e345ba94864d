"""Propagation stop rules on the real-data structures: which of the model's signals tell where an object ends.

    PYTHONPATH=src python benchmarks/propagation.py --record /tmp/propagation.json [--only SUBSTRING ...]
    PYTHONPATH=src python benchmarks/propagation.py --replay /tmp/propagation.json

``--record``: for every structure of `realdata.MANIFEST` (crop ± 10 slices, default model and precision), the
object's mask on its largest slice from one click at the deepest point (``click``) and from the reference's
box there (``box``) is propagated up and down with no stop but an empty mask (`UNTIL_EMPTY`), and every
slice's `SliceQuality` is stored with the reference's pixels and the intersection on that slice.

``--replay``: replays candidate `StopRule`s on the recording (a rule cuts each direction at its first failing
slice, exactly as `propagate` would) and prints, per rule, the mean volume DSC over the structures of at least
10 slices, the smallest ratio to the box start, and the largest overrun (slices kept past the reference's
extent), for both starts. The rule with the best mean click DSC whose overrun is at most 2 slices wins.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import mask_bbox  # noqa: E402
from napari_samed.methods import ZeroShot  # noqa: E402
from napari_samed.methods.propagation import DEFAULT_STOP, UNTIL_EMPTY, SliceQuality, StopRule, propagate  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402


def record(entry: rd.Entry, backbone, cache: Path) -> dict:
    case = rd.load_structure(entry, rd.DEFAULT_DATA, 10)
    ref = case.mask
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    list(emb.compute(range(len(ref))))
    largest = int(ref.sum(axis=(1, 2)).argmax())
    zero = ZeroShot(backbone)
    starts = {"click": zero.segment_slice(emb, rd.deepest_click(ref[largest], largest)),
              "box": zero.segment_boxes(emb, largest, [mask_bbox(ref[largest])])[0]}
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    row = {"structure": entry.name, "extent": [int(zs[0]), int(zs[-1])], "ref_voxels": int(ref.sum()),
           "ref_slices": len(zs), "z": largest}
    for name, mask in starts.items():
        slices = [{"z": largest, "area": int(mask.sum()), "hit": int((mask & ref[largest]).sum()),
                   "ref": int(ref[largest].sum())}]
        run = propagate(backbone, emb, largest, mask, (0, len(ref) - 1), rule=UNTIL_EMPTY)
        for step in run:
            slices.append({"z": step.z, "hit": int((step.mask & ref[step.z]).sum()), "ref": int(ref[step.z].sum()),
                           **asdict(step.quality)})
        row[name] = slices
    return row


def replay(row: dict, start: str, rule: StopRule) -> tuple[float, int, float]:
    """Volume DSC, overrun (slices past the reference's extent) and the part of the reference's slices whose area
    the result matches within [0.67, 1.5] (`realdata.AREA_BAND`) of ``rule`` on a recorded propagation."""
    first, *rest = row[start]
    kept = [first]
    for step in (1, -1):
        for s in sorted((s for s in rest if (s["z"] - first["z"]) * step > 0), key=lambda s: abs(s["z"] - first["z"])):
            q = SliceQuality(s["iou"], s["stability"], s["area"], s["area"] / first["area"], s["shift"],
                             s["similarity"], s["similarity_prev"], s["looks"])
            if rule.failure(q):
                break
            kept.append(s)
    hit, area = sum(s["hit"] for s in kept), sum(s["area"] for s in kept)
    zs = [s["z"] for s in kept if s["area"]]
    lo, hi = row["extent"]
    over = max(lo - min(zs), max(zs) - hi, 0)
    low, high = rd.AREA_BAND
    band = sum(low <= s["area"] / s["ref"] <= high for s in kept if s["ref"]) / row["ref_slices"]
    return 2 * hit / (area + row["ref_voxels"]), over, band


def candidates() -> list[StopRule]:
    grid = itertools.product((0.0, 0.5, 0.6), (0.0, 0.6), (float("inf"), 3.0, 2.0, 1.5), (float("inf"), 1.0, 0.75),
                             (-1.0, 0.4, 0.5, 0.6), (-1.0, 0.8, 0.85), (0.0, 0.3, 0.4, 0.5, 0.6))
    return [StopRule(*values) for values in grid]


def main() -> None:
    parser = rd.recording_parser(__doc__)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    if args.record:
        backbone = load_backbone("lite-medsam", device="cpu")
        rows = []
        for entry in rd.select(args.only):
            rows.append(record(entry, backbone, args.cache))
            print(rows[-1]["structure"], len(rows[-1]["click"]), len(rows[-1]["box"]), flush=True)
        args.record.write_text(json.dumps(rows))
    if args.replay:
        rows = [r for r in json.loads(args.replay.read_text()) if r["extent"][1] - r["extent"][0] >= 9]
        results = []
        for rule in candidates():
            out = [replay(r, s, rule) for s in ("click", "box") for r in rows]
            click, box = (np.mean([d for d, *_ in out[i * len(rows):(i + 1) * len(rows)]]) for i in (0, 1))
            overs = [o for _, o, _ in out]
            results.append((float(click), float(box), float(np.mean([b for *_, b in out])), float(np.mean(overs)),
                            sum(o > 2 for o in overs), rule))
        print(f"click mean | box mean | area in band | mean overrun | runs over 2 slices (of {2 * len(rows)}) | rule")
        for r in sorted(results, key=lambda r: -(r[0] + r[1]))[:args.top]:
            print(f"{r[0]:.3f} | {r[1]:.3f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]} | {r[5]}")
        best = max(results, key=lambda r: r[0] + r[1])[5]
        for rule in (UNTIL_EMPTY, DEFAULT_STOP, best):
            print(f"per structure, {rule}: click DSC/overrun/band, box DSC/overrun/band")
            for row in rows:
                (cd, co, cb), (bd, bo, bb) = (replay(row, s, rule) for s in ("click", "box"))
                print(f"  {row['structure']}: {cd:.3f}/{co}/{cb:.2f} {bd:.3f}/{bo}/{bb:.2f}")


if __name__ == "__main__":
    main()

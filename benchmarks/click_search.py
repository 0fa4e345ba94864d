"""Click → box search on the real-data structures: which candidate boxes and which choice rule a click needs.

    PYTHONPATH=src python benchmarks/click_search.py --record /tmp/clicks.json [--only SUBSTRING ...]
    PYTHONPATH=src python benchmarks/click_search.py --replay /tmp/clicks.json

``--record``: on the largest slice of every structure of `realdata.MANIFEST` and on 5 slices spread over it
(default model and precision), one positive click at the deepest point of the reference; every candidate box of
`MARGINS` around it is decoded, and for each candidate the decoder's IoU prediction, SAM's stability score, the
sides of the box its mask touches, whether it holds the click, its DSC against the reference on that slice, and
the same for one refinement (its mask's own box grown by 1%) are stored.

``--replay``: scores choice rules on the recording: mean and minimum DSC over the largest slices, and over all
the clicked slices, and the number of decodes each rule needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import box_margin, dice, grow_box, mask_bbox  # noqa: E402
from napari_samed.methods.propagation import stability  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402

MARGINS = (0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.07, 0.085, 0.1, 0.12, 0.145, 0.17, 0.2, 0.24, 0.28,
           0.33)


def _touches(mask: np.ndarray, box) -> int:
    y0, x0, y1, x1 = box
    return int(mask[y0].any()) + int(mask[y1].any()) + int(mask[:, x0].any()) + int(mask[:, x1].any())


def _candidate(backbone, emb, shape, box, click, ref) -> dict:
    out = backbone.decode(emb, shape, boxes=np.array([box]))
    logits = out.logits[0, 0].numpy()
    mask = logits > 0
    return {"box": [int(v) for v in box], "iou": float(out.iou[0, 0]), "stability": stability(logits),
            "area": int(mask.sum()), "touches": _touches(mask, box), "holds": bool(mask[click]),
            "dsc": dice(mask, ref)}, mask


def record(entry: rd.Entry, backbone, cache: Path) -> list[dict]:
    case = rd.load_structure(entry, rd.DEFAULT_DATA, 10)
    ref = case.mask
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    largest = int(ref.sum(axis=(1, 2)).argmax())
    shape = emb.slice_shape
    rows = []
    for i, z in enumerate([largest, *rd.spread(zs)]):
        click = tuple(int(v) for v in rd.deepest_click(ref[z], z).points[0])
        e = emb.get(z)
        cands = []
        for f in MARGINS:
            box = grow_box((*click, *click), max(2, round(f * max(shape))), shape)
            cand, mask = _candidate(backbone, e, shape, box, click, ref[z])
            if mask.any():
                refined, _ = _candidate(backbone, e, shape, grow_box(mask_bbox(mask), box_margin(shape),
                                                                     shape), click, ref[z])
                cand["refined"] = refined
            cands.append(cand)
        rows.append({"structure": entry.name, "z": z, "largest": i == 0, "ref_area": int(ref[z].sum()),
                     "candidates": cands})
    return rows


def _pick(cands: list[dict], margins: tuple[float, ...], score) -> dict:
    chosen = [c for f, c in zip(MARGINS, cands, strict=True) if f in margins]
    ok = [c for c in chosen if c["area"] and c["holds"]] or chosen
    return max(ok, key=score)


RULES = {
    "iou, 9 margins (before)": ((0.015, 0.025, 0.04, 0.06, 0.085, 0.12, 0.17, 0.24, 0.33), lambda c: c["iou"]),
    "iou, all 18": (MARGINS, lambda c: c["iou"]),
    "iou*stability, 9": ((0.015, 0.025, 0.04, 0.06, 0.085, 0.12, 0.17, 0.24, 0.33),
                         lambda c: c["iou"] * c["stability"]),
    "stability, 9": ((0.015, 0.025, 0.04, 0.06, 0.085, 0.12, 0.17, 0.24, 0.33), lambda c: c["stability"]),
    "refined iou, 9": ((0.015, 0.025, 0.04, 0.06, 0.085, 0.12, 0.17, 0.24, 0.33),
                       lambda c: c.get("refined", c)["iou"]),
    "iou, 5 (0.025..0.24)": ((0.025, 0.05, 0.085, 0.145, 0.24), lambda c: c["iou"]),
    "iou, 4 (0.03..0.2)": ((0.03, 0.06, 0.12, 0.2), lambda c: c["iou"]),
    "iou untouched, 9": ((0.015, 0.025, 0.04, 0.06, 0.085, 0.12, 0.17, 0.24, 0.33),
                         lambda c: c["iou"] - 0.1 * c["touches"]),
    "iou untouched, 5": ((0.025, 0.05, 0.085, 0.145, 0.24), lambda c: c["iou"] - 0.1 * c["touches"]),
}


def main() -> None:
    args = rd.recording_parser(__doc__).parse_args()
    if args.record:
        backbone = load_backbone("lite-medsam", device="cpu")
        rows = []
        for entry in rd.select(args.only):
            rows += record(entry, backbone, args.cache)
            print(entry.name, flush=True)
        args.record.write_text(json.dumps(rows))
    if args.replay:
        rows = json.loads(args.replay.read_text())
        oracle = [max(c.get("refined", c)["dsc"] for c in r["candidates"]) for r in rows]
        print(f"oracle (best candidate or its refinement): {np.mean(oracle):.3f}")
        print("rule | largest slices mean / min | all clicked slices mean / min | +refined largest mean / min")
        for name, (margins, score) in RULES.items():
            picks = [_pick(r["candidates"], margins, score) for r in rows]
            big = [p["dsc"] for p, r in zip(picks, rows, strict=True) if r["largest"]]
            ref = [p.get("refined", p)["dsc"] for p, r in zip(picks, rows, strict=True) if r["largest"]]
            every = [p["dsc"] for p in picks]
            print(f"{name} | {np.mean(big):.3f} / {np.min(big):.3f} | {np.mean(every):.3f} / {np.min(every):.3f} | "
                  f"{np.mean(ref):.3f} / {np.min(ref):.3f}")


if __name__ == "__main__":
    main()

"""How far past its labelled slices few-shot may draw a structure (issue 27, item 2: the labelled extent).

    PYTHONPATH=src python benchmarks/fewshot_extent.py --record DIR [--only SUBSTRING ...]
    PYTHONPATH=src python benchmarks/fewshot_extent.py --replay DIR

``--record``: for every structure of `realdata.MANIFEST` of at least 10 slices (crop ± 10 slices, default model
and precision), few-shot is trained at the defaults (seed 0) on 5 slices chosen two ways, and its segmentation
without the labelled-extent rule is stored with the reference (one ``.npz`` per structure and way):

- ``spread``: the real-data benchmark's (`realdata.spread`: over the structure, its first and last slice left out);
- ``middle``: 5 slices spread over the middle 60% of the structure's slices, as a user who labels around the
  middle and leaves its ends to the model.

``--replay``: scores candidate extent rules (`RULES`) on the recordings: the mean DSC on the unlabelled slices
over the structures, for each way of choosing the slices, and per structure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.masks import dice, touching_slices, within_labelled_extent  # noqa: E402
from napari_samed.methods import FewShot, run_task  # noqa: E402
from napari_samed.methods.fewshot import TAPER_GROW, shrinks_toward_ends  # noqa: E402
from napari_samed.models import VolumeEmbeddings, load_backbone  # noqa: E402

MIN_SLICES = 10
MIDDLE = 0.6


def middle(zs: np.ndarray, n: int = rd.SHOTS, fraction: float = MIDDLE) -> list[int]:
    """``n`` slices spread over the middle ``fraction`` of the structure's slices ``zs``."""
    return rd.spread_between(zs, (1 - fraction) / 2 * (len(zs) - 1), (1 + fraction) / 2 * (len(zs) - 1), n)


CHOICES = {"spread": rd.spread, "middle": middle}


def record(entry: rd.Entry, backbone, cache: Path, out: Path) -> None:
    case = rd.load_structure(entry, rd.DEFAULT_DATA, 10)
    ref = case.mask
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    if len(zs) < MIN_SLICES:
        return
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    list(emb.compute(range(len(ref))))
    for way, choose in CHOICES.items():
        shots = choose(zs)
        method = FewShot(backbone)
        run_task(method.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}, seed=0))
        method.within_extent = False
        pred = run_task(method.segment(emb)) > 0
        np.savez_compressed(out / f"{entry.name} - {way}.npz", ref=ref, pred=pred, shots=np.asarray(shots))
        others = [z for z in range(len(ref)) if z not in shots]
        print(json.dumps({"structure": entry.name, "way": way, "shots": shots, "stopped": method.stopped,
                          "fewshot": dice(pred[others], ref[others])}), flush=True)


# -- rules: (prediction, labelled slices, their labels) -> the prediction kept ----------------------------------
def touching(pred: np.ndarray, shots: list[int], labelled: np.ndarray) -> np.ndarray:
    """The rule before: the 3D parts that reach the labelled range."""
    return pred & touching_slices(pred, shots[0], shots[-1])


def bounded(gaps: float) -> Callable:
    """`touching`, then nothing more than ``gaps`` × the largest labelled gap past the first or last labelled slice."""
    def rule(pred, shots, labelled):
        out = touching(pred, shots, labelled)
        reach = int(np.ceil(gaps * max(np.diff(shots), default=1)))
        out[:max(shots[0] - reach, 0)] = False
        out[shots[-1] + reach + 1:] = False
        return out
    return rule


def tapering(grow: float, where_labels_shrink: bool) -> Callable:
    """`masks.within_labelled_extent`: `touching`, then tapering (``grow``) past both labelled ends, or only past
    those toward which the labels shrink (as `FewShot.segment` applies it, every labelled slice holding the
    structure)."""
    def rule(pred, shots, labelled):
        ends = shrinks_toward_ends(labelled.sum(axis=(1, 2))) if where_labels_shrink else (True, True)
        return within_labelled_extent(pred, (shots[0], shots[-1]), ends, grow)
    return rule


RULES = {"none": lambda pred, shots, labelled: pred, "touching (before)": touching,
         "bounded, 1 gap": bounded(1.0), "bounded, 2 gaps": bounded(2.0),
         "tapering 1.2, both ends": tapering(1.2, False), "tapering 1.0, ends where labels shrink": tapering(1.0, True),
         f"tapering {TAPER_GROW}, ends where labels shrink (default)": tapering(TAPER_GROW, True)}


def replay(folder: Path) -> None:
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for path in sorted(folder.glob("*.npz")):
        structure, way = path.stem.rsplit(" - ", 1)
        data = np.load(path)
        ref, pred, shots = data["ref"], data["pred"], [int(z) for z in data["shots"]]
        others = [z for z in range(len(ref)) if z not in shots]
        for name, rule in RULES.items():
            out = rule(pred.copy(), shots, ref[shots])
            scores.setdefault(way, {}).setdefault(name, {})[structure] = dice(out[others], ref[others])
    for way, by_rule in scores.items():
        structures = sorted(next(iter(by_rule.values())))
        print(f"\n{way}: " + " | ".join(f"{n} {np.mean(list(s.values())):.3f}" for n, s in by_rule.items()))
        print("| structure | " + " | ".join(by_rule) + " |")
        for s in structures:
            print(f"| {s} | " + " | ".join(f"{by_rule[n][s]:.3f}" for n in by_rule) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="train and store the segmentations in this folder")
    parser.add_argument("--replay", type=Path, help="score the rules on the recordings in this folder")
    parser.add_argument("--only", nargs="*", default=[], help="record the structures whose name holds one of these")
    parser.add_argument("--cache", type=Path, default=rd.DEFAULT_CACHE)
    args = parser.parse_args()
    if args.record:
        args.record.mkdir(parents=True, exist_ok=True)
        backbone = load_backbone(device="cpu")
        for entry in rd.select(args.only):
            record(entry, backbone, args.cache, args.record)
    if args.replay:
        replay(args.replay)


if __name__ == "__main__":
    main()

"""ProMISe on real tumours: train on BraTS patients, pick the best epoch on one, test one click on another.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/promise_brats.py --seed 0 --checkpoint NEW.ckpt \
        [--structure whole|enhancing] [--fold K | --train 0002 0003 0005 --val 0006 --test 0004] [--epochs 20]
        [--crops 10] [--zero-shot] [--json OUT.json]

The whole tumour (labels 1-4) on FLAIR or the enhancing tumour (label 4) on T1c; the CPU configuration
(LiteMedSAM, `config.CPU`), window ``auto``. The split is by patient: ``--fold K`` (0-4) tests patient K of
`PATIENTS`, validates on patient K + 2 and trains on the other three (fold 2 is issue 16's split). The test click
is the deepest voxel (3D distance transform, mm) of the structure's largest 3D component (26-connected); on the
same click the zero-shot LiteMedSAM click -> 3D propagation (`ObjectPrompt3D`, the default stop rule) and the 3D
box of the whole structure are scored too (``--zero-shot``). DSC is against the whole structure. Prints one JSON
object; ``--json`` appends it to a file. Reads ``../shared/data`` (``SAMED_SHARED_DATA`` overrides).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from napari_samed.io import read_labels, read_volume
from napari_samed.masks import deepest_point, dice, mask_bbox
from napari_samed.methods import BoxPrompt3D, ObjectPrompt3D, Promise, SlicePrompt, ZeroShot, run_task
from napari_samed.methods.promise.grid import GridVolume
from napari_samed.models import VolumeEmbeddings, load_backbone, resolve_window

ROOT = Path(os.environ.get("SAMED_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


PATIENTS = ("0002", "0003", "0004", "0005", "0006")
#: structure: (sequence, label values)
STRUCTURES = {"whole": ("Flair", (1, 2, 3, 4)), "enhancing": ("T1c", (4,))}


def patient(pid: str, structure: str = "whole"):
    """(volume, mask) of one BraTS 2013 patient's ``structure`` (a key of `STRUCTURES`)."""
    sequence, values = STRUCTURES[structure]
    stem = ROOT / "brats2013" / f"brats_2013_pat{pid}_1_"
    volume = read_volume(f"{stem}{sequence}_subtrMeanDivStd.nii.gz")
    return volume, np.isin(read_labels(f"{stem}OTMultiClass.nii.gz").data, values)


def fold_split(fold: int) -> tuple[list[str], list[str], str]:
    """(training, validation, test) patients of ``fold``: test `PATIENTS`[fold], validation the one two after."""
    test, val = PATIENTS[fold], PATIENTS[(fold + 2) % len(PATIENTS)]
    return [p for p in PATIENTS if p not in (test, val)], [val], test


def largest_component_click(mask: np.ndarray, spacing) -> tuple[int, int, int]:
    """The deepest voxel (mm) of ``mask``'s largest 26-connected component: one click on a fragmented structure."""
    parts, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(parts.ravel(), minlength=count + 1)[1:]
    return deepest_point(parts == int(np.argmax(sizes)) + 1, spacing)


def zero_shot_scores(volume, mask, click, cache: Path) -> dict:
    backbone = load_backbone("lite-medsam", device="cpu")
    emb = VolumeEmbeddings(volume, backbone, "auto", cache)
    z, y, x = click
    prompt = ObjectPrompt3D(1, [SlicePrompt(z, 1, points=[(float(y), float(x))], point_labels=[1])])
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    y0, x0, y1, x1 = mask_bbox(mask.any(axis=0))
    box = BoxPrompt3D((int(zs[0]), y0, x0, int(zs[-1]), y1, x1), 1)
    zero = ZeroShot(backbone)
    return {"zero_shot_click3d": dice(run_task(zero.segment(emb, [prompt])) > 0, mask),
            "zero_shot_box3d": dice(run_task(zero.segment(emb, [box])) > 0, mask)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure", choices=sorted(STRUCTURES), default="whole")
    parser.add_argument("--fold", type=int, choices=range(len(PATIENTS)), help="the split of `fold_split`")
    parser.add_argument("--train", nargs="+", default=["0002", "0003", "0005"])
    parser.add_argument("--val", nargs="*", default=["0006"])
    parser.add_argument("--test", default="0004")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--crops", type=int, default=10, help="crops per training patient and epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a new file (an existing one resumes)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "promise-brats-cache")
    parser.add_argument("--zero-shot", action="store_true", help="also score zero-shot click -> 3D and the 3D box")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if args.fold is not None:
        args.train, args.val, args.test = fold_split(args.fold)
    backbone = load_backbone("lite-medsam", device="cpu")
    torch.manual_seed(args.seed)
    method = Promise(backbone)
    cases = [patient(p, args.structure) for p in args.train]
    validation = [patient(p, args.structure) for p in args.val]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = run_task(method.fit(cases, args.epochs, args.checkpoint, "auto", args.crops, args.cache, args.seed,
                                     validation), lambda p: print(p.message, flush=True) if p.loss is None else None)
    seconds = time.perf_counter() - start
    volume, mask = patient(args.test, args.structure)
    click = largest_component_click(mask, volume.spacing)
    grid = GridVolume.build(volume.data, volume.spacing, resolve_window(method.window, volume.data), method.config,
                            backbone, args.cache, mask=mask)
    row = {"structure": args.structure, "fold": args.fold, "seed": args.seed, "train": args.train, "val": args.val,
           "test": args.test, "epochs": args.epochs,
           "crops": args.crops, "steps": len(losses), "train_s": round(seconds), "threads": torch.get_num_threads(),
           "loss_first10": round(float(np.mean(losses[:10])), 3), "loss_last10": round(float(np.mean(losses[-10:])), 3),
           "history": method.history, "click": click,
           "promise_click3d": round(method.one_click_dsc(grid, mask, click), 4),
           "warnings": [str(w.message) for w in caught if "collapsed" in str(w.message)]}
    if args.zero_shot:
        row.update({k: round(v, 4) for k, v in zero_shot_scores(volume, mask, click, args.cache).items()})
    print(json.dumps(row))
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

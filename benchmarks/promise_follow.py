"""ProMISe one click with crops that follow the object against the clicked crop alone, on the BraTS folds.

    PYTHONPATH=src python benchmarks/promise_follow.py --structure enhancing CKPT_FOLD0 ... CKPT_FOLD4 [--json OUT]
        [--folds K ...]

Each checkpoint is the model `promise_brats.py --fold K` trained (K its position in the list, or the matching one
of ``--folds``); its test patient's
structure is segmented from one click at the deepest voxel of its largest component, once with the crops following
the object beyond the clicked crop (`Promise.predict`, the default) and once with the clicked crop alone. Prints
one JSON line per fold: the DSC of both and the seconds each took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import promise_brats as pb  # noqa: E402

from napari_samed.masks import dice  # noqa: E402
from napari_samed.methods import Promise  # noqa: E402
from napari_samed.methods.promise.grid import GridVolume  # noqa: E402
from napari_samed.models import load_backbone, resolve_window  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--structure", choices=sorted(pb.STRUCTURES), default="enhancing")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/promise-brats-cache"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--folds", type=int, nargs="+", help="each checkpoint's fold (default 0, 1, ...)")
    args = parser.parse_args()
    backbone = load_backbone("lite-medsam", device="cpu")
    for fold, path in zip(args.folds or range(len(args.checkpoints)), args.checkpoints, strict=True):
        method = Promise.open(path, backbone=backbone)
        method.model.eval()
        _, _, test = pb.fold_split(fold)
        volume, mask = pb.patient(test, args.structure)
        click = pb.largest_component_click(mask, volume.spacing)
        grid = GridVolume.build(volume.data, volume.spacing, resolve_window(method.window, volume.data),
                                method.config, backbone, args.cache)
        row = {"structure": args.structure, "fold": fold, "test": test, "click": click}
        for follow in (True, False):
            start = time.perf_counter()
            probability = method.predict(grid, grid.to_grid(np.array([click], float)), np.ones(1, np.int64), follow)
            key = "follow" if follow else "one_crop"
            row[key] = round(dice(grid.to_volume(probability), mask), 4)
            row[f"{key}_s"] = round(time.perf_counter() - start, 2)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

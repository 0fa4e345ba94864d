"""ProMISe's paper configuration (SAM ViT-B, 128³ crops at 1 mm) on a CUDA GPU: step time of a short training.

    PYTHONPATH=src python benchmarks/promise_gpu.py [--weights sam_vit_b_01ec64.pth] [--steps 20] [--patient 0004]

Trains ``--steps`` optimiser steps (after 3 warm-up steps that are not timed) on one BraTS 2013 patient's whole
tumour (FLAIR) and prints the mean and median step time, the peak GPU memory and the loss. Without
``--weights`` the ViT-B has random weights: the same cost, no checkpoint needed (nothing is downloaded).
Finishes in a few minutes; it refuses to run without CUDA.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from promise_brats import patient  # benchmarks/ is on the path when run as a script

from napari_samed.methods import Promise, run_task
from napari_samed.methods.promise import PAPER
from napari_samed.models import Backbone, get_spec, load_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="SAM ViT-B checkpoint (default: random weights, same cost)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--patient", default="0004")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("promise_gpu.py needs a CUDA GPU")
    if args.weights:
        backbone = load_backbone("sam-vit-b", args.weights, device="cuda", precision="fp32")
    else:
        spec = get_spec("sam-vit-b")
        backbone = Backbone(spec, spec.build().to("cuda"), "random", torch.device("cuda"))
    torch.manual_seed(0)
    method = Promise(backbone, PAPER)
    times: list[float] = []
    last = [time.perf_counter()]

    def tick(step) -> None:
        if step.loss is not None:
            torch.cuda.synchronize()
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

    case = patient(args.patient)
    losses = run_task(method.fit([case], epochs=1, crops_per_case=args.steps + 3), tick)
    timed = np.array(times[3:])
    print(json.dumps({"device": torch.cuda.get_device_name(), "config": PAPER.describe(), "steps": len(timed),
                      "step_s_mean": round(float(timed.mean()), 3), "step_s_median": round(float(np.median(timed)), 3),
                      "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                      "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)]}))


if __name__ == "__main__":
    main()

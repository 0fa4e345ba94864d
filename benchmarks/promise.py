"""ProMISe on the CPU: one-click lesion DSC before and after a short training, and forward time and memory.

    python benchmarks/promise.py [--train 100 101] [--test 200 201 202 203] [--epochs 20] [--crops 10]
    python benchmarks/promise.py --forward lite-medsam|sam-vit-b [--crop 32]

Phantoms (`make_phantom`, 32×128×128 at 2 mm) with lesions at varying places; the target is the lesion label.
Held-out volumes have one lesion, clicked once at its deepest voxel. `--forward` times one forward pass of the
CPU configuration (LiteMedSAM, cached embeddings) or of ViT-B at a reduced crop (random weights: same cost).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from napari_samed.methods import Promise, SlicePrompt, run_task
from napari_samed.methods.promise import CPU, PAPER, build_model
from napari_samed.models import Backbone, VolumeEmbeddings, get_spec, load_backbone
from napari_samed.phantom import LESION, make_phantom

SHAPE, SPACING = (32, 128, 128), (2.0, 2.0, 2.0)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def one_click_dsc(method: Promise, seeds: list[int], cache: Path) -> list[float]:
    out = []
    for seed in seeds:
        volume, labels = make_phantom(seed, SHAPE, SPACING, n_lesions=1)
        lesion = labels == LESION
        z, y, x = np.unravel_index(ndimage.distance_transform_edt(lesion).argmax(), lesion.shape)
        click = SlicePrompt(int(z), 1, points=[(float(y), float(x))], point_labels=[1])
        emb = VolumeEmbeddings(volume, method.backbone, method.window, cache)
        out.append(_dice(run_task(method.segment(emb, [click], spacing=SPACING)) > 0, lesion))
    return out


def forward(backbone_name: str, crop: int) -> None:
    if backbone_name == "lite-medsam":
        backbone = load_backbone("lite-medsam", device="cpu")
        config = replace(CPU, crop=crop)
        inputs = (torch.rand(1, 1, crop, crop, crop), torch.zeros(1, 1, 3), torch.ones(1, 1),
                  torch.randn(1, 256, crop, crop // 2, crop // 2))
    else:
        spec = get_spec(backbone_name)
        backbone = Backbone(spec, spec.build(), "random", "cpu")
        config = replace(PAPER, backbone=backbone_name, crop=crop)
        inputs = (torch.rand(1, 1, crop, crop, crop), torch.zeros(1, 1, 3), torch.ones(1, 1))
    model = build_model(backbone, config).eval()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"| {config.describe()} | {min(times):.2f} | {peak / 2**20:.2f} | {(peak - before) / 2**20:.2f} "
          f"| {trainable / 1e6:.2f} M |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--test", type=int, nargs="+", default=[200, 201, 202, 203])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--crops", type=int, default=10, help="crops per training case and epoch")
    parser.add_argument("--crop", type=int, default=CPU.crop)
    parser.add_argument("--forward", choices=["lite-medsam", "sam-vit-b"])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "promise-bench-cache")
    parser.add_argument("--checkpoint", type=Path, default=Path(tempfile.gettempdir()) / "promise-bench.ckpt",
                        help="written after every epoch; an existing one resumes, so name a new file for a new run")
    parser.add_argument("--seed", type=int, default=0, help="seeds the network's initialisation and the training")
    args = parser.parse_args()
    if args.forward:
        print("| configuration | forward, s | peak RSS, GiB | RSS growth, GiB | trainable |")
        print("|---|---|---|---|---|")
        forward(args.forward, args.crop)
        return
    backbone = load_backbone("lite-medsam", device="cpu")
    torch.manual_seed(args.seed)
    method = Promise(backbone, replace(CPU, crop=args.crop))
    method.window = "ct"
    before = one_click_dsc(method, args.test, args.cache)
    cases = []
    for seed in args.train:
        volume, labels = make_phantom(seed, SHAPE, SPACING)
        cases.append((volume, labels == LESION))
    start = time.perf_counter()
    losses = run_task(method.fit(cases, args.epochs, args.checkpoint, "ct", args.crops, args.cache, args.seed),
                      lambda p: print(p.message, flush=True) if p.loss is not None and p.done % 10 == 0 else None)
    train = time.perf_counter() - start
    after = one_click_dsc(method, args.test, args.cache)
    print(f"| training | {len(losses)} steps ({args.epochs} epochs × {len(cases)} cases × {args.crops} crops) "
          f"| {train:.0f} s | loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f} |")
    print("| held-out volume | DSC before training | DSC after |")
    print("|---|---|---|")
    for seed, b, a in zip(args.test, before, after, strict=True):
        print(f"| phantom {seed} | {b:.3f} | {a:.3f} |")
    print(f"| mean | {np.mean(before):.3f} | {np.mean(after):.3f} |")


if __name__ == "__main__":
    main()

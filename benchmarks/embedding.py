"""Encoder speed and accuracy: fp32 against the default (or a chosen) precision, alternating in one process.

    python benchmarks/embedding.py [--device cpu] [--precision auto] [--repeats 7] [--data DIR] [--no-dsc]

Timed: ``Backbone.encode`` of one real DeepLesion slice (512², resized to the 256² model input; the phantom when
the data is absent), the path before the inference copy (the model's own fp32 encoder), the fp32 path
(``--precision fp32``) and the fast path called in turn, median over ``--repeats`` rounds after a
warm-up. Errors of the fast embeddings against fp32 over those slices: relative (‖e − e32‖ / ‖e32‖) and largest
absolute. Then a whole volume through the embedding cache (slices per second), the zero-shot DSC with the
ground-truth box on every lesion slice of the six DeepLesion cases for both paths (window 0-255), the prompt
latencies on a cached slice and the model load times. Prints markdown for docs/benchmarks.md. The data folder
is ``$SAMED_SHARED_DATA/deeplesion`` (default ``../shared/data/deeplesion`` beside the repository).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from napari_samed import read_volume
from napari_samed.masks import mask_bbox
from napari_samed.methods import ZeroShot, group_prompts, run_task
from napari_samed.methods.clicks import click_to_mask
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.models.preprocess import to_model_input
from napari_samed.phantom import make_phantom

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SAMED_SHARED_DATA", ROOT.parent / "shared" / "data")) / "deeplesion"


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Unfused:
    """The encoder path before the inference copy: the model's own fp32 encoder, BatchNorm unfolded."""

    def __init__(self, backbone):
        self.backbone = backbone

    @torch.inference_mode()
    def encode(self, slices: np.ndarray, window) -> torch.Tensor:
        spec = self.backbone.spec
        x = to_model_input(slices, window, spec.image_size, spec.normalize).to(self.backbone.device)
        return self.backbone.image_encoder(x).float().cpu()


def _cases(folder: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, uint8 volume, lesion mask) of each DeepLesion case."""
    out = []
    for image in sorted(folder.glob("CT_Lesion_*_img_uint8.nii.gz")):
        gt = read_volume(str(image).replace("_img_uint8", "_label")).data > 0
        out.append((image.name[10:].removesuffix("_img_uint8.nii.gz"), read_volume(image).data, gt))
    return out


def alternate(backbones: dict, slices: np.ndarray, window, repeats: int) -> dict[str, list[float]]:
    """Seconds per ``encode`` call of one slice, the backbones called in turn, after one warm-up call each."""
    times = {name: [] for name in backbones}
    for backbone in backbones.values():
        backbone.encode(slices[:1], window)
    for r in range(repeats):
        x = slices[r % len(slices):r % len(slices) + 1]
        for name, backbone in backbones.items():
            start = time.perf_counter()
            backbone.encode(x, window)
            times[name].append(time.perf_counter() - start)
    return times


def box_dsc(backbone, cases) -> list[float]:
    """Volume DSC per case with the ground-truth box on every lesion slice (embeddings in memory only)."""
    scores = []
    for _, volume, gt in cases:
        boxes = [(z, *mask_bbox(gt[z])) for z in range(len(gt)) if gt[z].any()]
        emb = VolumeEmbeddings(volume, backbone, "0,255", cache_dir=False)
        labels = run_task(ZeroShot(backbone).segment(emb, group_prompts(boxes=boxes))) > 0
        scores.append(2 * np.count_nonzero(labels & gt) / max(np.count_nonzero(labels) + np.count_nonzero(gt), 1))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="the fast path's precision (default auto)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds of the alternating encoder timing")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-dsc", action="store_true", help="skip the DeepLesion DSC (the slowest part)")
    args = parser.parse_args()
    load0 = os.getloadavg()
    started = datetime.now()

    times = {}
    start = time.perf_counter()
    fast = load_backbone("lite-medsam", device=args.device, precision=args.precision)
    times["first model load"] = time.perf_counter() - start
    times["the same model loaded again (shared)"] = _median_seconds(
        lambda: load_backbone("lite-medsam", device=args.device, precision=args.precision), 3)
    start = time.perf_counter()
    exact = load_backbone("lite-medsam", device=args.device, precision="fp32")
    times["the model at another precision (the loaded model reused)"] = time.perf_counter() - start
    paths = {"fp32": exact, f"{fast.precision} ({args.precision})": fast}

    cases = _cases(args.data) if args.data.is_dir() else []
    if cases:
        slices = np.stack([v[int(g.sum(axis=(1, 2)).argmax())] for _, v, g in cases])
        source, window = f"the largest lesion slice of each DeepLesion case ({slices.shape[1]}²)", (0.0, 255.0)
    else:
        volume, _ = make_phantom(0)
        slices, source, window = volume.data[20:44:4], "phantom slices (DeepLesion not found)", (-160.0, 240.0)
    timed = alternate({"fp32, unfolded (before)": Unfused(exact), **paths}, slices, window, args.repeats)
    ref = exact.encode(slices, window)
    emb = torch.cat([fast.encode(slices[i:i + 1], window) for i in range(len(slices))])
    rel, worst = float((emb - ref).norm() / ref.norm()), float((emb - ref).abs().max())

    volume, labels = make_phantom(0)
    with tempfile.TemporaryDirectory() as cache:
        whole = VolumeEmbeddings(volume.data[:24], fast, "ct", cache)
        start = time.perf_counter()
        for _ in whole.compute(first=12):
            pass
        volume_rate = 24 / (time.perf_counter() - start)
        emb = VolumeEmbeddings(volume.data[30:33], fast, "ct", cache)
        organ = labels[31] > 0
        emb.get(1)
        zero_shot = ZeroShot(fast)
        box = (1, *mask_bbox(organ))
        times["one box → mask on a cached 256² slice"] = _median_seconds(
            lambda: run_task(zero_shot.segment(emb, group_prompts(boxes=[box]))), 20)
        ys, xs = np.nonzero(organ)
        click = np.array([[ys.mean(), xs.mean()]])
        times["one click → mask on a cached slice (box-only model: candidate boxes + refinement)"] = _median_seconds(
            lambda: click_to_mask(fast, emb.get(1), organ.shape, click, np.zeros((0, 2))), 20)

    dsc = {name: box_dsc(b, cases) for name, b in paths.items()} if cases and not args.no_dsc else {}
    load1 = os.getloadavg()

    print(f"`python benchmarks/embedding.py --device {args.device} --precision {args.precision}`, "
          f"{started:%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {load0[0]:.2f} before, {load1[0]:.2f} after\n")
    m32 = statistics.median(timed["fp32"])
    print(f"Encoder, one slice per call ({source}), {args.repeats} rounds alternating:\n")
    print("| path | s/slice (median) | ratio to fp32 | slices/s | all calls (s) |\n|---|---|---|---|---|")
    for name, values in timed.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {med / m32:.2f} | {1 / med:.2f} | {' '.join(f'{v:.2f}' for v in values)} |")
    print(f"\nEmbedding error of {fast.precision} against fp32 over those {len(slices)} slices: relative {rel:.4f}, "
          f"largest absolute {worst:.3f}.\n")
    print(f"Whole volume through the disk cache ({fast.precision}, 24 phantom slices of 256², from the middle "
          f"outward): {volume_rate:.2f} slices/s.\n")
    if dsc:
        print("Zero-shot DSC, ground-truth box on every lesion slice:\n")
        print("| path | " + " | ".join(name for name, _, _ in cases) + " | mean | max abs difference to fp32 |")
        print("|---" * (len(cases) + 3) + "|")
        for name, values in dsc.items():
            diff = max(abs(a - b) for a, b in zip(values, dsc["fp32"], strict=True))
            print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {np.mean(values):.4f} | {diff:.4f} |")
        print()
    print("| what | seconds |\n|---|---|")
    for what, seconds in times.items():
        print(f"| {what} | {seconds:.3f} |")


if __name__ == "__main__":
    main()

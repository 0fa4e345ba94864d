"""Few-shot decoder on the CPU: training time (embeddings cached) and segmentation time per slice, and accuracy.

    python benchmarks/fewshot.py [--data ../shared/data/deeplesion] [--precision auto] [--seeds 0]

Sample volume: 5 labelled organ slices, DSC on the other 59. DeepLesion: for each case, 3 labelled lesion slices
(spread over the lesion's slices as in checks/cli_contract.sh), DSC on the other slices. With several
``--seeds`` (of `FewShot.fit`), times and DSC are means over them and the DSC column lists each. Prints markdown.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_samed import read_volume
from napari_samed.methods import FewShot, run_task
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.phantom import make_phantom


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _run(backbone, embeddings: VolumeEmbeddings, truth: np.ndarray, shots: list[int],
         presence: float | None, seeds: list[int]) -> tuple[float, float, list[float]]:
    """(training seconds, segmentation seconds per slice, DSC on the unlabelled slices per seed)."""
    runs = [_run_seed(backbone, embeddings, truth, shots, presence, seed) for seed in seeds]
    return float(np.mean([r[0] for r in runs])), float(np.mean([r[1] for r in runs])), [r[2] for r in runs]


def _run_seed(backbone, embeddings, truth, shots, presence, seed) -> tuple[float, float, float]:
    list(embeddings.compute())  # embedding is not part of the timings
    method = FewShot(backbone)
    if presence is not None:
        method.presence = presence
    start = time.perf_counter()
    run_task(method.fit(embeddings, {z: truth[z].astype(np.uint8) for z in shots}, seed=seed))
    train = time.perf_counter() - start
    start = time.perf_counter()
    pred = run_task(method.segment(embeddings))
    per_slice = (time.perf_counter() - start) / len(pred)
    others = [z for z in range(len(truth)) if z not in shots]
    return train, per_slice, _dice(pred[others] > 0, truth[others])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/deeplesion")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "napari-samed-bench")
    parser.add_argument("--presence", type=float, help="presence threshold (default: the method's; 0 turns it off)")
    parser.add_argument("--precision", default="auto", help="encoder precision (default auto)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the training (default 0)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    backbone = load_backbone(device="cpu", precision=args.precision)
    volume, labels = make_phantom(0)
    rows = [("sample organ, 5 shots", *_run(backbone, VolumeEmbeddings(volume, backbone, "ct", args.cache),
                                             labels > 0, [16, 24, 32, 40, 48], args.presence, seeds))]
    for image in sorted(args.data.glob("CT_Lesion_*_img_uint8.nii.gz")):
        truth = read_volume(str(image).replace("_img_uint8", "_label")).data > 0
        zs = np.flatnonzero(truth.any(axis=(1, 2)))
        shots = [int(zs[int(round(i))]) for i in np.linspace(1, len(zs) - 2, 3)]
        emb = VolumeEmbeddings(read_volume(image), backbone, "auto", args.cache)
        rows.append((f"{image.name[:30]}, 3 shots {shots}", *_run(backbone, emb, truth, shots, args.presence, seeds)))

    print(f"precision {backbone.precision}, seeds {seeds}\n")
    print("| case | training, s (50 iterations) | segmentation, s per slice | DSC, unlabelled slices |")
    print("|---|---|---|---|")
    for name, train, per_slice, dsc in rows:
        each = f" ({', '.join(f'{d:.3f}' for d in dsc)})" if len(dsc) > 1 else ""
        print(f"| {name} | {train:.1f} | {per_slice:.3f} | {np.mean(dsc):.3f}{each} |")
    print(f"| mean of the DeepLesion cases | | | {np.mean([np.mean(r[3]) for r in rows[1:]]):.3f} |")


if __name__ == "__main__":
    main()

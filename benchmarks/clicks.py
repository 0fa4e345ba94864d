"""Zero-shot accuracy of one click against one ground-truth box, per slice, with the bundled LiteMedSAM.

    python benchmarks/clicks.py [--data ../shared/data/deeplesion]

Cases: the sample organ on five slices, the sample lesion, and the largest lesion slice of each DeepLesion
case. The click is the deepest point of the reference mask (distance transform). Prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_samed import read_volume
from napari_samed.masks import mask_bbox
from napari_samed.methods.clicks import click_to_mask
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.phantom import LESION, make_phantom


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/deeplesion")
    parser.add_argument("--cache", type=Path, help="embedding cache folder")
    args = parser.parse_args()
    backbone = load_backbone(device="cpu")
    volume, labels = make_phantom(0)
    sample = VolumeEmbeddings(volume, backbone, "ct", args.cache)
    cases = [("sample organ", sample, z, labels[z] > 0) for z in (20, 26, 32, 38, 44)]
    cases += [("sample lesion", sample, z, labels[z] == LESION) for z in (28, 31, 34)]
    for image in sorted(args.data.glob("CT_Lesion_*_img_uint8.nii.gz")):
        gt = read_volume(str(image).replace("_img_uint8", "_label")).data > 0
        emb = VolumeEmbeddings(read_volume(image), backbone, "0,255", args.cache)
        z = int(gt.sum(axis=(1, 2)).argmax())
        cases.append(("DeepLesion lesion", emb, z, gt[z]))

    scores: dict[str, list[tuple[float, float]]] = {}
    for kind, emb, z, ref in cases:
        dist = ndimage.distance_transform_edt(ref)
        click = np.array([np.unravel_index(int(dist.argmax()), ref.shape)], dtype=float)
        by_click = click_to_mask(backbone, emb.get(z), ref.shape, click, np.zeros((0, 2)))
        by_box = backbone.decode(emb.get(z), ref.shape, boxes=np.array([mask_bbox(ref)])).masks()[0, 0]
        scores.setdefault(kind, []).append((_dice(by_click, ref), _dice(by_box, ref)))

    print("| structure | slices | DSC one click (mean, min) | DSC ground-truth box (mean) |\n|---|---|---|---|")
    for kind, values in scores.items():
        a = np.array(values)
        print(f"| {kind} | {len(a)} | {a[:, 0].mean():.3f}, {a[:, 0].min():.3f} | {a[:, 1].mean():.3f} |")


if __name__ == "__main__":
    main()

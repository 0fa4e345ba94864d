"""The sample CT volume (a deterministic phantom, `phantom.make_phantom`) as files and as a napari sample."""

from __future__ import annotations

import os
from pathlib import Path

from .io import write_labels, write_volume
from .phantom import make_phantom

SAMPLE_IMAGE = "sample_ct.nii.gz"
SAMPLE_LABELS = "sample_ct_labels.nii.gz"


def write_sample(folder: str | os.PathLike = "sample_data", seed: int = 0) -> list[Path]:
    """Write the sample image (HU, int16) and its labels (1 organ, 2 lesion) as NIfTI into ``folder``."""
    folder = Path(folder)
    volume, labels = make_phantom(seed)
    return [write_volume(volume.data, folder / SAMPLE_IMAGE, volume),
            write_labels(labels, folder / SAMPLE_LABELS, volume)]


def napari_sample() -> list[tuple]:
    """napari sample provider: the CT image and its organ/lesion labels, scaled by the voxel spacing."""
    volume, labels = make_phantom(0)
    meta = {"spacing": volume.spacing, "affine": volume.affine}
    return [
        (volume.data, {"name": "sample CT", "scale": volume.spacing, "contrast_limits": (-160, 240),
                       "metadata": meta}, "image"),
        (labels, {"name": "sample CT reference", "scale": volume.spacing, "metadata": meta}, "labels"),
    ]

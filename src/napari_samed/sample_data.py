"""The sample CT volume (a deterministic phantom, `phantom.make_phantom`) written as NIfTI files."""

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


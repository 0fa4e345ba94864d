"""The sample CT volume and sample training datasets (deterministic phantoms, `phantom.make_phantom`) as NIfTI."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .io import write_labels, write_volume
from .phantom import LESION, ORGAN, make_phantom

SAMPLE_IMAGE = "sample_ct.nii.gz"
SAMPLE_LABELS = "sample_ct_labels.nii.gz"


def write_sample(folder: str | os.PathLike = "sample_data", seed: int = 0) -> list[Path]:
    """Write the sample image (HU, int16) and its labels (1 organ, 2 lesion) as NIfTI into ``folder``."""
    folder = Path(folder)
    volume, labels = make_phantom(seed)
    return [write_volume(volume.data, folder / SAMPLE_IMAGE, volume),
            write_labels(labels, folder / SAMPLE_LABELS, volume)]



def write_sample_dataset(folder: str | os.PathLike, cases: int = 7, seed: int = 1,
                         shape: tuple[int, int, int] = (24, 256, 256),
                         spacing: tuple[float, float, float] = (5.0, 1.0, 1.0)) -> Path:
    """An MSD-style training folder of ``cases`` phantoms (seeds ``seed``, ``seed + 1``, ...): ``imagesTr/``,
    ``labelsTr/`` and ``dataset.json`` (labels 1 organ, 2 lesion). Returns the folder."""
    folder = Path(folder)
    training = []
    for i in range(cases):
        volume, labels = make_phantom(seed + i, shape, spacing)
        name = f"phantom_{seed + i:03d}.nii.gz"
        write_volume(volume.data, folder / "imagesTr" / name, volume)
        write_labels(labels, folder / "labelsTr" / name, volume)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "napari-samed phantoms", "modality": {"0": "CT"},
            "labels": {"0": "background", str(ORGAN): "organ", str(LESION): "lesion"},
            "numTraining": cases, "training": training}
    (folder / "dataset.json").write_text(json.dumps(meta, indent=1))
    return folder

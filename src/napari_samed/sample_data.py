"""Sample volumes with reference labels: the synthetic CT (deterministic phantom, `phantom.make_phantom`) and a real
chest CT shipped in the package (``samples/``, TotalSegmentator's test files, Apache-2.0), and MSD-style training
folders of phantoms."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .io import Volume, read_labels, read_volume, write_labels, write_volume
from .phantom import LESION, ORGAN, make_phantom

SAMPLES_DIR = Path(__file__).parent / "samples"


@dataclass(frozen=True)
class Sample:
    """A volume with reference labels, as napari's File › Open Sample, ``napari-samed demo --sample`` and the
    widgets' demo show it."""

    title: str  #: its layer's name; the reference is "<title> reference"
    stem: str  #: file names: ``<stem>.nii.gz``, ``<stem>_labels.nii.gz``
    names: dict[int, str]  #: label value → name
    target: tuple[int, ...]  #: the demo's object: these labels together
    contrast: tuple[float, float]  #: the image layer's contrast limits (HU)
    about: str  #: what it is, for the demo report
    load: Callable[[], tuple[Volume, np.ndarray]]

    @property
    def files(self) -> tuple[str, str]:
        return f"{self.stem}.nii.gz", f"{self.stem}_labels.nii.gz"

    def write(self, folder: str | os.PathLike, loaded: tuple[Volume, np.ndarray] | None = None) -> list[Path]:
        """Write the image and its labels (``loaded`` when the caller has them already) as NIfTI into ``folder``."""
        volume, labels = loaded or self.load()
        image, labels_file = (Path(folder) / name for name in self.files)
        return [write_volume(volume.data, image, volume), write_labels(labels, labels_file, volume)]


def _chest_ct() -> tuple[Volume, np.ndarray]:
    return read_volume(SAMPLES_DIR / "chest_ct.nii.gz"), read_labels(SAMPLES_DIR / "chest_ct_labels.nii.gz").data


#: The samples by the name ``napari-samed demo --sample`` takes.
SAMPLES = {
    "synthetic": Sample("sample CT", "sample_ct", {ORGAN: "organ", LESION: "lesion"}, (ORGAN, LESION), (-160, 240),
                        "The synthetic sample volume (`napari-samed sample`); the object is the organ with its lesion "
                        "(reference labels 1 and 2 together).", lambda: make_phantom(0)),
    "chest-ct": Sample("chest CT", "chest_ct", {1: "aorta", 2: "T12 vertebra"}, (1,), (-160, 340),
                       "A real contrast-enhanced chest CT (TotalSegmentator's test files, Apache-2.0); the object is "
                       "the thoracic aorta (reference label 1: TotalSegmentator's own output, not a manual "
                       "delineation).", _chest_ct),
}


def write_sample(folder: str | os.PathLike = "sample_data", seed: int = 0) -> list[Path]:
    """Write the synthetic sample image (HU, int16) of phantom ``seed`` and its labels (1 organ, 2 lesion) as NIfTI
    into ``folder``."""
    return replace(SAMPLES["synthetic"], load=lambda: make_phantom(seed)).write(folder)


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

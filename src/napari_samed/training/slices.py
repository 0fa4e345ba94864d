"""2D training slices from labelled volumes: cached image embeddings and structure masks, split by volume."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import SamedError
from ..models.backbone import Backbone
from ..models.cache import VolumeEmbeddings
from ..models.preprocess import shared_rule, window_to_uint8_range
from ..tasks import Progress, Task
from .datasets import SPLITS, Dataset, Structure, split_indices


@dataclass
class TrainingSlice:
    """One slice: its (256, 64, 64) fp16 embedding, one mask (H, W) per structure (empty where absent) and the
    windowed image (uint8, for figures)."""

    case: str
    z: int
    embedding: torch.Tensor
    masks: np.ndarray
    spacing: tuple[float, float]
    image: np.ndarray

    def present(self) -> list[int]:
        """Indices of the structures on this slice."""
        return [i for i, m in enumerate(self.masks) if m.any()]


@dataclass
class SliceSplits:
    """Train/val/test slices and how they were split (``note`` says when slices of one volume were mixed)."""

    structures: list[Structure]
    train: list[TrainingSlice] = field(default_factory=list)
    val: list[TrainingSlice] = field(default_factory=list)
    test: list[TrainingSlice] = field(default_factory=list)
    note: str = ""
    window: str | tuple = "auto"  # the window rule of the training volumes (`shared_rule`)

    def summary(self) -> str:
        counts = ", ".join(f"{len(getattr(self, s))} {s}" for s in SPLITS)
        return f"{counts} slices" + (f" ({self.note})" if self.note else "")


def load_slices(dataset: Dataset, structures: Sequence[Structure], backbone: Backbone,
                window: str | tuple = "auto", cache_dir: str | os.PathLike | None | bool = None,
                seed: int = 0) -> Task[SliceSplits]:
    """Task: embed every slice holding at least one structure and split them 70/15/15.

    With three volumes or more the split is by volume (no volume contributes to two splits); with fewer, by
    slice, which the result's ``note`` says. The embeddings are held in memory (2 MB per slice).
    """
    dataset.check_structures(structures)
    cases = dataset.cases
    by_volume = len(cases) >= 3
    case_split = split_indices(len(cases), seed) if by_volume else {"train": list(range(len(cases)))}
    split_of = {i: s for s, idx in case_split.items() for i in idx}
    slices: list[tuple[str, TrainingSlice]] = []
    found = np.zeros(len(structures), bool)
    rules = []
    for i, case in enumerate(cases):
        yield Progress(i, len(cases), f"reading {case.name}")
        volume, labels = case.load()
        masks = np.stack([s.mask(labels) for s in structures], axis=1)  # (z, S, y, x)
        found |= masks.any(axis=(0, 2, 3))
        zs = np.flatnonzero(masks.any(axis=(1, 2, 3))).tolist()
        embeddings = VolumeEmbeddings(volume, backbone, window, cache_dir)
        rules.append(embeddings.window_rule)
        for done, total in embeddings.compute(zs):
            yield Progress(i, len(cases), f"embedding {case.name}: slice {done}/{total}")
        for z in zs:
            image = window_to_uint8_range(volume.data[z], embeddings.window).astype(np.uint8)
            sample = TrainingSlice(case.name, z, embeddings.get(z).half(), masks[z], volume.spacing[1:], image)
            slices.append((split_of[i], sample))
    absent = [s for s, ok in zip(structures, found, strict=True) if not ok]
    if absent:
        raise SamedError(f"structure {absent[0].name} (label value(s) {'+'.join(map(str, absent[0].values))}) "
                         f"occurs in none of the {len(cases)} labelled volumes")
    result = SliceSplits(list(structures), window=shared_rule(window, rules))
    if by_volume:
        for split, sample in slices:
            getattr(result, split).append(sample)
    else:
        for split, idx in split_indices(len(slices), seed).items():
            getattr(result, split).extend(slices[j][1] for j in idx)
        result.note = (f"only {len(cases)} volume(s): split by slice, so neighbouring slices of one volume are in "
                       f"different splits and the test score is optimistic")
    yield Progress(len(cases), len(cases), result.summary())
    return result

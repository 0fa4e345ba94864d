"""Labelled volumes for training: MSD-style folders or image/label pairs, named structures, seeded splits.

An MSD-style folder (Medical Segmentation Decathlon) holds ``imagesTr/``, ``labelsTr/`` and a ``dataset.json``
whose ``labels`` name the label values and whose ``training`` list pairs each image with its label file.
A *structure* is a named set of label values (``organ=1``, ``whole=1+2+3``): its mask is their union.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SamedError
from ..io import Volume, read_labels, read_volume
from ..io.readers import file_stem

SPLITS = ("train", "val", "test")
FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class Structure:
    """A named structure: the union of the label ``values``."""

    name: str
    values: tuple[int, ...]

    def mask(self, labels: np.ndarray) -> np.ndarray:
        return np.isin(labels, self.values)

    @classmethod
    def parse_values(cls, text: str, name: str = "target") -> Structure:
        """``"2"`` or ``"1+2"`` -> the structure ``name`` of those label values."""
        try:
            values = tuple(int(v) for v in text.split("+"))
        except ValueError:
            values = ()
        if not values or any(v <= 0 for v in values):
            raise SamedError(f"a target is a positive label value or values joined by + (2, 1+2); got {text!r}")
        return cls(name, values)


def parse_structures(text: str) -> list[Structure]:
    """``"organ=1,lesion=2"`` or ``"whole=1+2+3,core=2+3"`` -> structures, in the order given."""
    structures = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, values = part.partition("=")
        try:
            parsed = tuple(int(v) for v in values.split("+"))
        except ValueError:
            parsed = ()
        if not sep or not name.strip() or not parsed or any(v <= 0 for v in parsed):
            raise SamedError(f"structures are NAME=VALUE[+VALUE...] with positive label values, comma-separated "
                             f"(e.g. organ=1,lesion=2); got {part!r}")
        structures.append(Structure(name.strip(), parsed))
    names = [s.name for s in structures]
    if not structures or len(set(names)) != len(names):
        raise SamedError(f"name each structure once, e.g. organ=1,lesion=2; got {text!r}")
    return structures


@dataclass(frozen=True)
class Case:
    """One labelled volume on disk."""

    image: Path
    label: Path

    @property
    def name(self) -> str:
        return file_stem(self.image)

    def load(self) -> tuple[Volume, np.ndarray]:
        """The image volume and its integer label array, checked to share a grid."""
        volume, labels = read_volume(self.image), read_labels(self.label)
        if labels.shape != volume.shape:
            raise SamedError(f"label {self.label.name} has shape {labels.shape} but image {self.image.name} has "
                             f"{volume.shape}; each label file must be on its image's grid")
        return volume, labels.data.astype(np.int32, copy=False)


def _is_pair(entry) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("image"), str) and isinstance(entry.get("label"), str)


def _label_names(labels: dict) -> dict[int, str]:
    """``dataset.json`` labels in either layout: MSD ``{"1": "liver"}`` or nnU-Net v2 ``{"liver": 1}``."""
    names = {}
    for key, value in labels.items():
        try:
            names[int(key)] = str(value)
        except ValueError:
            if isinstance(value, int):
                names[value] = key
    return names


@dataclass
class Dataset:
    """Labelled cases and the label names their ``dataset.json`` gives (empty for plain pairs)."""

    cases: list[Case]
    label_names: dict[int, str]

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> Dataset:
        folder = Path(folder)
        if not folder.is_dir():
            raise SamedError(f"no such dataset folder: {folder}")
        meta_path = folder / "dataset.json"
        if not meta_path.is_file():
            raise SamedError(f"{folder} has no dataset.json; an MSD-style dataset folder holds imagesTr/, "
                             f"labelsTr/ and a dataset.json naming the label values and training pairs")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SamedError(f"could not read {meta_path}: {exc}") from exc
        if not isinstance(meta, dict):
            raise SamedError(f"{meta_path} holds a JSON {type(meta).__name__}; a dataset.json is an object with "
                             f"\"labels\" and \"training\" entries")
        labels = meta.get("labels") or {}
        if not isinstance(labels, dict):
            raise SamedError(f"\"labels\" in {meta_path} must map label values to names, e.g. {{\"1\": \"liver\"}}")
        entries = meta.get("training") or []
        if not isinstance(entries, list) or not all(map(_is_pair, entries)):
            raise SamedError(f"\"training\" in {meta_path} must list image/label pairs: "
                             f"[{{\"image\": \"imagesTr/NAME.nii.gz\", \"label\": \"labelsTr/NAME.nii.gz\"}}, ...]")
        if entries:
            cases = [Case(folder / e["image"], folder / e["label"]) for e in entries]
        else:
            cases = [Case(p, folder / "labelsTr" / p.name) for p in sorted((folder / "imagesTr").glob("*.nii*"))
                     if not p.name.startswith(".")]
        if not cases:
            raise SamedError(f"{meta_path} lists no training cases and {folder / 'imagesTr'} holds no NIfTI image")
        missing = [str(p) for c in cases for p in (c.image, c.label) if not p.is_file()]
        if missing:
            raise SamedError(f"{meta_path} names files that do not exist: {', '.join(missing[:3])}")
        return cls(cases, _label_names(labels))

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike]) -> Dataset:
        """One MSD-style folder, or IMAGE LABEL IMAGE LABEL ... files."""
        if len(paths) == 1:
            return cls.from_folder(paths[0])
        if len(paths) % 2:
            raise SamedError("give one MSD-style folder or IMAGE LABEL pairs; got an odd number of files")
        return cls.from_pairs(zip(paths[::2], paths[1::2], strict=True))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]]) -> Dataset:
        cases = [Case(Path(i), Path(lab)) for i, lab in pairs]
        if not cases:
            raise SamedError("no image/label pairs given")
        return cls(cases, {})

    def files(self) -> list[Path]:
        """Every image and label file."""
        return [p for case in self.cases for p in (case.image, case.label)]

    def target_cases(self, target: Structure) -> list[tuple[Volume, np.ndarray]]:
        """Every case as (volume, boolean mask of ``target``); `SamedError` when the target occurs in none."""
        self.check_structures([target])
        cases = []
        for case in self.cases:
            volume, labels = case.load()
            cases.append((volume, target.mask(labels)))
        if not any(mask.any() for _, mask in cases):
            raise SamedError(f"label value(s) {'+'.join(map(str, target.values))} occur in none of the "
                             f"{len(cases)} volumes")
        return cases

    def check_structures(self, structures: Sequence[Structure]) -> None:
        """`SamedError` for label values that ``dataset.json`` does not name."""
        if not self.label_names:
            return
        unknown = sorted({v for s in structures for v in s.values} - set(self.label_names))
        if unknown:
            named = ", ".join(f"{v}={n}" for v, n in sorted(self.label_names.items()))
            raise SamedError(f"label value(s) {unknown} are not in dataset.json (labels: {named})")


def split_indices(n: int, seed: int = 0, fractions: Sequence[float] = FRACTIONS) -> dict[str, list[int]]:
    """A seeded split of ``n`` items into train/val/test; val and test get at least one item each when n ≥ 3."""
    if n < 3:
        raise SamedError(f"need at least 3 items to split into train, validation and test; got {n}")
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise SamedError(f"{n} items leave none for training after the validation and test splits")
    return {"train": sorted(order[:n_train]), "val": sorted(order[n_train:n_train + n_val]),
            "test": sorted(order[n_train + n_val:])}

"""The cases of a cohort: image files, folders, globs or a CSV manifest (``image[,reference][,box][,box3d][,point]``)
made into `Case`s."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SamedError
from ..io.atomic import file_sha256
from ..io.dicom import holds_dicom, is_dicom_file
from ..io.readers import LABEL_SUFFIX, NIFTI_SUFFIXES, TIFF_SUFFIXES, file_stem

VOLUME_SUFFIXES = NIFTI_SUFFIXES + TIFF_SUFFIXES
#: A manifest's prompt columns: each cell a ``;``-separated list of prompts written as ``segment``'s options.
PROMPT_COLUMNS = ("box", "box3d", "point")


@dataclass(frozen=True)
class Case:
    """One image of a cohort (a NIfTI or TIFF file, or a DICOM series folder), its optional reference labels and
    its prompts: each `PROMPT_COLUMNS` cell's prompts as text (None: not from a manifest with prompt columns)."""

    image: Path
    reference: Path | None = None
    prompts: tuple[tuple[str, ...], ...] | None = None

    @property
    def name(self) -> str:
        """The output's name without suffix: the input's stem (a DICOM series: its folder's name)."""
        return self.image.name if self.image.is_dir() else file_stem(self.image)

    @property
    def output(self) -> str:
        """The label volume's file name: TIFF for TIFF input, else NIfTI (a DICOM series keeps its geometry)."""
        return self.name + (".tif" if self.image.name.lower().endswith(TIFF_SUFFIXES) else ".nii.gz")


def find_cases(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> list[Case]:
    """The cases of ``inputs`` in order; `SamedError` for a missing input, no case at all, two cases with one name
    or an ``output`` folder inside an input's folder (napari-samed never writes there)."""
    cases: list[Case] = []
    for item in inputs:
        cases += _cases_of(str(item))
    if not cases:
        raise SamedError(f"no image in {' '.join(map(str, inputs))}: give NIfTI/TIFF files, folders holding them or "
                         f"DICOM series, globs, or a CSV manifest")
    seen: dict[str, Path] = {}
    for case in cases:
        if case.name in seen:
            raise SamedError(f"{seen[case.name]} and {case.image} would both write {case.output}: rename one")
        seen[case.name] = case.image
    out = Path(output).resolve()
    for case in cases:
        folder = (case.image if case.image.is_dir() else case.image.parent).resolve()
        if out == folder or case.image.is_dir() and folder in out.parents:
            raise SamedError(f"-o {output} is the folder of the input {case.image}: write the outputs elsewhere")
    return cases


def fingerprint(path: Path | None) -> str | None:
    """What identifies an input's content: a file's SHA-256, a DICOM folder's files (names, sizes, times); None
    when there is nothing (no path, or a missing one)."""
    if path is None or not path.exists():
        return None
    if path.is_file():
        return file_sha256(path)
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.iterdir()) if p.is_file()]
    return "files:" + hashlib.sha256(json.dumps(stats).encode()).hexdigest()


def _cases_of(item: str) -> list[Case]:
    path = Path(item)
    if path.is_file() and path.name.lower().endswith(".csv"):
        return _manifest(path)
    if path.is_dir():
        return _folder(path)
    if path.is_file():
        if is_dicom_file(path):
            return [Case(path.parent)]
        if not path.name.lower().endswith(VOLUME_SUFFIXES):
            raise SamedError(f"{path}: not an image (NIfTI, TIFF, DICOM) or a CSV manifest")
        return [Case(path)]
    if glob.has_magic(item):
        found = sorted(glob.glob(item))
        return [case for match in found for case in _cases_of(match)]
    raise SamedError(f"no such file: {path}")


def _folder(folder: Path) -> list[Case]:
    """A folder's NIfTI/TIFF files and DICOM series subfolders, or the folder itself when it is a DICOM series.
    Files named as label volumes (``*_label``, ``*_labels``) are references, not cases."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    cases = [Case(p) for p in entries if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES)
             and not LABEL_SUFFIX.search(file_stem(p))]
    cases += [Case(p) for p in entries if p.is_dir() and holds_dicom(p)]
    return cases or ([Case(folder)] if holds_dicom(folder) else [])


def _manifest(path: Path) -> list[Case]:
    """The rows of a CSV manifest: an ``image`` column, an optional ``reference`` one (paths relative to the CSV)
    and optional `PROMPT_COLUMNS`."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "image" not in rows[0]:
        raise SamedError(f"manifest {path} needs an 'image' column (and optionally 'reference', "
                         f"{', '.join(map(repr, PROMPT_COLUMNS))}), one row per case")
    prompted = any(column in rows[0] for column in PROMPT_COLUMNS)
    base = path.parent
    cases = []
    for number, row in enumerate(rows, start=2):
        if not (row.get("image") or "").strip():
            raise SamedError(f"manifest {path} line {number}: no image")
        image = base / row["image"].strip()
        reference = (row.get("reference") or "").strip()
        prompts = tuple(tuple(t.strip() for t in (row.get(c) or "").split(";") if t.strip()) for c in PROMPT_COLUMNS)
        cases.append(Case(image.parent if image.is_file() and is_dicom_file(image) else image,
                          base / reference if reference else None, prompts if prompted else None))
    return cases

"""`Volume`: a 3D image in the plugin's (z, y, x) view with its voxel spacing and source geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SamedError
from ..masks import label_dtype


def default_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    """NIfTI affine for an array stored as the reversed (z, y, x) view: axes L, P, S with the given spacing."""
    sz, sy, sx = spacing
    return np.diag([-sx, -sy, sz, 1.0])


@dataclass
class Geometry:
    """Where a (z, y, x) array sits: its shape, spacing (mm), the source affine and format details.

    Enough to write a label volume back in the source's geometry (``io.readers.write_labels``); napari layers
    carry it in their metadata.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Volume:
    """A 3D image, ``data[z, y, x]``; ``spacing`` is (z, y, x) in mm.

    ``affine`` and ``meta`` describe the file it came from so that label volumes can be written back in the
    source's own storage order and header (see ``io.readers.write_labels``).
    """

    data: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    affine: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data)
        check_volume(self.data)
        self.spacing = tuple(float(s) for s in self.spacing)
        if self.affine is None:
            self.affine = default_affine(self.spacing)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.shape, self.spacing, self.affine, self.meta)


def check_volume(data: np.ndarray, what: str = "image") -> None:
    """Raise `SamedError` unless ``data`` is a finite, numeric 3D array."""
    if data.ndim != 3:
        raise SamedError(
            f"the {what} must be a 3D volume (z, y, x); got {data.ndim}D with shape {tuple(data.shape)}"
        )
    if min(data.shape) == 0:
        raise SamedError(f"the {what} is empty: shape {tuple(data.shape)}")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise SamedError(f"the {what} must hold numbers; got dtype {data.dtype}")
    if np.iscomplexobj(data):
        raise SamedError(f"the {what} holds complex numbers ({data.dtype}); give a real-valued volume "
                         f"(e.g. the magnitude image)")
    if np.issubdtype(data.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise SamedError(f"the {what} holds {bad} NaN or infinite voxels; fix or mask them first")


def label_array(data: np.ndarray, what: str = "the label volume") -> np.ndarray:
    """``data`` (already a checked volume) as an integer label array; `SamedError` for fractions or negatives."""
    if data.dtype == bool:
        return data.astype(np.uint8)
    if not np.issubdtype(data.dtype, np.integer) and not np.array_equal(data, np.round(data)):
        raise SamedError(f"{what} holds non-integer values: it looks like an image, not a label volume")
    low, high = data.min(), data.max()
    if low < 0:
        raise SamedError(f"{what} holds negative values (down to {low:g}): it looks like an image, not a label "
                         f"volume")
    return data.astype(label_dtype(int(high)), copy=False)

"""npe2 reader, writer and sample contributions: layers carry the source `Geometry` in their metadata."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import SamedError
from .io import Geometry, read_volume, write_labels
from .io.readers import NIFTI_SUFFIXES, TIFF_SUFFIXES
from .io.volume import default_affine
from .phantom import make_phantom

GEOMETRY_KEY = "napari_samed_geometry"


def layer_geometry(metadata: dict, shape: tuple[int, ...], scale=None) -> Geometry:
    """The geometry a layer came with, or a plain one from its shape and scale."""
    geometry = metadata.get(GEOMETRY_KEY)
    if geometry is not None and tuple(geometry.shape) == tuple(shape):
        return geometry
    spacing = tuple(float(s) for s in (scale if scale is not None else (1.0,) * 3))
    return Geometry(tuple(shape), spacing, default_affine(spacing))


def geometry_metadata(layer) -> dict:
    """Metadata for a result layer of ``layer``: its source geometry, when it has one (for the writer)."""
    return {GEOMETRY_KEY: layer.metadata[GEOMETRY_KEY]} if GEOMETRY_KEY in layer.metadata else {}


def get_reader(path: str | list[str]) -> Callable | None:
    """npe2 reader hook: NIfTI and TIFF volumes, shown in the plugin's (z, y, x) view with their spacing."""
    if isinstance(path, list):
        return None
    return read_layers if str(path).lower().endswith(NIFTI_SUFFIXES + TIFF_SUFFIXES) else None


def read_layers(path: str) -> list[tuple]:
    volume = read_volume(path)
    kwargs = {"name": Path(path).name.split(".")[0], "scale": volume.spacing,
              "metadata": {GEOMETRY_KEY: volume.geometry}}
    return [(volume.data, kwargs, "labels" if _looks_like_labels(volume.data) else "image")]


def _looks_like_labels(data: np.ndarray) -> bool:
    """Integer volumes with a handful of small non-negative values (0, 1, 2, ...) open as Labels."""
    if not np.issubdtype(data.dtype, np.integer) or data.min() < 0:
        return False
    values = np.unique(data[:: max(1, data.shape[0] // 8)])
    return len(values) <= 32 and values.max(initial=0) < 1000


def write_labels_layer(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """npe2 writer hook: a Labels layer to NIfTI or TIFF in its source image's geometry."""
    geometry = layer_geometry(meta.get("metadata", {}), np.shape(data), meta.get("scale"))
    try:
        return [str(write_labels(np.asarray(data), path, geometry))]
    except SamedError as exc:
        raise ValueError(str(exc)) from exc


def sample_ct() -> list[tuple]:
    """napari sample: the synthetic CT volume (HU) and its reference labels (1 organ, 2 lesion)."""
    volume, labels = make_phantom(0)
    meta = {GEOMETRY_KEY: volume.geometry}
    return [
        (volume.data, {"name": "sample CT", "scale": volume.spacing, "contrast_limits": (-160, 240),
                       "metadata": meta}, "image"),
        (labels, {"name": "sample CT reference", "scale": volume.spacing, "metadata": meta}, "labels"),
    ]

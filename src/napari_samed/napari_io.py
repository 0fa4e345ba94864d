"""npe2 reader, writer and sample contributions: layers carry the source `Geometry` in their metadata, and
result layers the method that made them (named in the DICOM SEG they are saved as)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import SamedError
from .io import Geometry, read_volume, write_labels
from .io.dicom import DICOM_SUFFIXES, holds_dicom
from .io.readers import NIFTI_SUFFIXES, TIFF_SUFFIXES, volume_format
from .io.volume import default_affine
from .sample_data import SAMPLES, Sample

GEOMETRY_KEY = "napari_samed_geometry"
METHOD_KEY = "napari_samed_method"


def _viewer_images():
    """The image layers of the napari viewer in use (the writer is called from it), or none."""
    import napari
    from napari.layers import Image

    viewer = napari.current_viewer()
    return [] if viewer is None else [layer for layer in viewer.layers if isinstance(layer, Image)]


def writer_geometry(path: str, shape: tuple[int, ...], meta: dict) -> Geometry:
    """Where a Labels layer's file must place its voxels.

    A plugin result carries its source image's geometry. A layer the user made in napari has none: it takes the
    geometry of the image layer it was drawn on (same shape and scale, opened from a file by this plugin). TIFF
    stores only the (z, y, x) view and its spacing, so the layer's scale is enough there; NIfTI needs the source's
    orientation and a DICOM SEG the source's series, and without them the file is refused instead of written
    misplaced.
    """
    own = meta.get("metadata", {}).get(GEOMETRY_KEY)
    if own is not None and tuple(own.shape) == tuple(shape):
        return own
    scale = tuple(float(s) for s in (meta.get("scale") if meta.get("scale") is not None else (1.0,) * len(shape)))
    drawn_on = [layer.metadata[GEOMETRY_KEY] for layer in _viewer_images()
                if GEOMETRY_KEY in layer.metadata and tuple(layer.data.shape) == tuple(shape)
                and np.allclose(layer.scale, scale)]
    if drawn_on and all(np.allclose(g.affine, drawn_on[0].affine) for g in drawn_on):
        return drawn_on[0]
    if volume_format(path) == "tiff" and len(shape) == 3:
        return Geometry(tuple(shape), scale, default_affine(scale))
    why = ("several open images of that shape and scale have different orientations" if drawn_on else
           "no open image of that shape and scale was read from a NIfTI file or DICOM series")
    kind = "a NIfTI file" if volume_format(path) == "nifti" else "a DICOM SEG"
    raise SamedError(f"cannot place this Labels layer (shape {tuple(shape)}, scale {scale}) in {kind}: it "
                     f"is not a napari-samed result and {why}. Open its source image in napari first (or close the "
                     f"others), or save it as TIFF")


def geometry_metadata(layer, method: str) -> dict:
    """Metadata for a result layer of ``layer`` made by ``method``: its source geometry, when it has one, and the
    method (for the writer)."""
    geometry = {GEOMETRY_KEY: layer.metadata[GEOMETRY_KEY]} if GEOMETRY_KEY in layer.metadata else {}
    return {**geometry, METHOD_KEY: method}


def get_reader(path: str | list[str]) -> Callable | None:
    """npe2 reader hook: NIfTI and TIFF volumes, DICOM series (a folder holding DICOM files, or one ``.dcm``
    file) and DICOM SEG files (as labels), shown in the plugin's (z, y, x) view with their spacing. None for other
    folders, for other readers."""
    if isinstance(path, list):
        return None
    if Path(path).is_dir():
        return read_layers if holds_dicom(path) else None
    return read_layers if str(path).lower().endswith(NIFTI_SUFFIXES + TIFF_SUFFIXES + DICOM_SUFFIXES) else None


def read_layers(path: str) -> list[tuple]:
    volume = read_volume(path)
    if volume.meta.get("format") == "dicom":  # the series' folder names it
        name = (Path(path) if Path(path).is_dir() else Path(path).parent).name
    else:
        name = Path(path).name.split(".")[0]
    kwargs = {"name": name, "scale": volume.spacing,
              "metadata": {GEOMETRY_KEY: volume.geometry}}
    labels = volume.meta.get("format") == "seg" or _looks_like_labels(volume.data)
    return [(volume.data, kwargs, "labels" if labels else "image")]


def _looks_like_labels(data: np.ndarray) -> bool:
    """Integer volumes with a handful of small non-negative values (0, 1, 2, ...) open as Labels."""
    if not np.issubdtype(data.dtype, np.integer) or data.min() < 0:
        return False
    values = np.unique(data[:: max(1, data.shape[0] // 8)])
    return len(values) <= 32 and values.max(initial=0) < 1000


def write_labels_layer(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """npe2 writer hook: a Labels layer to NIfTI or TIFF in its source image's geometry, or to a DICOM SEG of its
    source DICOM series."""
    method = meta.get("metadata", {}).get(METHOD_KEY)
    try:
        return [str(write_labels(np.asarray(data), path, writer_geometry(path, np.shape(data), meta), method))]
    except SamedError as exc:
        raise ValueError(str(exc)) from exc


def sample_ct() -> list[tuple]:
    """napari sample: the synthetic CT volume (HU) and its reference labels (1 organ, 2 lesion)."""
    return sample_layers(SAMPLES["synthetic"])


def sample_chest_ct() -> list[tuple]:
    """napari sample: the real chest CT (HU) and its reference labels (1 aorta, 2 T12 vertebra)."""
    return sample_layers(SAMPLES["chest-ct"])


def sample_layers(sample: Sample) -> list[tuple]:
    """A sample's image and its reference labels, hidden, so that they are not mistaken for the results (which take
    the same label colours)."""
    volume, labels = sample.load()
    meta = {GEOMETRY_KEY: volume.geometry}
    return [
        (volume.data, {"name": sample.title, "scale": volume.spacing, "contrast_limits": sample.contrast,
                       "metadata": meta}, "image"),
        (labels, {"name": f"{sample.title} reference", "scale": volume.spacing, "metadata": meta, "visible": False},
         "labels"),
    ]

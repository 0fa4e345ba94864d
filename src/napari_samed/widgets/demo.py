"""`napari-samed demo`: a sample volume in napari with the Segment widget docked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import napari

    from .segment import SegmentWidget

#: napari sample keys (napari.yaml) of `sample_data.SAMPLES`.
SAMPLE_KEYS = {"synthetic": "sample_ct", "chest-ct": "chest_ct"}


def open_demo(viewer: napari.viewer.Viewer, sample: str = "synthetic") -> SegmentWidget:
    """Open one of the plugin's samples (a key of `sample_data.SAMPLES`) through the plugin's manifest, dock the
    Segment widget on it and show the middle slice of the demo's object."""
    from ..sample_data import SAMPLES

    chosen = SAMPLES[sample]
    viewer.open_sample("napari-samed", SAMPLE_KEYS[sample])
    _, widget = viewer.window.add_plugin_dock_widget("napari-samed", "Segment")
    image = viewer.layers[chosen.title]
    widget.image.value = image
    occupied = np.flatnonzero(np.isin(viewer.layers[f"{chosen.title} reference"].data, chosen.target).any(axis=(1, 2)))
    viewer.dims.set_point(0, image.data_to_world([occupied[len(occupied) // 2], 0, 0])[0])
    return widget

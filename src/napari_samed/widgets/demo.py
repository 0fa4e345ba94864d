"""`napari-samed demo`: the sample volume in napari with the Segment widget docked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import napari

    from .segment import SegmentWidget


def open_demo(viewer: napari.viewer.Viewer) -> SegmentWidget:
    """Open the plugin's sample CT and dock the Segment widget on it, through the plugin's manifest."""
    viewer.open_sample("napari-samed", "sample_ct")
    _, widget = viewer.window.add_plugin_dock_widget("napari-samed", "Segment")
    widget.image.value = viewer.layers["sample CT"]
    viewer.dims.set_point(0, viewer.layers["sample CT"].data_to_world([31, 0, 0])[0])
    return widget

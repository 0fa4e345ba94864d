"""Reading volumes and writing label volumes (NIfTI, TIFF) in the plugin's (z, y, x) view."""

from .readers import read_labels, read_volume, write_labels, write_volume
from .volume import Geometry, Volume

__all__ = ["Geometry", "Volume", "read_labels", "read_volume", "write_labels", "write_volume"]

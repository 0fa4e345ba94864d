"""napari-samed: Segment Anything family models for medical volumes, in napari and headless."""

from .errors import SamedError, SamedWarning
from .io import Volume, read_volume, write_labels

__version__ = "0.1.0"
__all__ = ["SamedError", "SamedWarning", "Volume", "read_volume", "write_labels", "__version__"]

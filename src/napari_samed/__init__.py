"""napari-samed: Segment Anything family models for medical volumes, in napari and headless."""

from .errors import SamedError
from .io import Volume, read_volume, write_labels

__version__ = "0.1.0"
__all__ = ["SamedError", "Volume", "read_volume", "write_labels", "__version__"]

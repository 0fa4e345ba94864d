"""SAM-family backbones: registry, weight loading, preprocessing and the embedding cache."""

from .backbone import Backbone, Decoded, load_backbone, resolve_device
from .cache import VolumeEmbeddings, default_cache_dir
from .preprocess import resolve_window
from .registry import BACKBONES, DEFAULT_BACKBONE, BackboneSpec, get_spec

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "Backbone",
    "BackboneSpec",
    "Decoded",
    "VolumeEmbeddings",
    "default_cache_dir",
    "get_spec",
    "load_backbone",
    "resolve_device",
    "resolve_window",
]

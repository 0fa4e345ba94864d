"""SAM-family backbones: registry, weight loading, preprocessing and the embedding cache.

The names below load their modules on first use (PEP 562), so that ``napari_samed.models.registry`` and the
widgets that list models do not import torch.
"""

from importlib import import_module

_WHERE = {
    "Backbone": "backbone", "Decoded": "backbone", "load_backbone": "backbone", "resolve_device": "backbone",
    "VolumeEmbeddings": "cache", "default_cache_dir": "cache", "resolve_window": "preprocess",
    "BACKBONES": "registry", "DEFAULT_BACKBONE": "registry", "BackboneSpec": "registry", "get_spec": "registry",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)

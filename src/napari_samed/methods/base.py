"""What every method shares: the `Method` interface, the prompt kinds and the registry the CLI and widgets list."""

from __future__ import annotations

from importlib import import_module
from typing import ClassVar, Protocol

import numpy as np

from ..errors import SamedError
from ..models.cache import VolumeEmbeddings
from ..tasks import Task
from .prompts import PROMPT_KINDS, Prompt

__all__ = ["METHODS", "PROMPT_KINDS", "Method", "complete_registry", "get_method", "register"]


class Method(Protocol):
    """A segmentation method: ``segment`` turns embeddings and prompts into a label volume (z, y, x).

    ``prompts`` are the `PROMPT_KINDS` it understands, preferred first (none: it segments without prompts).

    Untrained methods are built from a backbone, ``Method(backbone)``; trained ones (``trained = True``) from
    their checkpoint, ``Method.open(path, device, precision)``, which also loads the backbone they were trained on.
    """

    name: ClassVar[str]
    trained: ClassVar[bool]
    prompts: ClassVar[tuple[str, ...]]

    def segment(self, embeddings: VolumeEmbeddings, prompts: list[Prompt]) -> Task[np.ndarray]: ...


METHODS: dict[str, type] = {}
#: The modules whose import registers a method in `METHODS`.
REGISTERING = (".zero_shot", ".cotrain", ".fewshot", ".promise")


def register(cls: type) -> type:
    """Class decorator adding a method to `METHODS` under its ``name``."""
    METHODS[cls.name] = cls
    return cls


def complete_registry() -> dict[str, type]:
    """`METHODS`, whole: every registering module imported (once), whatever the caller imported before."""
    for module in REGISTERING:
        import_module(module, __package__)
    return METHODS


def get_method(name: str) -> type:
    try:
        return complete_registry()[name]
    except KeyError:
        raise SamedError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None

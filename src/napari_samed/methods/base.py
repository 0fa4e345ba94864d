"""What every method shares: progress-reporting tasks and the registry the CLI and widgets list."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import numpy as np

from ..errors import SamedError
from ..models.cache import VolumeEmbeddings
from .prompts import Prompt

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long task: ``done`` of ``total`` units, a short description, for training steps the loss,
    and optionally ``partial``, an early part of the result that a GUI may show while the task goes on."""

    done: int
    total: int
    message: str = ""
    loss: float | None = None
    partial: object = None


#: A long computation: a generator that yields `Progress` and returns its result. napari's thread workers
#: run it off the GUI thread (and can stop it between steps); `run_task` runs it headless.
Task = Generator[Progress, None, T]


def run_task(task: Task[T], callback: Callable[[Progress], None] | None = None) -> T:
    """Drive a task to completion, passing each `Progress` to ``callback``; return its result."""
    while True:
        try:
            step = next(task)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            callback(step)


#: The prompt kinds of the CLI, the comparison and the papers: a box on every slice, a 3D box, one click; and
#: one click or one box on a single slice, propagated through the volume.
PROMPT_KINDS = ("box", "box3d", "click", "click3d", "onebox3d")


def relay(task: Task[T], restate: Callable[[Progress], Progress]) -> Task[T]:
    """A task that runs ``task`` inside another: each of its steps passes through ``restate`` (to place it in
    the outer task's count and message); returns its result."""
    while True:
        try:
            step = next(task)
        except StopIteration as stop:
            return stop.value
        yield restate(step)


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


def register(cls: type) -> type:
    """Class decorator adding a method to `METHODS` under its ``name``."""
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type:
    try:
        return METHODS[name]
    except KeyError:
        raise SamedError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None

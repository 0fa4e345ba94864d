"""Long computations as generators: `Task` yields `Progress` and returns its result.

napari's thread workers run a task off the GUI thread (and can stop it between steps); `run_task` runs it
headless; `relay` runs one task inside another.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long task: ``done`` of ``total`` units, a short description, for training steps the loss
    (and, on steps that check one, the score the run stops on), and optionally ``partial``, an early part of the
    result that a GUI may show while the task goes on."""

    done: int
    total: int
    message: str = ""
    loss: float | None = None
    partial: object = None
    score: float | None = None


#: A long computation: a generator that yields `Progress` and returns its result.
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


def relay(task: Task[T], restate: Callable[[Progress], Progress]) -> Task[T]:
    """A task that runs ``task`` inside another: each of its steps passes through ``restate`` (to place it in
    the outer task's count and message); returns its result."""
    while True:
        try:
            step = next(task)
        except StopIteration as stop:
            return stop.value
        yield restate(step)

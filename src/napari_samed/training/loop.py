"""The one training loop of the trained methods: optimiser steps (warm-up, clipping) with their progress, and the
best state kept across epochs. Each method supplies the loss of a step; what an epoch ends with (validation,
checkpoints) stays the method's."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..tasks import Progress, Task


def warmup_poly(step: int, total: int, warmup: int) -> float:
    """The learning rate at ``step`` (from 0) of ``total``, relative to the base one: a linear warm-up over
    ``warmup`` steps, then polynomial decay (power 0.9) to 0 at ``total``."""
    ramp = min(1.0, (step + 1) / max(warmup, 1))
    return ramp * (1 - step / max(total, 1)) ** 0.9


@dataclass
class Stepper:
    """Optimiser steps on a loss: gradients zeroed, the loss backpropagated, the gradients' norm clipped to ``clip``
    (None: not clipped), then a step at learning rate ``lr × schedule(step)`` (no ``schedule``: the optimiser's
    own rate)."""

    optimiser: torch.optim.Optimizer
    clip: float | None = None
    lr: float | None = None
    schedule: Callable[[int], float] | None = None

    def step(self, loss: torch.Tensor, index: int) -> float:
        """One step on ``loss``, the ``index``-th of the run (from 0); the loss's value."""
        if self.schedule is not None:
            for group in self.optimiser.param_groups:
                group["lr"] = self.lr * self.schedule(index)
        self.optimiser.zero_grad()
        loss.backward()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_([p for g in self.optimiser.param_groups for p in g["params"]], self.clip)
        self.optimiser.step()
        return loss.item()


def train_steps(stepper: Stepper, losses: Iterable[Callable[[], torch.Tensor]], first: int, total: int,
                describe: Callable[[int, float], str]) -> Task[list[float]]:
    """Task: one optimiser step per item of ``losses`` (each a callable giving that step's loss), numbered from
    ``first`` of ``total``; each yields `Progress` with ``describe(steps taken, loss)`` and the loss. Returns the
    losses."""
    values = []
    for index, loss_of in enumerate(losses, start=first):
        values.append(stepper.step(loss_of(), index))
        yield Progress(index + 1, total, describe(len(values), values[-1]), values[-1])
    return values


class BestState:
    """A module's weights at its best score so far (higher is better): `offer` after each epoch, `restore` at the
    end."""

    def __init__(self, module: torch.nn.Module, score: float | None = None):
        self.module = module
        self.score = score
        self.state = copy.deepcopy(module.state_dict()) if score is not None else None

    def offer(self, score: float) -> bool:
        """Keep the module's weights when ``score`` beats the best; True when it does."""
        if self.score is not None and not score > self.score:
            return False
        self.score, self.state = score, copy.deepcopy(self.module.state_dict())
        return True

    def restore(self) -> None:
        """Put the best weights back in the module (nothing when none was kept)."""
        if self.state is not None:
            self.module.load_state_dict(self.state)

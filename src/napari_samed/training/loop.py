"""The one training loop of the trained methods: optimiser steps (warm-up, clipping) with their progress, the best
state kept across epochs, and the rule that stops a run by itself. Each method supplies the loss of a step; what
an epoch ends with (validation, checkpoints) stays the method's."""

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


@dataclass(frozen=True)
class TrainingStop:
    """When a run of steps stops by itself. Every ``every`` steps the run checks a score (higher is better, at
    most 1); it stops once the score reaches ``target``, once ``patience`` checks in a row have not raised the best
    score by ``gain``, after ``budget`` seconds (None: no limit) or after ``max_steps``."""

    max_steps: int
    budget: float | None = None
    every: int = 10
    target: float = 1.0
    patience: int = 5
    gain: float = 0.005
    name: str = "the score"

    @classmethod
    def exactly(cls, steps: int, every: int = 10, name: str = "the score") -> TrainingStop:
        """Exactly ``steps`` steps, scores still checked (for the curve)."""
        return cls(steps, None, every, float("inf"), steps + 1, name=name)

    def due(self, steps: int) -> bool:
        """Whether the score is checked after ``steps`` steps (every ``every``, and at the last)."""
        return steps % self.every == 0 or steps == self.max_steps

    def reason(self, steps: int, seconds: float, scores: list[float]) -> str | None:
        """Why the run stops after ``steps`` steps, ``seconds`` and these checked ``scores``; None: it goes on."""
        if scores and scores[-1] >= self.target:
            return f"stopped at step {steps}: {self.name} reached {scores[-1]:.3f} (target {self.target:.2f})"
        if len(scores) > self.patience and max(scores[-self.patience:]) < max(scores[:-self.patience]) + self.gain:
            return (f"stopped at step {steps}: {self.name} rose less than {self.gain} in the last "
                    f"{self.patience * self.every} steps (best {max(scores):.3f})")
        if self.budget is not None and seconds >= self.budget:
            return f"stopped at step {steps}: the {self.budget:g} s budget is spent"
        if steps >= self.max_steps:
            return f"{steps} steps done"
        return None


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

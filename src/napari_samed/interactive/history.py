"""`History`: the undo steps of a label volume, each holding only the voxels it changed, under a memory cap."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

#: Default memory cap of the undo steps: the oldest steps are dropped beyond it.
UNDO_LIMIT_BYTES = 512 * 2**20


@dataclass
class Patch:
    """One slice's voxels as they were, in the bounding box ``(y0, y1, x0, x1)`` of what a step changed there."""

    box: tuple[int, int, int, int]
    before: np.ndarray

    def union(self, other: tuple[int, int, int, int], plane: np.ndarray) -> Patch:
        """This patch grown to also hold box ``other``, reading what is not yet held from ``plane`` (unchanged
        there since the step began)."""
        (a0, a1, b0, b1), (c0, c1, d0, d1) = self.box, other
        box = (min(a0, c0), max(a1, c1), min(b0, d0), max(b1, d1))
        before = plane[box[0]:box[1], box[2]:box[3]].copy()
        before[a0 - box[0]:a1 - box[0], b0 - box[2]:b1 - box[2]] = self.before
        return Patch(box, before)


@dataclass
class Step:
    """What one edit changed: {slice: `Patch`}."""

    patches: dict[int, Patch] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(p.before.nbytes for p in self.patches.values())


class History:
    """Undo steps of one label volume, newest last.

    An edit is recorded slice by slice: `record(z, before, after)` keeps the voxels of ``before`` inside the
    bounding box of those that differ in ``after``, so an edit of a small object costs its size, not the slices'.
    When the steps pass ``limit`` bytes, the oldest are dropped (never the newest) and `dropped` says how many.
    """

    def __init__(self, limit: int = UNDO_LIMIT_BYTES):
        if limit < 0:
            raise ValueError(f"the undo memory limit must be positive; got {limit}")
        self.limit = limit
        self._steps: deque[Step] = deque()
        self.nbytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._steps)

    def begin(self, amend: bool = False) -> Step:
        """A new step (``amend``: the last step, to add to: the rest of a result already partly applied)."""
        if amend and self._steps:
            step = self._steps.pop()
            self.nbytes -= step.nbytes
            return step
        return Step()

    def record(self, step: Step, z: int, before: np.ndarray, after: np.ndarray) -> None:
        """Add slice ``z``'s change from ``before`` to ``after`` to ``step`` (nothing if it did not change)."""
        changed = before != after
        rows = np.flatnonzero(changed.any(axis=1))
        if not len(rows):
            return
        cols = np.flatnonzero(changed.any(axis=0))
        box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        held = step.patches.get(z)
        step.patches[z] = (held.union(box, before) if held is not None
                           else Patch(box, before[box[0]:box[1], box[2]:box[3]].copy()))

    def commit(self, step: Step) -> int:
        """Keep ``step`` as the newest; drop the oldest beyond the limit. Returns how many were dropped now."""
        self._steps.append(step)
        self.nbytes += step.nbytes
        dropped = 0
        while self.nbytes > self.limit and len(self._steps) > 1:
            self.nbytes -= self._steps.popleft().nbytes
            dropped += 1
        self.dropped += dropped
        return dropped

    def undo(self, labels: np.ndarray) -> bool:
        """Restore in ``labels`` what the newest step changed; False when there is nothing to undo."""
        if not self._steps:
            return False
        step = self._steps.pop()
        self.nbytes -= step.nbytes
        for z, patch in step.patches.items():
            y0, y1, x0, x1 = patch.box
            labels[z, y0:y1, x0:x1] = patch.before
        return True

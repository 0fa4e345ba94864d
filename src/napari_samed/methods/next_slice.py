"""Which slice to label next for the few-shot decoder: where a trained model is far from its labelled slices and
least sure of itself."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import SamedError
from ..masks import dice
from ..models.cache import VolumeEmbeddings
from ..tasks import Progress, Task
from .fewshot import FewShot

#: A pixel is uncertain between these foreground probabilities; the uncertain part of a slice is its uncertain
#: pixels per pixel drawn, or per `SMALLEST` pixels where it draws less.
UNSURE = (0.2, 0.8)
SMALLEST = 50
#: Added to every doubt, so that distance decides between slices the model is equally sure of.
TIE = 0.01


class Suggestion(NamedTuple):
    """A slice to label next, its score (higher: label it first) and why, in words."""

    z: int
    score: float
    why: str


class SliceDoubt(NamedTuple):
    """How unsure a trained model is of one unlabelled slice."""

    found: bool  # the model draws a label there
    unsure: float  # uncertain pixels per pixel drawn (at most 1)
    disagree: float  # 1 - Dice between its regions and the same regions redrawn from their boxes


def slice_doubt(method: FewShot, embeddings: VolumeEmbeddings, z: int) -> SliceDoubt:
    """The model's doubt on slice ``z``: its uncertain pixels and the disagreement of its two drawings."""
    embedding = embeddings.get(z)
    prob = method.probabilities(embedding, embeddings.slice_shape)
    plane = method.label_plane(prob, embedding)
    drawn = max(int((prob > 0.5).sum()), SMALLEST)
    unsure = min(1.0, int(((prob > UNSURE[0]) & (prob < UNSURE[1])).sum()) / drawn)
    found = bool(plane.any())
    disagree = 1.0 - dice(method.redraw(embeddings, z, plane) > 0, plane > 0) if found else 0.0
    return SliceDoubt(found, unsure, disagree)


def suggest(method: FewShot, embeddings: VolumeEmbeddings, labelled: list[int],
            count: int = 1) -> Task[list[Suggestion]]:
    """Task: the ``count`` slices to label next, best first.

    The candidates are the unlabelled slices where the model draws the structure or is unsure of it, and those
    between the labelled slices. Each scores its doubt (`slice_doubt`: the larger of its uncertain part and the
    disagreement of its two drawings), weighted by its distance to the nearest labelled slice (from 0.5 next to
    one to 1 for the farthest candidate). The structure's first and last slices, which the model tends to miss,
    score high; a slice far away with a few uncertain pixels does not. After each pick the picked slice counts
    as labelled, so several suggestions spread out.
    """
    if method.decoder is None:
        raise SamedError("no few-shot model: train one first, then ask which slice to label next")
    done = set(labelled)
    span = (min(done), max(done)) if done else (0, -1)
    doubts: dict[int, SliceDoubt] = {}
    free = [z for z in range(embeddings.num_slices) if z not in done]
    for i, z in enumerate(free, start=1):
        doubt = slice_doubt(method, embeddings, z)
        if doubt.found or doubt.unsure > 0 or span[0] < z < span[1]:
            doubts[z] = doubt
        yield Progress(i, len(free), f"scoring slice {z}")
    picks: list[Suggestion] = []
    while doubts and len(picks) < count:
        anchors = np.asarray(sorted(done))
        gaps = {z: int(np.abs(anchors - z).min()) if len(anchors) else 1 for z in doubts}
        farthest = max(gaps.values())
        scores = {z: (0.5 + 0.5 * gaps[z] / farthest) * (TIE + max(d.unsure, d.disagree)) for z, d in doubts.items()}
        z = max(scores, key=scores.get)
        picks.append(Suggestion(z, scores[z], _why(gaps[z], doubts.pop(z))))
        done.add(z)
    return picks


def _why(gap: int, doubt: SliceDoubt) -> str:
    parts = [f"{gap} slice{'s' if gap != 1 else ''} from the nearest labelled one"]
    if not doubt.found:
        parts.append("the model draws nothing here but is unsure" if doubt.unsure else "the model draws nothing here")
    else:
        parts.append(f"{doubt.unsure:.0%} of what it draws is uncertain")
        parts.append(f"its boxes redraw it with DSC {1 - doubt.disagree:.2f}")
    return "; ".join(parts)

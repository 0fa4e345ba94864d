"""Which slice to label next for the few-shot decoder: where the segmentation a user would get is far from the
labelled slices and the model is least sure of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..errors import SamedError
from ..masks import dice, label_dtype
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

    found: bool  # the segmentation draws a label there
    unsure: float  # uncertain pixels per pixel drawn (at most 1)
    disagree: float  # 1 - Dice between the decoder's regions and the same regions redrawn from their boxes


def uncertain_part(prob: torch.Tensor) -> float:
    """The uncertain part of a slice's foreground probabilities (L, H, W): its uncertain pixels per pixel drawn, at
    most 1."""
    drawn = max(int((prob > 0.5).sum()), SMALLEST)
    return min(1.0, int(((prob > UNSURE[0]) & (prob < UNSURE[1])).sum()) / drawn)


def candidates(drawn: Sequence[int], labelled: Sequence[int], num_slices: int) -> list[int]:
    """The unlabelled slices worth scoring: those the segmentation draws the structure on (``drawn``), those
    between the labelled slices, and the one beyond each end of what it draws (where it may stop too early)."""
    near = set(drawn)
    if len(drawn):
        near |= {min(drawn) - 1, max(drawn) + 1}
    if len(labelled):
        near |= set(range(min(labelled) + 1, max(labelled)))
    return sorted(int(z) for z in near if 0 <= z < num_slices and z not in set(labelled))


def pick(doubts: dict[int, SliceDoubt], labelled: Sequence[int], count: int) -> list[Suggestion]:
    """The ``count`` slices of ``doubts`` to label next, best first (`scores`). After each pick the picked slice
    counts as labelled, so several suggestions spread out."""
    doubts, done, picks = dict(doubts), set(labelled), []
    while doubts and len(picks) < count:
        ranked = scores(doubts, sorted(done))
        z = max(ranked, key=ranked.get)
        gap = min((abs(z - s) for s in done), default=0)
        picks.append(Suggestion(z, ranked[z], _why(gap, doubts.pop(z))))
        done.add(z)
    return picks


def scores(doubts: dict[int, SliceDoubt], labelled: Sequence[int]) -> dict[int, float]:
    """Each candidate's score: the doubt a label on it settles, weighted by how far that reaches.

    Between the labelled slices, a slice settles its own doubt (the larger of its uncertain part and the
    disagreement of its two drawings), and its reach is its distance to the nearest labelled slice. Past the
    labelled range, a label on a slice settles every candidate beyond it too (the structure there moves the
    labelled end, where the extent rules start; none there ends it: `FewShot.near_labelled_slices`): it scores
    the largest doubt from it outward, and its reach is the slices from it to the outermost candidate, so the
    slice next to the range comes first. The weight goes from 0.5 (reach 1) to 1 (the longest reach).
    """
    low, high = (min(labelled), max(labelled)) if len(labelled) else (float("-inf"), float("inf"))

    def settled(z: int) -> list[int]:
        return [y for y in doubts if y >= z] if z > high else [y for y in doubts if y <= z] if z < low else [z]

    reach = {z: max(abs(y - z) for y in settled(z)) + 1 if not low <= z <= high
             else min((abs(z - s) for s in labelled), default=1) for z in doubts}
    longest = max(reach.values())
    return {z: (0.5 + 0.5 * reach[z] / longest) * (TIE + max(max(doubts[y].unsure, doubts[y].disagree)
                                                              for y in settled(z))) for z in doubts}


def suggest(method: FewShot, embeddings: VolumeEmbeddings, labelled: list[int],
            count: int = 1) -> Task[list[Suggestion]]:
    """Task: the ``count`` slices to label next, best first.

    The volume is segmented as `FewShot.segment` draws it for the user (its extent rules included), so a false
    region those rules already remove is not worth a label. The `candidates` score their doubt (`SliceDoubt`)
    weighted by how far a label there reaches (`scores`): the slices past the structure's labelled ends, which
    the model tends to get wrong, score high; a slice far from the structure is no candidate.
    """
    if method.decoder is None:
        raise SamedError("no few-shot model: train one first, then ask which slice to label next")
    n = embeddings.num_slices
    plain = np.zeros(embeddings.data.shape, label_dtype(max(method.labels)))
    drawn, unsure = np.zeros_like(plain), np.zeros(n)
    for z in range(n):  # as `FewShot.segment` draws them, keeping the decoder's own planes and doubt
        prob, plain[z], drawn[z] = method.draw_slice(embeddings, z)
        unsure[z] = uncertain_part(prob)
        yield Progress(z + 1, 2 * n, f"segmenting slice {z}")
    out = drawn.copy()
    method.near_labelled_slices(out, embeddings.image_hash)
    found = out.any(axis=(1, 2))
    free = candidates(np.flatnonzero(found), labelled, n)
    doubts = {}
    for i, z in enumerate(free, start=1):
        disagree = 0.0
        if found[z]:  # the decoder's plane against its redraw from boxes (what `segment` drew, if it redraws)
            boxed = drawn[z] if method.boxes else method.redraw(embeddings, z, plain[z])
            disagree = 1.0 - dice(boxed > 0, plain[z] > 0)
        doubts[z] = SliceDoubt(bool(found[z]), float(unsure[z]), disagree)
        yield Progress(n + round(n * i / len(free)), 2 * n, f"scoring slice {z}")
    return pick(doubts, labelled, count)


def _why(gap: int, doubt: SliceDoubt) -> str:
    parts = [f"{gap} slice{'s' if gap != 1 else ''} from the nearest labelled one"]
    if not doubt.found:
        parts.append("the model draws nothing here but is unsure" if doubt.unsure else "the model draws nothing here")
    else:
        parts.append(f"{doubt.unsure:.0%} of what it draws is uncertain")
        parts.append(f"its boxes redraw it with DSC {1 - doubt.disagree:.2f}")
    return "; ".join(parts)

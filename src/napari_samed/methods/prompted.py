"""Any method on one volume from flat prompts (the CLI's ``--box``, ``--box3d``, ``--point``; a cohort manifest's
cells): the one path of ``napari-samed segment`` and ``napari-samed apply``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import SamedError
from ..io.volume import Volume
from ..models.cache import VolumeEmbeddings
from ..tasks import Task
from .prompts import Prompt, check_prompts, group_prompts
from .zero_shot import Object3D, ZeroShot


def check_propagate(cls: type, propagate: bool) -> None:
    """`SamedError` for ``propagate`` with a method other than zero-shot."""
    if propagate and cls is not ZeroShot:
        raise SamedError(f"--propagate is for the zero-shot method; {cls.name} "
                         + ("segments every slice without prompts" if not cls.prompts else
                            "segments in 3D from clicks by itself" if cls.name == "promise" else
                            "segments the prompted slices only"))


def method_prompts(cls: type, boxes: Sequence[Sequence[int]] = (), boxes3d: Sequence[Sequence[int]] = (),
                   points: Sequence[Sequence[int]] = (), propagate: bool = False,
                   shape: tuple[int, int, int] | None = None) -> list[Prompt]:
    """The flat prompts as objects (`group_prompts`) for a method of class ``cls``; checked against a volume of
    ``shape`` (`check_prompts`: at least one) when the method takes prompts. `SamedError` for any problem."""
    check_propagate(cls, propagate)
    prompts = group_prompts(boxes, boxes3d, points, propagate=propagate)
    if cls.prompts:
        check_prompts(prompts, shape)
    return prompts


def volume_embeddings(method, volume: Volume, cache_dir: str | os.PathLike | None = None,
                      window: str | tuple | None = None) -> VolumeEmbeddings:
    """``volume``'s embeddings for ``method``: a trained one's as in its training (`TrainedMethod.embeddings`,
    which warns when ``window`` differs), else under ``window`` (default auto)."""
    if method.trained:
        return method.embeddings(volume, cache_dir, window)
    return VolumeEmbeddings(volume, method.backbone, window or "auto", cache_dir)


def segment_volume(method, embeddings: VolumeEmbeddings, prompts: list[Prompt]
                   ) -> Task[tuple[np.ndarray, list[Object3D]]]:
    """Task: ``method``'s label volume (z, y, x) from ``prompts``, and the `Object3D` of each object the
    zero-shot decoders propagated (where and why it stopped; none for the other methods)."""
    if isinstance(method, ZeroShot):
        return (yield from method.segment_reporting(embeddings, prompts))
    labels = yield from method.segment(embeddings, prompts)
    return labels, []


def made_by(method) -> str:
    """The method a label volume records as its maker: a trained one's name, else with its backbone's."""
    return method.name if method.trained else f"{method.name} {method.backbone.name}"

"""`InteractiveSession`: the headless state behind the Segment widget.

It owns the model, the embeddings and the result label volume of one image, with an undo stack. Computations
are `Task` generators that return masks without touching the labels, so a GUI runs them in a worker thread and
applies the result (`apply`) on its own thread.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from .errors import SamedError
from .io.volume import Volume, check_volume
from .methods.checkpoint import checkpoint_kind
from .methods.cotrain import CHECKPOINT_KIND as COTRAIN_KIND
from .methods.cotrain import CoTrain
from .methods.promise import Promise
from .methods.promise.method import CHECKPOINT_KIND as PROMISE_KIND
from .methods.prompts import ObjectPrompt3D, SlicePrompt, check_prompts
from .methods.propagation import propagate
from .methods.zero_shot import Object3D, ZeroShot
from .models import Backbone, VolumeEmbeddings, load_backbone
from .tasks import Progress, Task, relay

Masks = dict[int, np.ndarray]


class InteractiveSession:
    """Interactive zero-shot segmentation of one image into a label volume, object by object.

    Objects are numbered 1, 2, ...; segmenting a slice replaces the current object's mask on that slice and
    never changes another object's voxels.
    """

    def __init__(self, image: np.ndarray, cache_dir: str | os.PathLike | None = None,
                 spacing: tuple[float, float, float] | None = None):
        image = np.asarray(image)
        check_volume(image)
        self.image = image
        self.spacing = spacing
        self.promise: Promise | None = None
        self._promise: tuple[tuple, Promise] | None = None
        self.labels = np.zeros(image.shape, np.uint16)
        self.current_label = 1
        self.cache_dir = cache_dir
        self.embeddings: VolumeEmbeddings | None = None
        self._tuned: dict[tuple, Backbone] = {}
        self._undo: list[dict[int, np.ndarray]] = []

    # -- model and embeddings ------------------------------------------------------------------------------
    def configure(self, model: str = "lite-medsam", checkpoint: str | os.PathLike | None = None,
                  device: str = "auto", window: str | tuple[float, float] = "auto",
                  trained: str | os.PathLike | None = None, precision: str = "auto") -> VolumeEmbeddings:
        """Load the backbone (shared, see `load_backbone`; trained files once per session) and set up the
        embeddings.

        ``trained`` is a checkpoint trained on that backbone: a co-trained decoder (`CoTrain`) replaces the
        pretrained decoder; a ProMISe model (`Promise`) makes clicks segment in 3D (`segment_click_3d`).
        Slow: run it in a worker.
        """
        backbone = load_backbone(model, checkpoint, device, precision)
        key = (model, backbone.weights_id, str(backbone.device), backbone.precision)
        self.promise = None
        if trained:
            kind = checkpoint_kind(trained)
            if kind == PROMISE_KIND:
                if self._promise is None or self._promise[0] != (*key, str(trained)):
                    self._promise = ((*key, str(trained)), Promise.load(trained, backbone))
                self.promise = self._promise[1]
            elif kind == COTRAIN_KIND:
                tuned = (*key, str(trained))
                if tuned not in self._tuned:
                    self._tuned[tuned] = CoTrain.load(trained, backbone).backbone
                backbone = self._tuned[tuned]
            else:
                raise SamedError(f"{trained} is neither a co-trained decoder nor a ProMISe checkpoint"
                                 + (f" (it is a {kind} one)" if kind else ""))
        emb = self.embeddings
        if emb is None or emb.backbone is not backbone or emb.window_spec != window:
            volume = self.image if self.spacing is None else Volume(self.image, spacing=self.spacing)
            self.embeddings = VolumeEmbeddings(volume, backbone, window, self.cache_dir)
        return self.embeddings

    def embed(self, first: int = 0) -> Task[None]:
        """Embed every missing slice, ``first`` and its neighbours first."""
        emb = self._ready()
        for done, total in emb.compute(first=first):
            yield Progress(done, total, f"embedding, {done}/{total} slices, {emb.rate:.2f} slices/s")

    def _ready(self) -> VolumeEmbeddings:
        if self.embeddings is None:
            raise SamedError("no model loaded yet: call configure() first")
        return self.embeddings

    # -- segmentation ---------------------------------------------------------------------------------------
    def segment_slice(self, z: int, box: tuple[int, int, int, int] | None = None,
                      points: list[tuple[float, float]] = (), point_labels: list[int] = ()) -> Task[Masks]:
        """The current object's mask on slice ``z`` from a box and/or points."""
        emb = self._ready()
        prompt = SlicePrompt(int(z), self.current_label, box, list(points), list(point_labels))
        check_prompts([prompt], self.image.shape)
        if not emb.has(z):
            yield Progress(0, 1, f"embedding slice {z}")
        mask = ZeroShot(emb.backbone).segment_slice(emb, prompt)
        yield Progress(1, 1, f"slice {z}")
        return {int(z): mask}

    def segment_boxes(self, z: int, boxes: list[tuple[int, int, int, int]]) -> Task[dict[int, Masks]]:
        """Objects 1, 2, ... from the boxes on slice ``z`` in order, decoded as one batch: {label: {z: mask}}."""
        emb = self._ready()
        check_prompts([SlicePrompt(int(z), i, box) for i, box in enumerate(boxes, start=1)], self.image.shape)
        if not emb.has(z):
            yield Progress(0, 1, f"embedding slice {z}")
        masks = ZeroShot(emb.backbone).segment_boxes(emb, int(z), boxes)
        yield Progress(1, 1, f"slice {z}: {len(boxes)} boxes")
        return {i: {int(z): m} for i, m in enumerate(masks, start=1)}

    def segment_click_3d(self, z: int, points: list[tuple[float, float]], point_labels: list[int]) -> Task[Masks]:
        """The current object in 3D from clicks on slice ``z`` with the configured ProMISe model."""
        emb = self._ready()
        if self.promise is None:
            raise SamedError("no ProMISe model loaded: choose a ProMISe checkpoint as the trained model")
        prompt = SlicePrompt(int(z), 1, None, list(points), list(point_labels))
        labels = yield from self.promise.segment(emb, [prompt])
        return {zz: labels[zz] > 0 for zz in range(self.image.shape[0])}

    def propagate(self, z: int, box: tuple[int, int, int, int] | None = None) -> Task[Masks]:
        """Propagate the current object through the volume from slice ``z``.

        Starts from ``box`` when given, else from the object's mask already on slice ``z``.
        """
        emb = self._ready()
        z = int(z)
        if box is not None:
            start = yield from self.segment_slice(z, box)
            mask = start[z]
        elif 0 <= z < self.image.shape[0]:
            mask = self.labels[z] == self.current_label
        else:
            raise SamedError(f"slice {z} is outside the volume (0..{self.image.shape[0] - 1})")
        if not mask.any():
            raise SamedError(f"object {self.current_label} has no mask on slice {z} to propagate; draw a box first")
        masks = {z: mask}
        total = self.image.shape[0]
        for step in propagate(emb.backbone, emb, z, mask, (0, total - 1)):
            masks[step.z] = step.mask
            yield Progress(len(masks), total, f"propagating, slice {step.z}")
        yield Progress(total, total, f"propagated over {len(masks)} slices")
        return masks

    def segment_3d(self, prompts: list[SlicePrompt]) -> Task[Object3D]:
        """The current object through the volume from its prompts on one or more slices
        (`ZeroShot.segment_object`); its masks also cover, empty, the slices where the object was before and is
        not now, so that applying them replaces its earlier voxels everywhere. The prompted slices come first as a
        ``partial`` {label: masks}, to `apply` at once and `amend` with the whole result."""
        emb = self._ready()
        label = self.current_label
        result = yield from relay(ZeroShot(emb.backbone).segment_object(emb, ObjectPrompt3D(label, list(prompts))),
                                  lambda step: replace(step, partial=step.partial and {label: step.partial}))
        empty = np.zeros(self.image.shape[1:], bool)
        for z in np.flatnonzero((self.labels == label).any(axis=(1, 2))):
            result.masks.setdefault(int(z), empty)
        nz = self.image.shape[0]
        yield Progress(nz, nz, result.describe())
        return result

    # -- the label volume ------------------------------------------------------------------------------------
    def apply(self, masks: Masks, label: int | None = None) -> None:
        """Write masks as ``label`` (the current object): replace its voxels on those slices, keep others'."""
        self.apply_objects({self.current_label if label is None else label: masks})

    def apply_objects(self, objects: dict[int, Masks], amend: bool = False) -> None:
        """Write several objects' masks as one undo step. Each replaces its own voxels on its slices and never
        takes another object's voxels, except that a later object in ``objects`` paints over an earlier one
        (a lesion box after its organ's box). ``amend``: add to the last undo step instead (the rest of a result
        whose first part was applied already)."""
        saved: dict[int, np.ndarray] = self._undo.pop() if amend and self._undo else {}
        for z in sorted({z for masks in objects.values() for z in masks}):
            if z not in saved:
                saved[z] = self.labels[z].copy()
            plane = self.labels[z]
            plane[np.isin(plane, list(objects))] = 0
            free = plane == 0
            for label, masks in objects.items():
                if z in masks:
                    plane[masks[z] & free] = label
        self._undo.append(saved)

    def undo(self) -> bool:
        """Restore the slices the last `apply` changed; False when there is nothing to undo."""
        if not self._undo:
            return False
        for z, plane in self._undo.pop().items():
            self.labels[z] = plane
        return True

    def new_object(self) -> int:
        """Start the next object: one above the highest label in use (or the current one, if still empty)."""
        if (self.labels == self.current_label).any():
            self.current_label = int(self.labels.max()) + 1
        return self.current_label


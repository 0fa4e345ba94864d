"""`InteractiveSession`: the headless state behind the Segment widget.

It owns the model, the embeddings and the result label volume of one image, with a bounded undo history
(`History`). Computations are `Task` generators that return masks without touching the labels, so a GUI runs them
in a worker thread and applies the result (`apply`) on its own thread. Importing it is light: the model code (torch)
is imported where it runs, in the tasks, so that a GUI creating a session does not stall.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SamedError
from ..io.volume import Volume, check_volume
from ..methods.prompts import ObjectPrompt3D, SlicePrompt, check_prompts
from ..tasks import Progress, Task, relay
from .history import UNDO_LIMIT_BYTES, History

if TYPE_CHECKING:
    from ..methods.trained import TrainedMethod
    from ..methods.zero_shot import Object3D, ZeroShot
    from ..models import VolumeEmbeddings

Masks = dict[int, np.ndarray]


class InteractiveSession:
    """Interactive zero-shot segmentation of one image into a label volume, object by object.

    Objects are numbered 1, 2, ...; segmenting replaces the current object's mask on the slices it covers and
    never changes another object's voxels. A locked object cannot be segmented again, and its voxels act as
    negative prompts for the others (``avoid``). Undo keeps the changed voxels of each edit, the oldest dropped
    beyond ``undo_limit`` bytes.
    """

    def __init__(self, image: np.ndarray, cache_dir: str | os.PathLike | None = None,
                 spacing: tuple[float, float, float] | None = None, undo_limit: int = UNDO_LIMIT_BYTES):
        image = np.asarray(image)
        check_volume(image)
        self.image = image
        self.spacing = spacing
        self.trained: TrainedMethod | None = None
        self._trained: dict[tuple, TrainedMethod] = {}
        self._window_checked: set[tuple] = set()
        self.labels = np.zeros(image.shape, np.uint16)
        self.current_label = 1
        self.locked: set[int] = set()
        self.hidden: set[int] = set()  # objects a viewer does not show (kept with the session)
        self._coverage: dict[int, tuple[int, int, int]] | None = None  # `objects()` of the labels, until they change
        self.cache_dir = cache_dir
        self.embeddings: VolumeEmbeddings | None = None
        self.history = History(undo_limit)
        self.generation = 0  # counts the changes of ``labels``
        self._made: dict[int, tuple[int, dict[int, int], dict]] = {}  # label -> 3D result's (generation, origin, stops)

    # -- model and embeddings ------------------------------------------------------------------------------
    def configure(self, model: str = "lite-medsam", checkpoint: str | os.PathLike | None = None,
                  device: str = "auto", window: str | tuple[float, float] = "auto",
                  trained: str | os.PathLike | None = None, precision: str = "auto") -> VolumeEmbeddings:
        """Load the backbone (shared, see `load_backbone`; trained files once per session) and set up the
        embeddings.

        ``trained`` is a trained model file (`open_trained`) on that backbone; its ``interactive`` use decides
        what it does: "decoder" (co-trained) replaces the pretrained decoder, "click3d" (ProMISe) makes clicks
        segment in 3D (`segment_click_3d`). The image is then windowed as in its training; a different ``window``
        gives a warning, once. Slow: run it in a worker.
        """
        from ..methods.trained import open_trained
        from ..models import VolumeEmbeddings, load_backbone
        from ..models.preprocess import window_rule

        backbone = load_backbone(model, checkpoint, device, precision)
        self.trained = None
        if trained:
            key = (str(trained), os.stat(trained).st_mtime_ns if os.path.isfile(trained) else 0,
                   backbone.weights_id, str(backbone.device), backbone.precision)
            if key not in self._trained:
                method = open_trained(trained, backbone=backbone)
                if method.interactive is None:
                    raise SamedError(f"{trained} is a {method.what} model, which segments without prompts: use "
                                     f"the Few-shot widget or napari-samed segment --trained")
                self._trained[key] = method
            self.trained = self._trained[key]
            if (key, str(window)) not in self._window_checked:
                self._window_checked.add((key, str(window)))
                self.trained.window_for(self.image, window)
            window = self.trained.window
            if self.trained.interactive == "decoder":
                backbone = self.trained.backbone
        emb = self.embeddings
        if emb is None or emb.backbone is not backbone or emb.window_rule != window_rule(window, self.image):
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
        self.check_editable(self.current_label)
        prompt = SlicePrompt(int(z), self.current_label, box, list(points), list(point_labels))
        check_prompts([prompt], self.image.shape)
        if not emb.has(z):
            yield Progress(0, 1, f"embedding slice {z}")
        mask = _zero_shot(emb).segment_slice(emb, prompt, self.avoid(int(z)))
        yield Progress(1, 1, f"slice {z}")
        return {int(z): mask}

    def segment_boxes(self, z: int, boxes: list[tuple[int, int, int, int]],
                      labels: list[int] | None = None) -> Task[dict[int, Masks]]:
        """Objects ``labels`` (default 1, 2, ...) from the boxes on slice ``z`` in order, decoded as one batch:
        {label: {z: mask}}."""
        emb = self._ready()
        labels = list(labels or range(1, len(boxes) + 1))
        for label in labels:
            self.check_editable(label)
        check_prompts([SlicePrompt(int(z), i, box) for i, box in zip(labels, boxes, strict=True)], self.image.shape)
        if not emb.has(z):
            yield Progress(0, 1, f"embedding slice {z}")
        masks = _zero_shot(emb).segment_boxes(emb, int(z), boxes)
        yield Progress(1, 1, f"slice {z}: {len(boxes)} boxes")
        return {label: {int(z): m} for label, m in zip(labels, masks, strict=True)}

    def segment_click_3d(self, clicks: list[SlicePrompt]) -> Task[Masks]:
        """The current object in 3D from its clicks (one `SlicePrompt` of points per slice, the slice of the first
        click first) with the configured ProMISe model."""
        emb = self._ready()
        self.check_editable(self.current_label)
        if self.trained is None or self.trained.interactive != "click3d":
            raise SamedError("no ProMISe model loaded: choose a ProMISe checkpoint as the trained model")
        labels = yield from self.trained.segment(emb, [ObjectPrompt3D(1, list(clicks))])
        return {zz: labels[zz] > 0 for zz in range(self.image.shape[0])}

    def propagate(self, z: int, box: tuple[int, int, int, int] | None = None) -> Task[Masks]:
        """Propagate the current object through the volume from slice ``z``.

        Starts from ``box`` when given, else from the object's mask already on slice ``z``.
        """
        emb = self._ready()
        self.check_editable(self.current_label)
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
        from ..methods.propagation import propagate

        for step in propagate(emb.backbone, emb, z, mask, (0, total - 1), avoid=self.avoid()):
            masks[step.z] = step.mask
            yield Progress(len(masks), total, f"propagating, slice {step.z}")
        yield Progress(total, total, f"propagated over {len(masks)} slices")
        return masks

    def segment_3d(self, prompts: list[SlicePrompt], at: int | None = None) -> Task[Object3D]:
        """The current object through the volume from its ``prompts`` (`ZeroShot.segment_object`).

        An object without voxels is segmented from its prompts on every slice, those on slice ``at`` first (default:
        the first prompt's slice), then the others by their distance from it. An object with voxels is corrected
        from its prompts on slice ``at`` only: that slice is segmented again (clicks correct its mask there) and
        propagation from it replaces the object until it meets slices that agree. The result's ``touched``
        slices are what changed; they come first as a ``partial`` {label: masks}, to `apply` at once and `amend`
        with the whole result."""
        emb = self._ready()
        label = self.current_label
        self.check_editable(label)
        at = prompts[0].z if at is None else int(at)
        existing = self.object_3d(label)
        steps = [p for p in prompts if p.z == at]
        if not steps:
            raise SamedError(f"no prompts of object {label} on slice {at}")
        if existing is None:
            steps += sorted((p for p in prompts if p.z != at), key=lambda p: (abs(p.z - at), p.z))
        run = _zero_shot(emb).segment_object(emb, ObjectPrompt3D(label, steps), avoid=self.avoid(), existing=existing)
        result = yield from relay(run, lambda step: replace(step, partial=step.partial and {label: step.partial}))
        nz = self.image.shape[0]
        yield Progress(nz, nz, result.describe())
        return result

    def object_3d(self, label: int) -> Object3D | None:
        """Object ``label`` as it is in the labels (None without voxels), with where its masks came from when the
        labels have not changed since a 3D segmentation of it was applied."""
        from ..methods.zero_shot import Object3D

        zs = np.flatnonzero((self.labels == label).any(axis=(1, 2)))
        if not len(zs):
            return None
        obj = Object3D(label, {int(z): self.labels[z] == label for z in zs})
        made = self._made.get(label)
        if made is not None and made[0] == self.generation:
            obj.origin = {z: o for z, o in made[1].items() if z in obj.masks}
            obj.stops = dict(made[2])
        return obj

    # -- the label volume ------------------------------------------------------------------------------------
    def apply(self, masks: Masks, label: int | None = None) -> None:
        """Write masks as ``label`` (the current object): replace its voxels on those slices, keep others'."""
        self.apply_objects({self.current_label if label is None else label: masks})

    def apply_objects(self, objects: dict[int, Masks | Object3D], amend: bool = False) -> int:
        """Write several objects' masks as one undo step. Each replaces its own voxels on its slices and never
        takes another object's voxels, except that a later object in ``objects`` paints over an earlier one
        (a lesion box after its organ's box). An `Object3D` writes its ``touched`` slices, and the session
        remembers where its masks came from (`object_3d`). ``amend``: add to the last undo step instead (the
        rest of a result whose first part was applied already). Returns how many of the oldest undo steps were
        dropped to stay within the undo memory limit."""
        for label in objects:
            self.check_editable(label)
        made = {label: o for label, o in objects.items() if not isinstance(o, dict)}
        objects = {label: {z: o.masks[z] for z in o.touched} if label in made else o for label, o in objects.items()}
        step = self.history.begin(amend)
        for z in sorted({z for masks in objects.values() for z in masks}):
            plane = self.labels[z]
            before = plane.copy()
            plane[np.isin(plane, list(objects))] = 0
            free = plane == 0
            for label, masks in objects.items():
                if z in masks:
                    plane[masks[z] & free] = label
            self.history.record(step, z, before, plane)
        dropped = self.history.commit(step)
        self.labels_changed()
        for label, obj in made.items():
            self._made[label] = (self.generation, obj.origin, obj.stops)
        return dropped

    def undo(self) -> bool:
        """Restore the voxels the last edit changed; False when there is nothing to undo."""
        if not self.history.undo(self.labels):
            return False
        self.labels_changed()
        return True

    def labels_changed(self) -> None:
        """Say that ``labels`` changed (the session's own writes say it themselves; call it after writing them
        from outside: a restored file, painting in a viewer)."""
        self._coverage = None
        self.generation += 1

    def new_object(self) -> int:
        """Start the next object: one above the highest label in use (or the current one, if still empty and not
        locked)."""
        if (self.labels == self.current_label).any() or self.current_label in self.locked:
            self.current_label = max(int(self.labels.max()), *self.locked, self.current_label) + 1
        return self.current_label

    # -- objects ---------------------------------------------------------------------------------------------
    def objects(self) -> dict[int, tuple[int, int, int]]:
        """Each object in the label volume, the current one and the locked ones: {label: (first slice, last slice,
        slices)}; (-1, -1, 0) for an object without voxels. The volume is scanned once after each change of the
        labels (a whole CT volume takes a few hundred ms)."""
        if self._coverage is None:
            used = np.flatnonzero(self.labels.any(axis=(1, 2)))
            planes = self.labels[used]
            self._coverage = {}
            for label in set(np.unique(planes).tolist()) - {0}:
                zs = used[(planes == label).any(axis=(1, 2))]
                self._coverage[label] = (int(zs[0]), int(zs[-1]), len(zs))
        return {label: self._coverage.get(label, (-1, -1, 0))
                for label in sorted(self._coverage.keys() | {self.current_label} | self.locked)}

    def select(self, label: int) -> None:
        """Make ``label`` the current object: the next prompts and results are its."""
        if label < 1:
            raise SamedError(f"object labels start at 1; got {label}")
        self.current_label = int(label)

    def delete(self, label: int) -> int:
        """Remove an object's voxels (one undo step; returns how many old steps were dropped) and its lock."""
        self.locked.discard(label)
        self.hidden.discard(label)
        step = self.history.begin()
        for z in np.flatnonzero((self.labels == label).any(axis=(1, 2))):
            plane = self.labels[z]
            before = plane.copy()
            plane[plane == label] = 0
            self.history.record(step, int(z), before, plane)
        dropped = self.history.commit(step)
        self.labels_changed()
        return dropped

    def lock(self, label: int, locked: bool = True) -> None:
        """Lock an object (it is never segmented again or overwritten; its voxels act as negative prompts for the
        others) or unlock it."""
        (self.locked.add if locked else self.locked.discard)(label)

    def avoid(self, z: int | None = None) -> np.ndarray | None:
        """The voxels the current object must not take, on slice ``z`` or in the volume: the locked objects' (None
        when none is locked)."""
        others = self.locked - {self.current_label}
        if not others:
            return None
        return np.isin(self.labels if z is None else self.labels[z], list(others))

    def check_editable(self, label: int) -> None:
        """`SamedError` when object ``label`` is locked."""
        if label in self.locked:
            raise SamedError(f"object {label} is locked: unlock it to segment it again")


def _zero_shot(embeddings: VolumeEmbeddings) -> ZeroShot:
    from ..methods.zero_shot import ZeroShot

    return ZeroShot(embeddings.backbone)

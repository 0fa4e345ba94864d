"""What a prompt does: `plan` turns the prompts a viewer holds and the user's request into a `Plan` (a task over
the session and what to say of it), with no GUI in sight. The Segment widget reads its layers into `Prompts`,
runs the plan's task in a worker and applies its result."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Literal

from ..errors import SamedError
from ..methods.prompts import SlicePrompt
from ..tasks import Task
from .session import InteractiveSession

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Prompts:
    """A viewer's prompts in voxel indices, in drawing order: ``boxes`` as (z, object, box), ``points`` as
    (z, y, x, polarity 1/0, object). An object of None (a prompt layer without objects) belongs to every object."""

    boxes: list[tuple[int, int | None, Box]] = field(default_factory=list)
    points: list[tuple[int, float, float, int, int | None]] = field(default_factory=list)

    def slice_boxes(self, z: int, label: int | None = None) -> list[Box]:
        """The boxes on slice ``z`` (of object ``label``, if given)."""
        return [box for bz, own, box in self.boxes if bz == z and _mine(own, label)]

    def slice_prompt(self, z: int, label: int) -> SlicePrompt:
        """Object ``label``'s latest box and all its points on slice ``z``."""
        boxes = self.slice_boxes(z, label)
        clicks = [(y, x, p) for pz, y, x, p, own in self.points if pz == z and _mine(own, label)]
        return SlicePrompt(z, label, boxes[-1] if boxes else None, [(y, x) for y, x, _ in clicks],
                           [p for *_, p in clicks])

    def object_prompts(self, label: int) -> list[SlicePrompt]:
        """Object ``label``'s prompts on every slice that has some."""
        zs = {z for z, own, _ in self.boxes if _mine(own, label)} | {p[0] for p in self.points if _mine(p[4], label)}
        return [self.slice_prompt(z, label) for z in sorted(zs)]

    def object_clicks(self, label: int) -> list[SlicePrompt]:
        """Object ``label``'s points (no boxes), one prompt per slice, the slices in the order of their first point."""
        zs = dict.fromkeys(z for z, *_, own in self.points if _mine(own, label))
        return [replace(self.slice_prompt(z, label), box=None) for z in zs]

    def box_objects(self, z: int) -> list[int]:
        """The object of each box on slice ``z``: their own when they differ, else 1, 2, ... in drawing order."""
        labels = [own for bz, own, _ in self.boxes if bz == z]
        return labels if None not in labels and len(set(labels)) == len(labels) else list(range(1, len(labels) + 1))


@dataclass(frozen=True)
class Request:
    """What the user asked on slice ``z``: segment (in 3D or the slice only), propagate or embed; ``trained_use``
    is the chosen trained model's interactive use ("decoder", "click3d") or None."""

    action: Literal["segment", "propagate", "embed"]
    z: int
    in3d: bool = True
    trained_use: str | None = None


@dataclass
class Plan:
    """A task over the session, its step count and description; ``apply``: its result is {object: masks or
    `Object3D`} for the labels; ``box_objects``: the objects given to the slice's boxes."""

    total: int
    description: str
    task: Task
    apply: bool = True
    box_objects: list[int] | None = None


def plan(session: InteractiveSession, prompts: Prompts, request: Request) -> Plan:
    """Decide what ``request`` does with ``prompts`` (`SamedError` with what to do when it cannot)."""
    return {"segment": _segment, "propagate": _propagate, "embed": _embed}[request.action](session, prompts, request)


def _segment(session: InteractiveSession, prompts: Prompts, request: Request) -> Plan:
    """The current object from the slice's prompts: in 3D (its first result from its prompts on every slice, then
    corrections from this slice), or on the slice only. A co-trained decoder segments several boxes on the slice
    together, one object each; a ProMISe model segments the object's clicks on every slice in 3D."""
    z, label, depth = request.z, session.current_label, session.image.shape[0]
    if request.trained_use == "decoder" and len(prompts.slice_boxes(z)) > 1:
        boxes, labels = prompts.slice_boxes(z), prompts.box_objects(z)
        return Plan(1, f"segmenting {len(boxes)} boxes on slice {z}", session.segment_boxes(z, boxes, labels),
                    box_objects=labels)
    session.check_editable(label)
    prompt = prompts.slice_prompt(z, label)
    if request.trained_use == "click3d":
        clicks = prompts.object_clicks(label)
        if not any(p for step in clicks for p in step.point_labels):
            raise SamedError(f"ProMISe segments from clicks: add a positive point inside object {label}")
        count = sum(len(step.points) for step in clicks)
        return Plan(1, f"ProMISe 3D from {count} click{'s' * (count > 1)}",
                    one_object(session.segment_click_3d(clicks), label))
    if prompt.box is None and not prompt.points:
        raise SamedError(f"no prompts on slice {z}: draw a box or click points first")
    if request.in3d:
        return Plan(depth, f"object {label} in 3D", one_object(session.segment_3d(prompts.object_prompts(label), z),
                                                               label))
    task = session.segment_slice(z, prompt.box, prompt.points, prompt.point_labels)
    return Plan(1, f"segmenting slice {z}", one_object(task, label))


def _propagate(session: InteractiveSession, prompts: Prompts, request: Request) -> Plan:
    """The current object through the volume from its mask on the slice, else from its box there."""
    label, z = session.current_label, request.z
    session.check_editable(label)
    box = None
    if not (session.labels[z] == label).any():
        box = prompts.slice_prompt(z, label).box
        if box is None:
            raise SamedError(f"nothing to propagate on slice {z}: draw a box or segment the slice first")
    return Plan(session.image.shape[0], "propagating", one_object(session.propagate(z, box), label))


def _embed(session: InteractiveSession, prompts: Prompts, request: Request) -> Plan:
    """Every slice's embedding, the current slice first."""
    return Plan(session.image.shape[0], "embedding", session.embed(first=request.z), apply=False)


def one_object(task: Task, label: int) -> Generator:
    """A task returning one object's masks, as {label: masks}."""
    return {label: (yield from task)}


def _mine(own: int | None, label: int | None) -> bool:
    return label is None or own is None or own == label

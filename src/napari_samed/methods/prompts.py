"""Prompts in the plugin's (z, y, x) voxel coordinates: one object per entry, each with its label value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import SamedError

#: The prompt kinds of the CLI, the comparison and the papers: a box on every slice, a 3D box, one click; and
#: one click or one box on a single slice, propagated through the volume.
PROMPT_KINDS = ("box", "box3d", "click", "click3d", "onebox3d")


@dataclass
class SlicePrompt:
    """One object on slice ``z``: an optional box ``(y0, x0, y1, x1)`` and points ``(y, x)``, 1 = positive."""

    z: int
    label: int
    box: tuple[int, int, int, int] | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    point_labels: list[int] = field(default_factory=list)

    def _points(self, positive: bool) -> np.ndarray:
        chosen = [p for p, lab in zip(self.points, self.point_labels, strict=True) if bool(lab) == positive]
        return np.array(chosen, dtype=float).reshape(-1, 2)

    @property
    def positives(self) -> np.ndarray:
        return self._points(True)

    @property
    def negatives(self) -> np.ndarray:
        return self._points(False)


@dataclass
class BoxPrompt3D:
    """One object inside the 3D box ``(z0, y0, x0, z1, y1, x1)``, segmented from its middle slice outward."""

    box: tuple[int, int, int, int, int, int]
    label: int


@dataclass
class ObjectPrompt3D:
    """One object prompted on one or more slices, segmented through the volume. ``slices`` are steps, in the order
    the user gave them (a slice may come back: each step holds every prompt of its slice so far); each step
    segments its slice from its prompts and propagates from there (`ZeroShot.segment_object`)."""

    label: int
    slices: list[SlicePrompt]


Prompt = SlicePrompt | BoxPrompt3D | ObjectPrompt3D

#: The text of each flat prompt kind (the CLI's ``--box``, ``--box3d``, ``--point``; a cohort manifest's columns):
#: its fewest and most integers, and its form.
PROMPT_TEXT = {"box": (5, 6, "a box is Z,Y0,X0,Y1,X1 or Z,Y0,X0,Y1,X1,LABEL (integers)"),
               "box3d": (6, 6, "a 3D box is Z0,Y0,X0,Z1,Y1,X1 (integers)"),
               "point": (3, 5, "a point is Z,Y,X[,POLARITY[,LABEL]] (integers; POLARITY 1 positive, 0 negative)")}


def parse_prompt(kind: str, text: str) -> tuple[int, ...]:
    """One flat prompt of ``kind`` (a `PROMPT_TEXT` key) from its comma-separated text, as `group_prompts` takes
    it; `SamedError` in the kind's form."""
    low, high, form = PROMPT_TEXT[kind]
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not low <= len(values) <= high:
        raise SamedError(f"{form}; got {text!r}")
    return values


def _box_contains(box: Sequence[int], yx: Sequence[float]) -> bool:
    y0, x0, y1, x1 = box
    return y0 <= yx[0] <= y1 and x0 <= yx[1] <= x1


def _box_distance(box: Sequence[int], yx: Sequence[float]) -> float:
    y0, x0, y1, x1 = box
    return float(np.hypot(max(y0 - yx[0], 0, yx[0] - y1), max(x0 - yx[1], 0, yx[1] - x1)))


def group_prompts(boxes: Sequence[Sequence[int]] = (), boxes3d: Sequence[Sequence[int]] = (),
                  points: Sequence[Sequence[float]] = (), propagate: bool = False) -> list[Prompt]:
    """Turn flat prompt lists (as the CLI takes them) into objects with label values.

    A 2D box ``(z, y0, x0, y1, x1[, label])`` with a label belongs to that object; without one it is an object
    of its own. Each 3D box is an object. A point ``(z, y, x[, polarity[, label]])`` (polarity 1 positive,
    0 negative) with a label joins that object's prompt on its slice; without one it joins the box on its
    slice that holds it (else the nearest box there), and the unlabelled points of a slice without boxes form
    one object. Objects without a label get the lowest values not given, in that order.
    ``propagate``: each object becomes one `ObjectPrompt3D`, segmented through the volume in steps: the slice of
    each of its boxes, then of each of its points, in the order given (one step for prompts in a row on one
    slice), each step with every prompt given so far on its slice.
    """
    given = {int(b[5]) for b in boxes if len(b) == 6} | {int(p[4]) for p in points if len(p) == 5}
    if any(v < 1 for v in given):
        raise SamedError(f"object labels start at 1; got {min(given)}")
    free = (v for v in range(1, 2**16) if v not in given)
    objects: list[Prompt] = []
    labelled: dict[tuple[int, int], SlicePrompt] = {}  # (label, z) -> that object's prompt on slice z

    def on(label: int, z: int) -> SlicePrompt:
        if (label, z) not in labelled:
            labelled[label, z] = SlicePrompt(z, label)
            objects.append(labelled[label, z])
        return labelled[label, z]

    steps: list[SlicePrompt] = []  # each box and point's slice prompt as it stood once the box or point was added

    def step(prompt: SlicePrompt) -> None:
        steps.append(replace(prompt, points=list(prompt.points), point_labels=list(prompt.point_labels)))

    for b in boxes:
        z, y0, x0, y1, x1 = (int(v) for v in b[:5])
        box = (min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1))
        if len(b) == 6 and on(int(b[5]), z).box is None:
            on(int(b[5]), z).box = box
            step(on(int(b[5]), z))
        else:
            objects.append(SlicePrompt(z, int(b[5]) if len(b) == 6 else next(free), box))
            step(objects[-1])
    for z0, y0, x0, z1, y1, x1 in (tuple(int(v) for v in b) for b in boxes3d):
        box = (min(z0, z1), min(y0, y1), min(x0, x1), max(z0, z1), max(y0, y1), max(x0, x1))
        objects.append(BoxPrompt3D(box, next(free)))
    loose: dict[int, SlicePrompt] = {}
    for point in points:
        if len(point) not in (3, 4, 5):
            raise SamedError(f"a point is Z,Y,X[,POLARITY[,LABEL]]; got {','.join(map(str, point))}")
        z, y, x = int(point[0]), float(point[1]), float(point[2])
        positive = int(point[3]) if len(point) >= 4 else 1
        if positive not in (0, 1):
            raise SamedError(f"a point's polarity is 1 (positive) or 0 (negative); got {positive}")
        on_slice = [o for o in objects if isinstance(o, SlicePrompt) and o.z == z and o.box is not None]
        if len(point) == 5:
            target = on(int(point[4]), z)
        elif on_slice:
            target = next((o for o in on_slice if _box_contains(o.box, (y, x))), None)
            target = target or min(on_slice, key=lambda o: _box_distance(o.box, (y, x)))
        else:
            if z not in loose:
                loose[z] = SlicePrompt(z, next(free))
                objects.append(loose[z])
            target = loose[z]
        target.points.append((y, x))
        target.point_labels.append(positive)
        step(target)
    if propagate:
        by_label: dict[int, ObjectPrompt3D] = {}
        for prompt in steps:
            obj = by_label.setdefault(prompt.label, ObjectPrompt3D(prompt.label, []))
            if obj.slices and obj.slices[-1].z == prompt.z:
                obj.slices[-1] = prompt  # prompts given one after another on one slice are one step
            else:
                obj.slices.append(prompt)
        objects = [o for o in objects if isinstance(o, BoxPrompt3D)] + list(by_label.values())
    return objects


def check_prompts(prompts: Sequence[Prompt], shape: tuple[int, int, int]) -> None:
    """`SamedError` for prompts outside the volume, inverted boxes or objects with no positive prompt (a 3D object
    may have slices with negative points only: they correct it where it is)."""
    nz, ny, nx = shape
    if not prompts:
        raise SamedError("no prompts: give at least one box, 3D box or point")
    for obj in prompts:
        if isinstance(obj, ObjectPrompt3D) and not obj.slices:
            raise SamedError(f"object {obj.label} has no prompt on any slice")
    steps = {id(s) for o in prompts if isinstance(o, ObjectPrompt3D) for s in o.slices}
    for obj in [s for o in prompts for s in (o.slices if isinstance(o, ObjectPrompt3D) else [o])]:
        if isinstance(obj, BoxPrompt3D):
            z0, y0, x0, z1, y1, x1 = obj.box
            if not (0 <= z0 <= z1 < nz and 0 <= y0 <= y1 < ny and 0 <= x0 <= x1 < nx):
                raise SamedError(f"3D box {obj.box} lies outside the volume of shape {shape} (z, y, x)")
            continue
        if not 0 <= obj.z < nz:
            raise SamedError(f"slice {obj.z} is outside the volume (0..{nz - 1})")
        if obj.box is not None:
            y0, x0, y1, x1 = obj.box
            if not (0 <= y0 <= y1 < ny and 0 <= x0 <= x1 < nx):
                raise SamedError(f"box {obj.box} on slice {obj.z} lies outside the slice of shape {(ny, nx)}")
        for y, x in obj.points:
            if not (0 <= y < ny and 0 <= x < nx):
                raise SamedError(f"point ({obj.z}, {y:g}, {x:g}) lies outside the volume of shape {shape}")
        if obj.box is None and not len(obj.positives) and id(obj) not in steps:  # a 3D object's may correct it
            raise SamedError(f"the object on slice {obj.z} has only negative points; add a positive point or a box")

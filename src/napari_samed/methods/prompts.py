"""Prompts in the plugin's (z, y, x) voxel coordinates: one object per entry, each with its label value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import SamedError


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


Prompt = SlicePrompt | BoxPrompt3D


def _box_contains(box: Sequence[int], yx: Sequence[float]) -> bool:
    y0, x0, y1, x1 = box
    return y0 <= yx[0] <= y1 and x0 <= yx[1] <= x1


def _box_distance(box: Sequence[int], yx: Sequence[float]) -> float:
    y0, x0, y1, x1 = box
    return float(np.hypot(max(y0 - yx[0], 0, yx[0] - y1), max(x0 - yx[1], 0, yx[1] - x1)))


def group_prompts(boxes: Sequence[Sequence[int]] = (), boxes3d: Sequence[Sequence[int]] = (),
                  points: Sequence[Sequence[float]] = ()) -> list[Prompt]:
    """Turn flat prompt lists (as the CLI takes them) into objects with label values 1, 2, ...

    Each 2D box ``(z, y0, x0, y1, x1)`` is an object, then each 3D box. A point ``(z, y, x[, label])`` joins the
    box on its slice that holds it (else the nearest box on that slice); the points of a slice without boxes
    form one object of their own. Labels follow that order.
    """
    objects: list[Prompt] = []
    for z, y0, x0, y1, x1 in (tuple(int(v) for v in b) for b in boxes):
        objects.append(SlicePrompt(z, len(objects) + 1, (min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1))))
    for z0, y0, x0, z1, y1, x1 in (tuple(int(v) for v in b) for b in boxes3d):
        box = (min(z0, z1), min(y0, y1), min(x0, x1), max(z0, z1), max(y0, y1), max(x0, x1))
        objects.append(BoxPrompt3D(box, len(objects) + 1))
    loose: dict[int, SlicePrompt] = {}
    for point in points:
        if len(point) not in (3, 4):
            raise SamedError(f"a point is Z,Y,X or Z,Y,X,LABEL; got {','.join(map(str, point))}")
        z, y, x = int(point[0]), float(point[1]), float(point[2])
        positive = int(point[3]) if len(point) == 4 else 1
        if positive not in (0, 1):
            raise SamedError(f"a point's label is 1 (positive) or 0 (negative); got {positive}")
        on_slice = [o for o in objects if isinstance(o, SlicePrompt) and o.z == z and o.box is not None]
        if on_slice:
            target = next((o for o in on_slice if _box_contains(o.box, (y, x))), None)
            target = target or min(on_slice, key=lambda o: _box_distance(o.box, (y, x)))
        else:
            if z not in loose:
                loose[z] = SlicePrompt(z, len(objects) + 1)
                objects.append(loose[z])
            target = loose[z]
        target.points.append((y, x))
        target.point_labels.append(positive)
    return objects


def check_prompts(prompts: Sequence[Prompt], shape: tuple[int, int, int]) -> None:
    """`SamedError` for prompts outside the volume, inverted boxes or objects with no positive prompt."""
    nz, ny, nx = shape
    if not prompts:
        raise SamedError("no prompts: give at least one box, 3D box or point")
    for obj in prompts:
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
        if obj.box is None and not len(obj.positives):
            raise SamedError(f"the object on slice {obj.z} has only negative points; add a positive point or a box")

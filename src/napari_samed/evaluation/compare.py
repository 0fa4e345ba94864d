"""Several methods on the same volume and prompts, scored against a reference label.

The headless core of the Compare widget, ``napari-samed benchmark --data`` and ``napari-samed demo --headless``:
method slots (`MethodSlot`), loading them with errors kept per slot (`load_slots`), running them with shared
embeddings (`run_slots`), simulated prompts (`simulate_prompts`), metric rows (`metrics_table`) and CSV.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import SamedError
from ..io.volume import Volume
from ..masks import deepest_point, mask_bbox
from ..methods.base import get_method
from ..methods.prompts import BoxPrompt3D, ObjectPrompt3D, Prompt, SlicePrompt
from ..models import DEFAULT_BACKBONE, VolumeEmbeddings, get_spec, load_backbone, resolve_window
from ..tasks import Progress, Task, relay
from .metrics import evaluate_masks, per_slice_dsc

METRICS = ("dsc", "iou", "nsd", "assd", "hd95")
COLUMNS = ("method", "scope", *METRICS, "seconds", "error")


@dataclass(frozen=True)
class MethodSlot:
    """One method to compare: untrained methods take a backbone ``model`` (and its weights file ``checkpoint``
    where it is not bundled), trained ones their own ``checkpoint``. ``prompt`` is the prompt kind it gets
    (None: no prompts, or not chosen yet)."""

    method: str
    model: str = DEFAULT_BACKBONE
    checkpoint: Path | None = None
    prompt: str | None = None

    @property
    def trained(self) -> bool:
        return bool(get_method(self.method).trained)

    @property
    def name(self) -> str:
        base = self.method if self.trained else f"{self.method} {self.model}"
        return f"{base} ({self.prompt})" if self.prompt else base

    def load(self, device: str = "auto", precision: str = "auto"):
        """The slot's method: a trained one from its checkpoint (``precision`` as in `open_backbone`), else on its
        backbone (shared with other slots, `load_backbone`); `SamedError` when it cannot be loaded."""
        cls = get_method(self.method)
        if not cls.trained:
            return cls(load_backbone(self.model, self.checkpoint, device, precision))
        if self.checkpoint is None:
            raise SamedError(f"{self.method} needs its trained checkpoint file")
        return cls.open(self.checkpoint, device, precision)


def parse_methods(text: str) -> list[MethodSlot]:
    """``zero-shot:lite-medsam,zero-shot:sam-vit-b=WEIGHTS,cotrain:CKPT,fewshot:CKPT,promise:CKPT`` -> slots."""
    slots = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        method, _, rest = item.partition(":")
        trained = get_method(method).trained
        if trained:
            if not rest:
                raise SamedError(f"method {method} needs its trained checkpoint: {method}:CKPT")
            slots.append(MethodSlot(method, checkpoint=Path(rest)))
        else:
            model, _, weights = (rest or DEFAULT_BACKBONE).partition("=")
            get_spec(model)
            slots.append(MethodSlot(method, model, Path(weights) if weights else None))
    if not slots:
        raise SamedError("no methods given: e.g. --methods zero-shot:lite-medsam,fewshot:CKPT")
    return slots


def with_prompts(slots: Sequence[MethodSlot], available: Sequence[str], kinds: Sequence[str] | None = None,
                 first_only: bool = False) -> list[MethodSlot]:
    """Each slot once per prompt kind it understands among ``available`` (and ``kinds``, when given); only the
    preferred one with ``first_only``. A slot that can take none of them is kept with its first kind, so that
    running it reports what it lacks; few-shot (no prompts) stays as it is."""
    out = []
    for slot in slots:
        understood = get_method(slot.method).prompts
        if not understood:
            out.append(slot)
            continue
        usable = [k for k in understood if k in available and (kinds is None or k in kinds)] or [understood[0]]
        out += [replace(slot, prompt=k) for k in usable[:1 if first_only else None]]
    return out


@dataclass
class SlotResult:
    """A slot's label volume, or the error that stopped it; its run time in seconds (embedding included); a note
    for the user (a trained method's window)."""

    labels: np.ndarray | None = None
    error: str | None = None
    seconds: float = 0.0
    note: str | None = None


def load_slots(slots: Sequence[MethodSlot], device: str = "auto", precision: str = "auto") -> dict[MethodSlot, object]:
    """The method of each slot, or the `SamedError` that prevented loading it (a missing checkpoint, ...).
    Slots share backbones (`load_backbone`); ``precision`` as in `open_backbone` for trained slots."""
    methods = {}
    for slot in dict.fromkeys(replace(s, prompt=None) for s in slots):
        try:
            methods[slot] = slot.load(device, precision)
        except SamedError as exc:
            methods[slot] = exc
    return {s: methods[replace(s, prompt=None)] for s in slots}


def run_slots(data: np.ndarray, spacing: Sequence[float], prompts: dict[str, list[Prompt]],
              methods: dict[MethodSlot, object], window: str | tuple | None = "auto",
              cache_dir: str | os.PathLike | None | bool = None) -> Task[dict[str, SlotResult]]:
    """Task: each slot's labels (z, y, x) by slot name, or its error; the others run on after a failure.

    ``prompts`` maps a prompt kind to its objects; a slot gets those of its kind. ``window`` is for the
    untrained methods: a trained one uses the window it was trained with, and its result's ``note`` says so when
    ``window`` differs (`TrainedMethod.window_note`). Slots
    whose backbones have the same weights and precision and whose windows agree share one `VolumeEmbeddings`
    (and the on-disk cache).
    """
    volume = Volume(data, spacing=tuple(spacing))
    shared: dict[tuple, VolumeEmbeddings] = {}
    results: dict[str, SlotResult] = {}
    n = len(methods)
    for i, (slot, method) in enumerate(methods.items()):
        yield Progress(100 * i, 100 * n, f"{slot.name}: starting")
        start = time.perf_counter()
        try:
            if isinstance(method, SamedError):
                raise method
            given = prompts.get(slot.prompt, []) if slot.prompt else []
            if slot.prompt and not given:
                raise SamedError(f"{slot.method} takes {slot.prompt} prompts; none were given")
            note = method.window_note(data, window) if slot.trained else None
            rule = method.window if slot.trained else window
            backbone = method.backbone
            key = (backbone.name, backbone.weights_id, backbone.precision, resolve_window(rule, data))
            if key not in shared:
                shared[key] = VolumeEmbeddings(volume, backbone, rule, cache_dir)
            task = method.segment(shared[key], given)
            labels = yield from relay(task, lambda step, i=i, slot=slot: Progress(
                100 * i + 100 * step.done // max(step.total, 1), 100 * n, f"{slot.name}: {step.message}"))
            results[slot.name] = SlotResult(labels, seconds=time.perf_counter() - start, note=note)
        except SamedError as exc:
            results[slot.name] = SlotResult(error=str(exc), seconds=time.perf_counter() - start)
    yield Progress(100 * n, 100 * n, "done")
    return results


def simulate_prompts(reference: np.ndarray, spacing: Sequence[float]) -> dict[str, list[Prompt]]:
    """Prompts as the papers simulate them from a label volume (any non-zero voxel is the object).

    ``box``: the bounding box of the object on each slice where it occurs; ``box3d``: the 3D bounding box of each
    connected component; ``click``: one positive click per component at its deepest point (largest distance
    to the background, in mm with ``spacing``); ``click3d``: that click propagated through the volume;
    ``onebox3d``: the component's box on its largest slice, propagated through the volume.
    """
    mask = np.asarray(reference) != 0
    if not mask.any():
        raise SamedError("the reference label is empty: no prompts can be simulated from it")
    boxes: list[Prompt] = [SlicePrompt(int(z), 1, mask_bbox(mask[z])) for z in np.flatnonzero(mask.any(axis=(1, 2)))]
    components, count = ndimage.label(mask)
    boxes3d: list[Prompt] = []
    clicks: list[Prompt] = []
    clicks3d: list[Prompt] = []
    onebox3d: list[Prompt] = []
    for label, box in enumerate(ndimage.find_objects(components), start=1):
        zs, ys, xs = box
        boxes3d.append(BoxPrompt3D((zs.start, ys.start, xs.start, zs.stop - 1, ys.stop - 1, xs.stop - 1), label))
        z, y, x = deepest_point(components == label, spacing)
        clicks.append(SlicePrompt(int(z), label, points=[(float(y), float(x))], point_labels=[1]))
        clicks3d.append(ObjectPrompt3D(label, [clicks[-1]]))
        own = components[box] == label
        largest = int(own.sum(axis=(1, 2)).argmax())
        y0, x0, y1, x1 = mask_bbox(own[largest])
        box2d = (ys.start + y0, xs.start + x0, ys.start + y1, xs.start + x1)
        onebox3d.append(ObjectPrompt3D(label, [SlicePrompt(zs.start + largest, label, box2d)]))
    return {"box": boxes, "box3d": boxes3d, "click": clicks, "click3d": clicks3d, "onebox3d": onebox3d}


def check_reference(reference: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The reference as a boolean volume; `SamedError` when its shape differs from the image's or it is empty."""
    if tuple(reference.shape) != tuple(shape):
        raise SamedError(f"the reference has shape {tuple(reference.shape)}; the image is {tuple(shape)}")
    mask = np.asarray(reference) != 0
    if not mask.any():
        raise SamedError("the reference label is empty: nothing to compare against")
    return mask


def metrics_table(results: dict[str, SlotResult], reference: np.ndarray, spacing: Sequence[float],
                  tolerance: float = 1.0) -> list[dict]:
    """One row per method: DSC, IoU, NSD (``tolerance`` in mm), ASSD and HD95 (mm) of its non-zero voxels
    against the reference's over the volume; the error instead where it failed."""
    ref = check_reference(reference, next((r.labels.shape for r in results.values() if r.labels is not None),
                                          reference.shape))
    rows = []
    for name, result in results.items():
        row = _row(name, result, "volume")
        if result.labels is not None:
            row.update(evaluate_masks(result.labels != 0, ref, spacing, tolerance))
        rows.append(row)
    return rows


def slice_table(results: dict[str, SlotResult], reference: np.ndarray, spacing: Sequence[float], tolerance: float,
                z: int) -> list[dict]:
    """`metrics_table` on slice ``z``, reading that slice only (the volumes were checked by `metrics_table`)."""
    ref = np.asarray(reference[z]) != 0
    rows = []
    for name, result in results.items():
        row = _row(name, result, f"slice {z}")
        if result.labels is not None and ref.any():
            row.update(evaluate_masks(np.asarray(result.labels[z]) != 0, ref, list(spacing)[1:], tolerance))
        elif result.labels is not None:
            row["error"] = f"the reference is empty on slice {z}"
        rows.append(row)
    return rows


def dsc_curves(results: dict[str, SlotResult], reference: np.ndarray) -> dict[str, np.ndarray]:
    """Each result's DSC on every slice (`per_slice_dsc`)."""
    ref = np.asarray(reference) != 0
    return {name: per_slice_dsc(r.labels != 0, ref) for name, r in results.items() if r.labels is not None}


def _row(name: str, result: SlotResult, scope: str) -> dict:
    return {"method": name, "scope": scope, "seconds": round(result.seconds, 2), "error": result.error}


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """The metric rows as CSV (empty cells for undefined values)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return path

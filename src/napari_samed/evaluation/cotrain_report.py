"""The co-training paper's Table 1 on a user's data: untouched, single-prompt and co-trained decoders.

Both fine-tuned decoders train on the training split; every row is scored on the test split's slices with the
same jittered boxes (seeded), per structure: IoU, DSC and NSD at a tolerance of 1 pixel, averaged over slices.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..masks import mask_bbox
from ..methods.cotrain import CoTrain, Jitter, perturb_box
from ..models.backbone import Backbone
from ..tasks import Progress, Task, relay
from ..training.slices import SliceSplits, TrainingSlice
from .metrics import evaluate_masks

ROWS = {"untouched": "untouched model", "single": "single prompt", "cotrain": "co-train"}
METRICS = ("iou", "dsc", "nsd")
OVERLAYS = 4


def jittered_boxes(slices: Sequence[TrainingSlice], method: CoTrain, seed: int) -> list[list[tuple]]:
    """One jittered box per structure present on each slice (the training jitter), fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    jitter = [method.jitter[s.name] for s in method.structures]
    return [[perturb_box(mask_bbox(s.masks[i]), s.masks.shape[1:], jitter[i], rng) for i in s.present()]
            for s in slices]


def score(method: CoTrain, slices: Sequence[TrainingSlice], boxes: list) -> tuple[dict, list[np.ndarray]]:
    """Mean IoU, DSC and NSD (1 pixel) per structure name, and each slice's predicted masks."""
    per = {s.name: {m: [] for m in METRICS} for s in method.structures}
    predictions = []
    for sample, slice_boxes in zip(slices, boxes, strict=True):
        pred = method.predict(sample, slice_boxes)
        predictions.append(pred)
        for mask, i in zip(pred, sample.present(), strict=True):
            result = evaluate_masks(mask, sample.masks[i], tolerance=1.0)
            for m in METRICS:
                per[method.structures[i].name][m].append(result[m])
    return {name: {m: float(np.mean(v)) if v else float("nan") for m, v in ms.items()} for name, ms in per.items()}, \
        predictions


def write_tables(results: dict[str, dict], structures: Sequence[str], out: Path, note: str) -> tuple[Path, Path]:
    """``table1.md`` (percent IoU and DSC, NSD as a fraction, best per column in bold) and ``table1.csv``."""
    columns = [(s, m) for s in structures for m in METRICS]
    best = {c: max(results[r][c[0]][c[1]] for r in results) for c in columns}

    def cell(row: str, c: tuple[str, str]) -> str:
        v = results[row][c[0]][c[1]]
        text = f"{v:.3f}" if c[1] == "nsd" else f"{100 * v:.1f}"
        return f"**{text}**" if v == best[c] else text

    titles = {"iou": "IoU (%)", "dsc": "DSC (%)", "nsd": "NSD"}
    header = "| | " + " | ".join(f"{s} {titles[m]}" for s, m in columns) + " |"
    lines = ["# Co-training: Table 1", "", note, "", header, "|---" * (len(columns) + 1) + "|"]
    lines += ["| " + ROWS[r] + " | " + " | ".join(cell(r, c) for c in columns) + " |" for r in results]
    md = out / "table1.md"
    md.write_text("\n".join(lines) + "\n")
    path = out / "table1.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["method", *(f"{s}_{m}" for s, m in columns)])
        for r in results:
            writer.writerow([r, *(f"{results[r][s][m]:.4f}" for s, m in columns)])
    return md, path


def write_overlays(slices: Sequence[TrainingSlice], boxes: list, predictions: dict[str, list[np.ndarray]],
                   structures: Sequence[str], out: Path, count: int = OVERLAYS) -> list[Path]:
    """PNGs of a few test slices holding every structure: reference, then each row's masks, boxes drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    full = [i for i, s in enumerate(slices) if len(s.present()) == len(structures)] or list(range(len(slices)))
    picks = [full[round(j)] for j in np.linspace(0, len(full) - 1, min(count, len(full)))]
    colours = ListedColormap(["none", "tab:orange", "tab:cyan", "tab:pink", "tab:olive"])
    paths = []
    for k in dict.fromkeys(picks):
        sample = slices[k]
        panels = {"reference": sample.masks[sample.present()], **{ROWS[r]: p[k] for r, p in predictions.items()}}
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
        for ax, (title, masks) in zip(axes, panels.items(), strict=True):
            index = np.zeros(sample.image.shape, np.uint8)
            for mask, i in zip(masks, sample.present(), strict=True):
                index[mask] = i + 1
            ax.imshow(sample.image, cmap="gray")
            ax.imshow(index, cmap=colours, vmin=0, vmax=4, alpha=0.45, interpolation="nearest")
            for y0, x0, y1, x1 in boxes[k]:
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=0.8))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(f"{sample.case}, slice {sample.z} ({', '.join(structures)})", fontsize=9)
        fig.tight_layout()
        path = out / "overlays" / f"{sample.case}_z{sample.z:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def benchmark_cotrain(splits: SliceSplits, backbone: Backbone, out: str | os.PathLike,
                      jitter: dict[str, Jitter] | None = None, epochs: int = 10, batch: int = 4, lr: float = 1e-4,
                      seed: int = 0) -> Task[dict]:
    """Task: train single and co-trained decoders, score the three rows on the test split, write the report
    (``table1.md``, ``table1.csv``, ``overlays/*.png``, both checkpoints) into ``out``; returns the scores."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    methods = {r: CoTrain(backbone, splits.structures, "single" if r == "single" else "cotrain", jitter) for r in ROWS}
    for row in ("single", "cotrain"):
        yield from relay(methods[row].fit(splits, epochs, batch, lr, seed, out / f"{row}.ckpt"),
                         lambda step, row=row: replace(step, message=f"{row}: {step.message}"))
    yield Progress(0, len(ROWS), "scoring the test slices")
    boxes = jittered_boxes(splits.test, methods["cotrain"], seed + 1)
    results, predictions = {}, {}
    for i, (row, method) in enumerate(methods.items(), start=1):
        results[row], predictions[row] = score(method, splits.test, boxes)
        yield Progress(i, len(ROWS), f"scored {row}")
    names = [s.name for s in splits.structures]
    jitters = ", ".join(f"{n} {methods['cotrain'].jitter[n]}" for n in names)
    note = (f"{splits.summary()}; backbone {backbone.name}; {epochs} epochs. Test boxes: each structure's box "
            f"jittered outward as in training ({jitters}; seeded, the same boxes for every row). NSD at 1 pixel.")
    write_tables(results, names, out, note)
    write_overlays(splits.test, boxes, predictions, names, out)
    return results

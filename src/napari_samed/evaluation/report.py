"""Comparison reports: several methods over a folder of image/label pairs with simulated prompts, written as
``report.md`` (tables), ``results.csv`` and one PNG per case with the overlays side by side."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import SamedError
from ..io import read_volume
from ..io.readers import LABEL_SUFFIX, NIFTI_SUFFIXES, TIFF_SUFFIXES, file_stem
from ..masks import mask_bbox
from ..models import resolve_window
from ..tasks import Progress, Task, relay
from ..training.datasets import Case
from .compare import (
    METRICS,
    MethodSlot,
    SlotResult,
    check_reference,
    load_slots,
    metrics_table,
    run_slots,
    simulate_prompts,
    with_prompts,
    write_csv,
)
from .metrics import per_slice_dsc

IMAGE_SUFFIX = re.compile(r"_(img_uint8|img|image|hu|ct)$", re.IGNORECASE)
#: The demo's zero-shot rows: a box per slice, a 3D box, one click propagated through the volume.
DEMO_PROMPTS = ("box", "box3d", "click3d")


def find_cases(folder: str | os.PathLike) -> tuple[list[Case], list[str]]:
    """Image/label pairs in ``folder`` and notes on the files left out.

    Labels end in ``_label`` or ``_labels``; an image's stem (without ``_img_uint8``, ``_img``, ``_image``,
    ``_HU`` or ``_CT``) is matched to the label whose stem ends with it, the exact one first (so
    ``000015_..._HU`` pairs with ``CT_Lesion_000015_..._label``). Pairs whose shapes differ are skipped with a note.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SamedError(f"--data {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith(NIFTI_SUFFIXES + TIFF_SUFFIXES))
    labels = {LABEL_SUFFIX.sub("", file_stem(p)): p for p in files if LABEL_SUFFIX.search(file_stem(p))}
    cases, notes = [], []
    for image in (p for p in files if not LABEL_SUFFIX.search(file_stem(p))):
        stem = file_stem(image)
        base = IMAGE_SUFFIX.sub("", stem)
        key = base if base in labels else next((k for k in sorted(labels) if k.endswith(base)), None)
        if key is None:
            notes.append(f"{image.name}: no label file (…{base}_label) beside it; skipped")
            continue
        shapes = read_volume(image).shape, read_volume(labels[key]).shape
        if shapes[0] != shapes[1]:
            notes.append(f"{image.name}: shape {shapes[0]} differs from {labels[key].name} {shapes[1]}; skipped")
            continue
        if key != base:
            notes.append(f"{image.name} has no label of its own: paired with {labels[key].name} (same shape "
                         f"{shapes[0]})")
        cases.append(Case(image, labels[key]))
    if not cases:
        raise SamedError(f"no image/label pairs (IMAGE and IMAGE_label) in {folder}")
    return cases, notes


@dataclass
class CaseResult:
    name: str
    image: np.ndarray
    reference: np.ndarray
    spacing: tuple[float, float, float]
    window: tuple[float, float]
    results: dict[str, SlotResult]
    rows: list[dict]


def compare_case(name: str, image: np.ndarray, reference: np.ndarray, spacing: Sequence[float],
                 methods: dict[MethodSlot, object], window: str | tuple | None = "auto",
                 cache_dir: str | os.PathLike | None = None, tolerance: float = 1.0) -> Task[CaseResult]:
    """Task: every slot on one volume with prompts simulated from ``reference``; the scored `CaseResult`."""
    check_reference(reference, image.shape)
    prompts = simulate_prompts(reference, spacing)
    results = yield from run_slots(image, spacing, prompts, methods, window, cache_dir)
    rows = metrics_table(results, reference, spacing, tolerance)
    return CaseResult(name, image, reference, tuple(spacing), resolve_window(window, image),
                      results, rows)


def benchmark(cases: Sequence[Case], slots: Sequence[MethodSlot], out: str | os.PathLike, device: str = "auto",
              window: str | tuple | None = "auto", cache_dir: str | os.PathLike | None = None,
              tolerance: float = 1.0, notes: Sequence[str] = (), command: str = "",
              precision: str = "auto") -> Task[list[CaseResult]]:
    """Task: every slot on every case; writes ``report.md``, ``results.csv`` and ``<case>.png`` into ``out``."""
    methods = load_slots(slots, device, precision)
    done = []
    for i, case in enumerate(cases):
        volume, labels = case.load()
        task = compare_case(case.name, volume.data, labels, volume.spacing, methods, window, cache_dir,
                            tolerance)
        done.append((yield from relay(task, lambda step, i=i, case=case: Progress(
            i * step.total + step.done, len(cases) * step.total, f"{case.name}: {step.message}"))))
    slot_notes = dict.fromkeys(r.note for case in done for r in case.results.values() if r.note)
    write_report(done, out, tolerance, [*notes, *slot_notes], command)
    return done


def _fmt(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.3f}" if metric in ("dsc", "iou", "nsd") else f"{value:.1f}"


def _table(rows: Sequence[dict], first: str = "method", time: str = "time (s)") -> list[str]:
    head = f"| {first} | DSC | IoU | NSD | ASSD (mm) | HD95 (mm) | {time} |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.get("error") and row.get("dsc") is None:
            lines.append(f"| {row[first]} | error: {row['error']} | | | | | |")
        else:
            cells = " | ".join(_fmt(row.get(m), m) for m in METRICS)
            lines.append(f"| {row[first]} | {cells} | {row.get('seconds', 0):.1f} |")
    return lines


def summary_rows(cases: Sequence[CaseResult]) -> list[dict]:
    """Mean of each metric per method over the cases it segmented (undefined distances left out)."""
    names = list(dict.fromkeys(row["method"] for case in cases for row in case.rows))
    out = []
    for name in names:
        rows = [row for case in cases for row in case.rows if row["method"] == name and row.get("dsc") is not None]
        mean = {m: float(np.mean(v)) if (v := [r[m] for r in rows if r.get(m) is not None]) else None
                for m in METRICS}
        errors = [row["error"] for case in cases for row in case.rows if row["method"] == name and row.get("error")]
        out.append({"method": f"{name} ({len(rows)}/{len(cases)} cases)", **mean,
                    "seconds": float(np.sum([r["seconds"] for r in rows])) if rows else 0.0,
                    "error": errors[0] if errors and not rows else None})
    return out


def write_report(cases: Sequence[CaseResult], out: str | os.PathLike, tolerance: float = 1.0,
                 notes: Sequence[str] = (), command: str = "") -> Path:
    """``report.md`` (mean table, then each case's table and figure), ``results.csv`` and the PNGs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Method comparison", ""]
    if command:
        lines += ["Made with:", "", "```bash", command, "```", ""]
    lines += ["Prompts simulated from each reference label: `box` a box per slice holding the object, `box3d` a "
              "3D box per connected component (propagated from its middle slice), `click` one click per component "
              "at its deepest point (zero-shot decoders segment the clicked slice only), `click3d` that click and "
              "`onebox3d` the component's box on its largest slice, each propagated through the volume until the "
              "object ends. Metrics of any non-zero "
              f"voxel against the reference, over the volume: NSD at {tolerance:g} mm, ASSD and HD95 in mm; time "
              "includes computing embeddings that were not cached yet.", ""]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    if len(cases) > 1:
        lines += ["## Mean over cases", "", *_table(summary_rows(cases), time="total time (s)"), ""]
    for case in cases:
        png = write_figure(case, out / f"{case.name}.png")
        lines += [f"## {case.name}", "", f"{case.image.shape[0]} slices of {case.image.shape[1]}×"
                  f"{case.image.shape[2]}, spacing {', '.join(f'{s:.3g}' for s in case.spacing)} mm, window "
                  f"{case.window[0]:g}..{case.window[1]:g}", "", *_table(case.rows), "", f"![{case.name}]({png.name})",
                  ""]
    write_csv([{**row, "method": f"{case.name}: {row['method']}"} for case in cases for row in case.rows],
              out / "results.csv")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_figure(case: CaseResult, path: Path) -> Path:
    """The slice with the most reference voxels: the reference, then each method's mask (its slice DSC in the
    title), over the windowed image; the reference's outline drawn on every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = case.reference != 0
    z = int(np.argmax(ref.sum(axis=(1, 2))))
    y0, x0, y1, x1 = mask_bbox(ref.any(axis=0))
    pad = max(24, (y1 - y0 + x1 - x0) // 2)  # the object and as much again around it
    crop = (slice(max(y0 - pad, 0), y1 + pad + 1), slice(max(x0 - pad, 0), x1 + pad + 1))
    panels = {"reference": ref, **{name: (r.labels != 0 if r.labels is not None else None)
                                   for name, r in case.results.items()}}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.3), squeeze=False)
    for ax, (title, mask) in zip(axes[0], panels.items(), strict=True):
        ax.imshow(case.image[z][crop], cmap="gray", vmin=case.window[0], vmax=case.window[1])
        if mask is None:
            title = f"{title}\nfailed"
        else:
            shown = mask[z][crop]
            ax.imshow(np.ma.masked_where(~shown, shown), cmap="autumn", alpha=0.45, interpolation="nearest")
            if title != "reference":
                title = f"{title}\nslice DSC {per_slice_dsc(mask[z:z + 1], ref[z:z + 1])[0]:.3f}"
        ax.contour(ref[z][crop], levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{case.name}, slice {z}, y {crop[0].start}-{crop[0].stop - 1}, x {crop[1].start}-"
                 f"{crop[1].stop - 1} (reference outline in cyan)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def demo_files(sample: str = "synthetic") -> tuple[str, ...]:
    """What `demo_report` writes into its folder for ``sample`` (a key of `sample_data.SAMPLES`)."""
    from ..sample_data import SAMPLES

    stem = SAMPLES[sample].stem
    return (*SAMPLES[sample].files, "fewshot.ckpt", "report.md", "results.csv", f"{stem}.png")


def demo_report(out: str | os.PathLike, device: str = "auto", cache_dir: str | os.PathLike | None = None,
                shots: int = 5, precision: str = "auto", sample: str = "synthetic") -> Task[list[CaseResult]]:
    """Task: the whole story on a sample volume (a key of `sample_data.SAMPLES`), headless. Writes the sample and
    its reference into ``out``, trains the few-shot decoder on ``shots`` slices of the sample's object in the
    reference (``fewshot.ckpt``), then compares zero-shot LiteMedSAM (`DEMO_PROMPTS`) with it against the object
    (``report.md``, PNG, CSV)."""
    from ..methods import FewShot
    from ..models import VolumeEmbeddings, load_backbone
    from ..sample_data import SAMPLES

    out, chosen = Path(out), SAMPLES[sample]
    volume, labels = chosen.load()
    chosen.write(out, (volume, labels))
    reference = np.isin(labels, chosen.target).astype(np.uint8)
    backbone = load_backbone(device=device, precision=precision)
    embeddings = VolumeEmbeddings(volume, backbone, "auto", cache_dir)
    occupied = np.flatnonzero(reference.any(axis=(1, 2)))
    picks = [int(occupied[round(i)]) for i in np.linspace(1, len(occupied) - 2, shots)]
    fewshot = FewShot(backbone)
    yield from relay(fewshot.fit(embeddings, {z: reference[z] for z in picks}),
                     lambda step: replace(step, message=f"few-shot training on slices {picks}: {step.message}"))
    checkpoint = fewshot.save(out / "fewshot.ckpt")
    slots = [*with_prompts([MethodSlot("zero-shot")], DEMO_PROMPTS), MethodSlot("fewshot", checkpoint=checkpoint)]
    methods = load_slots(slots, device, precision)
    case = yield from compare_case(chosen.stem, volume.data, reference, volume.spacing, methods, "auto", cache_dir)
    notes = [chosen.about,
             f"Few-shot: trained on that object on {shots} slices of the reference ({', '.join(map(str, picks))}; "
             f"{fewshot.stopped}) and scored on the whole volume, those slices included."]
    command = "napari-samed demo --headless" + ("" if sample == "synthetic" else f" --sample {sample}")
    write_report([case], out, notes=notes, command=f"{command} -o {out}")
    return [case]

"""Real-data benchmark: zero-shot boxes, 3D boxes and clicks, and few-shot, on the structures of ../shared/data.

    python benchmarks/realdata.py [--data DIR] [--cache DIR] [--only SUBSTRING ...]
        [--methods box,box3d,click,click3d,fewshot] [--margin 10] [--json OUT.json] [--brain-window]
        [--precision auto|fp32|bf16]

The project's defaults throughout: LiteMedSAM (bundled weights) on the CPU, each method's default settings.

Case. Each image and label are read in the plugin's (z, y, x) view (`read_volume`); the structure is the set of
the entry's label values. The window is resolved on the whole image (as the plugin does for a loaded image),
then the volume is cropped in z to the structure's extent ± ``margin`` slices (clipped to the volume; no
in-plane crop). Every slice of the crop is embedded once up front into the persistent cache (only the
structure's extent when few-shot is not run); no timing includes embedding. All DSCs are over the crop,
which holds the whole structure.

Metrics, per structure:
- ``box``: zero-shot, one box per 2D connected component (>= 10 pixels) of the reference on every slice holding
  it, all with label 1; volume DSC.
- ``box3d``: zero-shot, the 3D bounding box of each 3D connected component (>= 10 voxels), propagated from its
  middle slice (`BoxPrompt3D`); volume DSC, and ``box3d_over`` = (slices the result starts below the
  reference's first slice, slices it ends above its last), negative where it stops short.
- ``click``: one positive click at the deepest point (largest distance to the background) of the reference on
  its largest slice, zero-shot on that slice; 2D DSC there. ``click5_mean`` / ``click5_min``: the same on 5
  slices spread over the structure (as the few-shot shots). ``click_s``: seconds per click (cached
  embedding), mean over those clicks.
- ``click3d``: the volume DSC of one click (on the largest slice) propagated through the volume
  (`ObjectPrompt3D`, the default stop), ``click3d_over`` as ``box3d_over``, and ``click3d_band``: the part of the
  reference's slices where the result's area is within `AREA_BAND` of the reference's (0.67-1.5 times).
- ``fewshot``: `FewShot.fit` (default settings, seed 0) on the reference of 5 slices spread over the
  structure, ``zs[round(i)] for i in linspace(1, len(zs) - 2, 5)`` deduplicated (skipped when the structure
  spans < 5 slices); ``fewshot`` = DSC over all the other slices of the crop, ``fewshot_shots`` = DSC over the
  labelled slices, ``fewshot_train_s`` = wall time of ``fit``. In the JSON only: ``fewshot_in_extent``, the DSC
  over the unlabelled slices that hold the structure, ``fewshot_outside_voxels``, the voxels predicted on
  the slices that do not, ``fewshot_steps`` and ``fewshot_stopped`` (the steps trained and why it stopped),
  ``fewshot_boxes`` (whether it redraws from boxes), ``fewshot_free`` (``fewshot`` without the rules of the
  labelled extent, `FewShot.near_labelled_slices`: parts reaching the labelled range, tapering past its ends),
  ``fewshot_last`` (when training kept an earlier step's model: ``fewshot`` of the last step's) and
  ``fewshot_segment_s``, `FewShot.segment`'s seconds per slice.

``--brain-window`` (side experiment): MR entries use the 0.5-99.5 percentiles of the voxels inside the brain
mask file as their window instead of ``auto``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import numpy as np
import torch
from scipy import ndimage

from napari_samed import SamedError, Volume, read_volume
from napari_samed.masks import deepest_point, dice, mask_bbox
from napari_samed.methods import BoxPrompt3D, FewShot, ObjectPrompt3D, SlicePrompt, ZeroShot, run_task
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.models.preprocess import MR_PERCENTILES, resolve_window
from napari_samed.training.loop import BestState

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("SAMED_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_CACHE = Path.home() / ".cache" / "napari-samed-bench"
METHODS = ("box", "box3d", "click", "click3d", "fewshot")
MIN_PIXELS = 10  # smaller connected components get no box (2D: pixels, 3D: voxels)
AREA_BAND = (0.67, 1.5)  # a slice's predicted area is right within this factor of the reference's
SHOTS = 5


@dataclass(frozen=True)
class Entry:
    """One structure: image and label paths relative to the data folder, the label values that make it up."""

    name: str
    modality: str
    image: str
    label: str
    values: tuple[int, ...] = (1,)
    window: str | tuple[float, float] = "auto"
    brain: str | None = None  # brain mask (the --brain-window side experiment)


def _brats(patient: str) -> list[Entry]:
    stem = f"brats2013/brats_2013_pat{patient}_1_"
    label, brain = stem + "OTMultiClass.nii.gz", stem + "brainmask.nii.gz"
    return [Entry(f"BraTS {patient} whole tumour", "MR FLAIR", stem + "Flair_subtrMeanDivStd.nii.gz", label,
                  (1, 2, 3, 4), brain=brain),
            Entry(f"BraTS {patient} enhancing", "MR T1c", stem + "T1c_subtrMeanDivStd.nii.gz", label, (4,),
                  brain=brain)]


_LESIONS = ("000001_02_01_008-023", "000002_03_01_035-047", "000009_03_01_036-048", "000010_01_01_078-090",
            "000015_01_01_081-093", "000015_01_01_103-115")
#: The abdominal organs of the TotalSegmentator MR (its README lists the label values).
_ORGANS_MR = (("spleen", 1), ("right kidney", 2), ("left kidney", 3), ("gallbladder", 4), ("liver", 5),
              ("stomach", 6), ("pancreas", 7))
MANIFEST: list[Entry] = [
    *(e for p in ("0002", "0003", "0004", "0005", "0006") for e in _brats(p)),
    Entry("aorta", "CT", "totalseg_aorta_ct/ct_cropped.nii.gz", "totalseg_aorta_ct/aorta.nii.gz"),
    Entry("T12 vertebra", "CT", "totalseg_aorta_ct/ct_cropped.nii.gz", "totalseg_aorta_ct/vertebrae_T12.nii.gz"),
    *(Entry(f"DeepLesion {c}", "CT uint8", f"deeplesion/CT_Lesion_{c}_img_uint8.nii.gz",
            f"deeplesion/CT_Lesion_{c}_label.nii.gz", window=(0.0, 255.0)) for c in _LESIONS),
    Entry("DeepLesion 000015_01_01_103-115 HU", "CT HU", "deeplesion/000015_01_01_103-115_HU.nii.gz",
          "deeplesion/CT_Lesion_000015_01_01_103-115_label.nii.gz"),
    *(Entry(f"MR {organ}", "MR", "totalseg_abdomen_mr/mr.nii.gz", "totalseg_abdomen_mr/labels.nii.gz", (value,))
      for organ, value in _ORGANS_MR),
]


class Case(NamedTuple):
    volume: Volume  # the z-cropped image
    mask: np.ndarray  # the boolean reference on the crop
    z0: int  # the crop's first slice in the whole volume
    window: tuple[float, float]  # resolved on the whole volume


def select(only: list[str]) -> list[Entry]:
    """The manifest's entries whose name holds one of ``only`` (case-insensitive); all when ``only`` is empty."""
    return [e for e in MANIFEST if not only or any(s.lower() in e.name.lower() for s in only)]


def recording_parser(doc: str) -> argparse.ArgumentParser:
    """The options of a record-then-replay benchmark over the manifest (`propagation.py`, `click_search.py`)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--record", type=Path, help="run the structures and write the recording here")
    parser.add_argument("--replay", type=Path, help="score the rules on this recording")
    parser.add_argument("--only", nargs="*", default=[], help="record the structures whose name holds one of these")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    return parser


def load_structure(entry: Entry, root: Path, margin: int = 10, brain_window: bool = False) -> Case:
    """The image cropped in z to the structure's extent ± ``margin`` slices, its reference mask, the crop's
    offset and the window (resolved on the whole image; the brain mask's percentiles with ``brain_window``)."""
    image = read_volume(root / entry.image)
    mask = np.isin(read_volume(root / entry.label).data, entry.values)
    if mask.shape != image.shape or not mask.any():
        raise SamedError(f"{entry.name}: label {mask.shape} vs image {image.shape}, {mask.sum()} voxels")
    window = resolve_window(entry.window, image.data)
    if brain_window and entry.brain:
        inside = image.data[read_volume(root / entry.brain).data > 0]
        window = tuple(float(v) for v in np.percentile(inside, MR_PERCENTILES))
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    z0, z1 = max(int(zs[0]) - margin, 0), min(int(zs[-1]) + margin, mask.shape[0] - 1) + 1
    return Case(Volume(image.data[z0:z1], image.spacing), mask[z0:z1], z0, window)


def spread(zs: np.ndarray, n: int = SHOTS) -> list[int]:
    """``n`` slices spread over the structure's slices ``zs``, its first and last left out (all when fewer)."""
    if len(zs) <= n:
        return [int(z) for z in zs]
    return spread_between(zs, 1, len(zs) - 2, n)


def spread_between(zs: np.ndarray, first: float, last: float, n: int = SHOTS) -> list[int]:
    """``n`` of the slices ``zs``, evenly from position ``first`` to ``last`` of it (rounded, duplicates once)."""
    return list(dict.fromkeys(int(zs[int(round(i))]) for i in np.linspace(first, last, n)))


def slice_boxes(ref: np.ndarray) -> list[SlicePrompt]:
    """One box per 2D connected component of at least `MIN_PIXELS` on every slice, label 1."""
    prompts = []
    for z in np.flatnonzero(ref.any(axis=(1, 2))):
        parts, count = ndimage.label(ref[z])
        for i in range(1, count + 1):
            if np.count_nonzero(parts == i) >= MIN_PIXELS:
                prompts.append(SlicePrompt(int(z), 1, mask_bbox(parts == i)))
    return prompts


def boxes_3d(ref: np.ndarray) -> list[BoxPrompt3D]:
    """The 3D bounding box of each 3D connected component of at least `MIN_PIXELS` voxels, label 1."""
    parts, _ = ndimage.label(ref)
    sizes = np.bincount(parts.ravel())
    return [BoxPrompt3D((zs.start, ys.start, xs.start, zs.stop - 1, ys.stop - 1, xs.stop - 1), 1)
            for i, (zs, ys, xs) in enumerate(ndimage.find_objects(parts), start=1) if sizes[i] >= MIN_PIXELS]


def deepest_click(ref2d: np.ndarray, z: int) -> SlicePrompt:
    """One positive click at the point of ``ref2d`` farthest from its background (`masks.deepest_point`)."""
    y, x = deepest_point(ref2d)
    return SlicePrompt(int(z), 1, points=[(float(y), float(x))], point_labels=[1])


def area_band(pred: np.ndarray, ref: np.ndarray) -> float:
    """The part of the reference's slices where ``pred``'s area is within `AREA_BAND` of the reference's."""
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    ratio = pred[zs].sum(axis=(1, 2)) / ref[zs].sum(axis=(1, 2))
    return float(np.mean((ratio >= AREA_BAND[0]) & (ratio <= AREA_BAND[1])))


def extent_over(pred: np.ndarray, ref: np.ndarray) -> list[int] | None:
    """(slices below the reference's first, slices above its last) where ``pred`` holds foreground."""
    p, r = (np.flatnonzero(m.any(axis=(1, 2))) for m in (pred, ref))
    return None if not len(p) else [int(r[0] - p[0]), int(p[-1] - r[-1])]


def run_structure(entry: Entry, methods, backbone, cache, root: Path, margin: int = 10,
                  brain_window: bool = False) -> dict:
    """Every figure of ``methods`` for one structure (see the module docstring)."""
    case = load_structure(entry, Path(root), margin, brain_window)
    ref = case.mask
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    emb = VolumeEmbeddings(case.volume, backbone, case.window, cache)
    start = time.perf_counter()
    list(emb.compute(range(len(ref)) if "fewshot" in methods else range(zs[0], zs[-1] + 1)))
    row = {"structure": entry.name, "modality": entry.modality, "slices": len(zs), "crop": [case.z0, len(ref)],
           "window": [round(v, 3) for v in case.window], "embed_s": round(time.perf_counter() - start, 1)}
    zero = ZeroShot(backbone)
    if "box" in methods:
        row["box"] = dice(run_task(zero.segment(emb, slice_boxes(ref))) > 0, ref)
    if "box3d" in methods:
        pred = run_task(zero.segment(emb, boxes_3d(ref))) > 0
        row["box3d"], row["box3d_over"] = dice(pred, ref), extent_over(pred, ref)
    largest = int(ref.sum(axis=(1, 2)).argmax())
    if "click" in methods:
        scores, seconds = [], []
        for z in [largest, *spread(zs)]:
            start = time.perf_counter()
            mask = zero.segment_slice(emb, deepest_click(ref[z], z))
            seconds.append(time.perf_counter() - start)
            scores.append(dice(mask, ref[z]))
        row.update(click=scores[0], click5_mean=float(np.mean(scores[1:])), click5_min=float(np.min(scores[1:])),
                   click_s=float(np.mean(seconds)))
    if "click3d" in methods:
        pred = run_task(zero.segment(emb, [ObjectPrompt3D(1, [deepest_click(ref[largest], largest)])])) > 0
        row["click3d"], row["click3d_over"] = dice(pred, ref), extent_over(pred, ref)
        row["click3d_band"] = area_band(pred, ref)
    if "fewshot" in methods:
        if len(zs) < SHOTS:
            row["fewshot_note"] = f"skipped: the structure spans {len(zs)} < {SHOTS} slices"
        else:
            shots = spread(zs)
            others = [z for z in range(len(ref)) if z not in shots]
            method, start, last = FewShot(backbone), time.perf_counter(), {}

            def keep_last(best, restore=BestState.restore):  # the last step's model, for ``fewshot_last``
                last["state"] = copy.deepcopy(best.module.state_dict())
                restore(best)

            with mock.patch.object(BestState, "restore", keep_last):
                losses = run_task(method.fit(emb, {z: ref[z].astype(np.uint8) for z in shots}, seed=0))
            row["fewshot_train_s"] = time.perf_counter() - start
            start = time.perf_counter()
            pred = run_task(method.segment(emb)) > 0
            if "state" in last:  # an earlier step's model was kept: score the last one too
                kept = copy.deepcopy(method.decoder.state_dict())
                method.decoder.load_state_dict(last["state"])
                row["fewshot_last"] = dice((run_task(method.segment(emb)) > 0)[others], ref[others])
                method.decoder.load_state_dict(kept)
            row.update(fewshot_segment_s=(time.perf_counter() - start) / len(ref), fewshot_steps=len(losses),
                       fewshot_stopped=method.stopped, fewshot_boxes=method.boxes)
            inside = [z for z in others if ref[z].any()]
            method.within_extent = False  # the same model without the labelled extent's rule
            raw = run_task(method.segment(emb)) > 0
            row.update(fewshot=dice(pred[others], ref[others]), fewshot_shots=dice(pred[shots], ref[shots]),
                       fewshot_free=dice(raw[others], ref[others]),
                       fewshot_in_extent=dice(pred[inside], ref[inside]),
                       fewshot_outside_voxels=int(pred[[z for z in others if not ref[z].any()]].sum()),
                       fewshot_slices=[case.z0 + z for z in shots])
    return row


def _f(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict], means: dict[str, dict]) -> str:
    head = ("| structure | modality | slices | box | box3d | box3d over (below/above) | click slice | "
            "click 5 slices (mean/min) | click s | click3d | click3d over | click3d area in band | "
            "few-shot unlabelled | few-shot on shots | few-shot train s |\n|" + "---|" * 15)
    lines = [head]
    for r in [*rows, *means.values()]:
        over, over_click = ("/".join(f"{v:+.{0 if isinstance(v, int) else 1}f}" for v in r.get(k) or [])
                            for k in ("box3d_over", "click3d_over"))
        c5 = f"{_f(r.get('click5_mean'))} / {_f(r.get('click5_min'))}" if "click5_mean" in r else ""
        few = _f(r.get("fewshot")) or ("n/a (< 5 slices)" if "fewshot_note" in r else "")
        lines.append(f"| {r['structure']} | {r.get('modality', '')} | {r.get('slices', '')} | {_f(r.get('box'))} | "
                     f"{_f(r.get('box3d'))} | {over} | {_f(r.get('click'))} | {c5} | {_f(r.get('click_s'), 2)} | "
                     f"{_f(r.get('click3d'))} | {over_click} | {_f(r.get('click3d_band'), 2)} | {few} | "
                     f"{_f(r.get('fewshot_shots'))} | "
                     f"{_f(r.get('fewshot_train_s'), 1)} |")
    return "\n".join(lines)


def mean_rows(rows: list[dict]) -> dict[str, dict]:
    """Means of every figure over all structures and over those spanning >= 10 slices."""
    keys = ("box", "box3d", "click", "click5_mean", "click5_min", "click_s", "click3d", "click3d_band", "fewshot",
            "fewshot_shots", "fewshot_train_s")
    out = {}
    for name, chosen in (("mean, all", rows), ("mean, >= 10 slices", [r for r in rows if r["slices"] >= 10])):
        row = {"structure": f"**{name}** ({len(chosen)})"}
        for k in keys:
            values = [r[k] for r in chosen if r.get(k) is not None]
            if values:
                row[k] = float(np.mean(values))
        for k in ("box3d_over", "click3d_over"):
            overs = [r[k] for r in chosen if r.get(k)]
            if overs:
                row[k] = [float(np.mean(v)) for v in zip(*overs, strict=True)]
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--only", nargs="+", default=[], help="run the structures whose name holds one of these")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--margin", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--brain-window", action="store_true", help="MR: window from the brain mask's voxels")
    parser.add_argument("--precision", default="auto", help="encoder precision (default: the plugin's auto)")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if unknown := set(methods) - set(METHODS):
        parser.error(f"unknown methods {sorted(unknown)}; choose from {','.join(METHODS)}")
    entries = select(args.only)
    started = datetime.now()
    header = (f"`python benchmarks/realdata.py {' '.join(sys.argv[1:] if argv is None else argv)}`  \n"
              f"{started:%Y-%m-%d %H:%M}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"load average {os.getloadavg()[0]:.2f} at start")
    print(header, flush=True)
    backbone = load_backbone(device="cpu", precision=args.precision)
    rows = []
    for entry in entries:
        rows.append(run_structure(entry, methods, backbone, args.cache, args.data, args.margin, args.brain_window))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    means = mean_rows(rows)
    minutes = (datetime.now() - started).total_seconds() / 60
    print(f"load average {os.getloadavg()[0]:.2f} at the end, {minutes:.1f} min in all\n")
    print(markdown(rows, means))
    result = {"command": header, "margin": args.margin, "methods": methods, "minutes": round(minutes, 1),
              "entries": [asdict(e) for e in entries], "rows": rows, "means": means}
    if args.json:
        args.json.write_text(json.dumps(rounded(result), indent=1) + "\n")
    return result


def rounded(obj, digits: int = 4):
    """``obj`` with every float rounded to ``digits`` (a small, readable JSON)."""
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, digits) for v in obj]
    return round(float(obj), digits) if isinstance(obj, float | np.floating) else obj


if __name__ == "__main__":
    main()

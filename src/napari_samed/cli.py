"""The ``napari-samed`` command: the widgets' operations, headless.

Coordinates are voxel indices of the (z, y, x) view the reader produces (``napari_samed.io``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .errors import SamedError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, with exit status 2, like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"napari-samed: error: {message} (see {self.prog} --help)\n")


def _positive_int(what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be a positive whole number; got {text!r}")
        return value

    return parse


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"--tolerance is a distance in mm, 0 or more; got {text!r}")
    return value


def _int_list(what: str):
    def parse(text: str) -> list[int]:
        try:
            return [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be comma-separated integers; got {text!r}") from None

    return parse


def _ints_between(low: int, high: int, form: str):
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if not low <= len(values) <= high:
            raise argparse.ArgumentTypeError(f"{form}; got {text!r}")
        return values

    return parse


_box3d = _ints_between(6, 6, "--box3d must be 6 comma-separated integers")
_box = _ints_between(5, 6, "a box is Z,Y0,X0,Y1,X1 or Z,Y0,X0,Y1,X1,LABEL (integers)")
_point = _ints_between(3, 5, "a point is Z,Y,X[,POLARITY[,LABEL]] (integers; POLARITY 1 positive, 0 negative)")


def _kinds(text: str) -> list[str]:
    from .methods import PROMPT_KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in PROMPT_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"prompt kinds are {', '.join(PROMPT_KINDS)} (comma-separated); got {text!r}")
    return kinds


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from .models import BACKBONES, DEFAULT_BACKBONE

    p.add_argument("--model", default=DEFAULT_BACKBONE, choices=list(BACKBONES),
                   help=f"SAM-family backbone (default {DEFAULT_BACKBONE}, bundled)")
    p.add_argument("--checkpoint", type=Path, help="weights file for models other than lite-medsam")
    _add_run_options(p)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", help="intensity window: ct, mr, auto (default) or LO,HI")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    _add_precision(p)
    p.add_argument("--cache", type=Path, help="embedding cache folder (default: the user cache folder)")


def _add_precision(p: argparse.ArgumentParser) -> None:
    from .models.encoder import PRECISIONS

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="image encoder arithmetic: auto (default: fp16 on CUDA, bf16 on a CPU with native bf16, else "
                        "fp32; a trained checkpoint's own when it runs at full speed), fp32 (exact), bf16, fp16 "
                        "(CUDA); part of the embedding cache key")


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file even when it is not an earlier napari-samed output of the "
                        "same kind")


def _add_dataset_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="+", type=Path, metavar="DATA",
                   help="an MSD-style folder (imagesTr/, labelsTr/, dataset.json) or IMAGE LABEL pairs")


def _add_cotrain_options(p: argparse.ArgumentParser, output: str, output_help: str, mode: bool = True) -> None:
    """DATA, -o and the training options of ``train cotrain`` and (without ``--mode``) ``benchmark cotrain``."""
    _add_dataset_argument(p)
    p.add_argument("-o", "--output", type=Path, required=True, metavar=output, help=output_help)
    p.add_argument("--structures", required=True, metavar="NAME=V[+V],...",
                   help="the structures to co-train and their label values, e.g. organ=1,lesion=2")
    if mode:
        p.add_argument("--mode", choices=["cotrain", "single"], default="cotrain",
                       help="cotrain: all structures of a slice per step, max loss (default); single: one per step")
        _add_overwrite(p)
    p.add_argument("--epochs", type=_positive_int("--epochs"), default=10,
                   help="passes over the training slices (default 10)")
    p.add_argument("--batch", type=_positive_int("--batch"), default=4, help="slices per optimiser step (default 4)")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--jitter", metavar="NAME=AMOUNT,...",
                   help="largest outward shift of each box side per structure: a fraction of the object's size "
                        "(0.1, the default) or pixels (5px)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the shuffling and the jitter")
    _add_model_options(p)


def build_parser() -> argparse.ArgumentParser:
    from .methods import METHODS
    from .models import BACKBONES

    parser = _Parser(prog="napari-samed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    seg = sub.add_parser("segment", help="segment a volume from prompts; write a label volume")
    seg.add_argument("image", type=Path, metavar="IMAGE", help="NIfTI (.nii, .nii.gz) or TIFF volume")
    seg.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                     help="label volume to write, in IMAGE's format and geometry")
    seg.add_argument("--method", default="zero-shot", choices=list(METHODS),
                     help="segmentation method; trained methods take their file with --checkpoint")
    _add_model_options(seg)
    seg.add_argument("--box", action="append", default=[], type=_box, metavar="Z,Y0,X0,Y1,X1[,LABEL]",
                     help="2D box on slice Z; repeat for more objects. Boxes with the same LABEL are one object; "
                          "without LABEL each box is an object of its own (the lowest free labels, in order)")
    seg.add_argument("--box3d", action="append", default=[], type=_box3d,
                     metavar="Z0,Y0,X0,Z1,Y1,X1", help="3D box, propagated from its middle slice")
    seg.add_argument("--point", action="append", default=[], type=_point, metavar="Z,Y,X[,POLARITY[,LABEL]]",
                     help="click on slice Z; POLARITY 1 positive (default) or 0 negative; with LABEL it belongs "
                          "to that object, without it to the box around it on its slice")
    seg.add_argument("--propagate", action="store_true",
                     help="segment each object (its boxes and points on any slices) through the volume, stopping "
                          "where the object ends (zero-shot)")
    _add_overwrite(seg)

    ev = sub.add_parser("evaluate", help="print DSC, IoU, NSD, ASSD, HD95 of PRED against GT as JSON")
    ev.add_argument("pred", type=Path, metavar="PRED")
    ev.add_argument("gt", type=Path, metavar="GT")
    ev.add_argument("--label", type=int, help="compare only this label value (default: any non-zero)")
    ev.add_argument("--tolerance", type=_tolerance, default=1.0, help="NSD tolerance in mm (default 1)")

    emb = sub.add_parser("embed", help="precompute the embedding cache of a volume")
    emb.add_argument("image", type=Path, metavar="IMAGE")
    _add_model_options(emb)

    sample = sub.add_parser("sample", help="write the synthetic sample CT volume and its labels")
    sample.add_argument("-o", "--output", type=Path, default=Path("sample_data"), metavar="DIR")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--cases", type=_positive_int("--cases"), metavar="N",
                        help="write an MSD-style training folder of N phantoms (seeds SEED, SEED+1, ...) instead")
    train = sub.add_parser("train", help="train a method").add_subparsers(dest="method", required=True,
                                                                          metavar="METHOD")
    fs = train.add_parser("fewshot", help="fine-tune the few-shot decoder on a few labelled slices")
    fs.add_argument("image", type=Path, metavar="IMAGE")
    fs.add_argument("labels", type=Path, metavar="LABELS", help="label volume on IMAGE's grid")
    fs.add_argument("-o", "--output", type=Path, required=True, metavar="CKPT")
    _add_overwrite(fs)
    fs.add_argument("--slices", required=True, type=_int_list("--slices"), metavar="Z1,Z2,...",
                    help="the labelled slices to train on; LABELS' other slices are never used")
    fs.add_argument("--labels", dest="label_values", type=_int_list("--labels"), metavar="1,2,...",
                    help="label values to learn (default: all found on the slices)")
    fs.add_argument("--iterations", type=_positive_int("--iterations"),
                    help="optimiser steps (default 100)")
    _add_model_options(fs)

    _add_cotrain_options(train.add_parser("cotrain", help="co-train the mask decoder with batched boxes of several "
                                                          "structures"),
                         "CKPT", "checkpoint to write (the epoch with the best validation DSC)")

    pm = train.add_parser("promise", help="train ProMISe (3D segmentation from one click) on labelled volumes")
    _add_dataset_argument(pm)
    pm.add_argument("-o", "--output", type=Path, required=True, metavar="CKPT",
                    help="checkpoint, written after every epoch; an existing one of the same configuration resumes")
    pm.add_argument("--label", required=True, metavar="V[+V...]",
                    help="the target's label value(s), e.g. 2 or 1+2 for their union")
    pm.add_argument("--backbone", default="lite-medsam", choices=list(BACKBONES),
                    help="pretrained 2D encoder: lite-medsam (default, CPU configuration) or a SAM ViT with "
                         "--checkpoint (the paper's configuration, for a GPU)")
    pm.add_argument("--checkpoint", type=Path, help="SAM weights file for a SAM ViT backbone")
    pm.add_argument("--crop", type=int, help="crop side on the crop grid (default 32 on lite-medsam, 128 on a ViT)")
    pm.add_argument("--epochs", type=_positive_int("--epochs"), default=20,
                    help="passes over the training volumes (default 20)")
    pm.add_argument("--crops", type=_positive_int("--crops"), default=10,
                    help="crops drawn from every volume per epoch (default 10)")
    pm.add_argument("--seed", type=int, default=0)
    _add_overwrite(pm)
    _add_run_options(pm)

    bench = sub.add_parser("benchmark", help="score methods on labelled volumes with simulated prompts, or run a "
                                             "suite (cotrain); write a report")
    bench.add_argument("--data", type=Path, metavar="DIR",
                       help="folder of IMAGE / IMAGE_label volume pairs (e.g. X_img_uint8.nii.gz, X_label.nii.gz)")
    bench.add_argument("-o", "--output", dest="report", type=Path, metavar="OUT",
                       help="report folder: report.md, results.csv, a PNG per case")
    bench.add_argument("--methods", default="zero-shot:lite-medsam", metavar="METHOD[:MODEL|:CKPT],...",
                       help="methods to compare: zero-shot:MODEL[=WEIGHTS], cotrain:CKPT, fewshot:CKPT, "
                            "promise:CKPT (default zero-shot:lite-medsam)")
    bench.add_argument("--prompts", type=_kinds, metavar="box,box3d,click",
                       help="simulated prompt kinds to use (default: every kind each method understands)")
    bench.add_argument("--tolerance", type=_tolerance, default=1.0, help="NSD tolerance in mm (default 1)")
    _add_run_options(bench)  # --window auto also takes uint8 images as already windowed (0,255)
    suites = bench.add_subparsers(dest="suite", metavar="SUITE")
    _add_cotrain_options(suites.add_parser("cotrain", help="the co-training paper's Table 1: untouched, single "
                                                           "prompt, co-train"),
                         "DIR", "report folder: table1.md, table1.csv, overlays/, the two checkpoints", mode=False)

    demo = sub.add_parser("demo", help="open napari with the sample volume and the Segment widget docked")
    demo.add_argument("--headless", action="store_true",
                      help="no display: zero-shot, five-slice few-shot and their comparison on the sample, as a "
                           "report in OUT")
    demo.add_argument("-o", "--output", type=Path, default=Path("samed_demo"), metavar="OUT",
                      help="report folder of --headless (default samed_demo)")
    demo.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (--headless)")
    _add_precision(demo)
    demo.add_argument("--cache", type=Path, help="embedding cache folder (--headless)")
    return parser


def _progress_bar(desc: str):
    from tqdm import tqdm

    # Shown after half a second: input refused at once leaves its one-line error alone.
    bar = tqdm(desc=desc, unit="slice", file=sys.stderr, dynamic_ncols=True, delay=0.5)

    def update(step) -> None:
        bar.total = step.total
        bar.set_postfix_str(step.message, refresh=False)
        bar.update(step.done - bar.n)

    return bar, update


def _embeddings(args, volume):
    from .models import VolumeEmbeddings, load_backbone

    backbone = load_backbone(args.model, args.checkpoint, args.device, args.precision)
    return backbone, VolumeEmbeddings(volume, backbone, args.window or "auto", args.cache)


def _output_path(out: Path, image: Path) -> Path:
    from .io.readers import volume_format

    if out.is_dir():
        raise SamedError(f"OUT {out} is a folder; give the label volume a file name")
    try:
        fmt = volume_format(out)
    except SamedError:
        return out.with_name(out.name + (".nii.gz" if volume_format(image) == "nifti" else ".tif"))
    if fmt != volume_format(image):
        raise SamedError(f"OUT {out} must have the format of IMAGE {image} ({volume_format(image).upper()})")
    return out


def _labels_output(args, out: Path, inputs) -> Path:
    """OUT for a label volume, checked before any work: see `io.outputs.check_output_file`."""
    from .io.outputs import check_output_file
    from .io.readers import LABELS_MARK, written_by

    return check_output_file(out, inputs, lambda p: written_by(p) == LABELS_MARK, "label volume", args.overwrite)


def _checkpoint_output(args, method_cls, inputs) -> Path:
    """-o CKPT of a training command, checked before any work: only an earlier checkpoint of the same method may
    be replaced without --overwrite."""
    from .io.outputs import check_output_file
    from .methods.checkpoint import checkpoint_kind

    return check_output_file(args.output, inputs, lambda p: checkpoint_kind(p) == method_cls.kind,
                             f"{method_cls.name} checkpoint", args.overwrite)


def cmd_segment(args) -> int:
    from .io import read_volume, write_labels
    from .methods import ZeroShot, check_prompts, get_method, group_prompts, run_task
    from .models import VolumeEmbeddings

    method_cls = get_method(args.method)
    out = _labels_output(args, _output_path(args.output, args.image), [args.image, args.checkpoint])
    volume = read_volume(args.image)
    if args.propagate and method_cls is not ZeroShot:
        raise SamedError(f"--propagate is for the zero-shot method; {args.method} "
                         + ("segments in 3D from clicks by itself" if args.method == "promise" else
                            "segments the prompted slices only"))
    prompts = group_prompts(args.box, args.box3d, args.point, propagate=args.propagate)
    if method_cls.prompts:
        check_prompts(prompts, volume.shape)  # before any model load or progress bar
    if method_cls.trained:
        if args.checkpoint is None:
            raise SamedError(f"method {args.method} needs its trained checkpoint: --checkpoint CKPT")
        method = method_cls.open(args.checkpoint, args.device, args.precision)
        embeddings = VolumeEmbeddings(volume, method.backbone, args.window or method.window, args.cache)
    else:
        backbone, embeddings = _embeddings(args, volume)
        method = method_cls(backbone)
    bar, update = _progress_bar("segment")
    with bar:
        if isinstance(method, ZeroShot):
            labels, objects = run_task(method.segment_reporting(embeddings, prompts), update)
        else:
            labels, objects = run_task(method.segment(embeddings, prompts), update), []
    for obj in objects:
        print(obj.describe(), file=sys.stderr)
    write_labels(labels, out, volume)
    print(out)
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate_masks
    from .io import read_labels

    pred, gt = read_labels(args.pred), read_labels(args.gt)
    if pred.shape != gt.shape:
        raise SamedError(f"PRED shape {pred.shape} does not match GT shape {gt.shape}; they must share a grid")
    if args.label is None:
        p, g = pred.data != 0, gt.data != 0
        if not g.any():
            raise SamedError(f"GT {args.gt} holds no labelled voxel: nothing to compare against")
    else:
        p, g = pred.data == args.label, gt.data == args.label
        if not g.any():
            raise SamedError(f"label {args.label} does not occur in GT {args.gt}")
    if not p.any():
        print("napari-samed: warning: the prediction is empty; distances are undefined (null)", file=sys.stderr)
    print(json.dumps(evaluate_masks(p, g, gt.spacing, args.tolerance)))
    return 0


def cmd_train_fewshot(args) -> int:
    from .io import read_labels, read_volume
    from .methods import FewShot, run_task

    _checkpoint_output(args, FewShot, [args.image, args.labels, args.checkpoint])
    volume = read_volume(args.image)
    labels = read_labels(args.labels)
    if labels.shape != volume.shape:
        raise SamedError(f"LABELS shape {labels.shape} does not match IMAGE shape {volume.shape}")
    bad = [z for z in args.slices if not 0 <= z < volume.shape[0]]
    if bad:
        raise SamedError(f"slice {bad[0]} is outside the volume (0..{volume.shape[0] - 1})")
    annotations = {z: labels.data[z].copy() for z in args.slices}
    del labels
    backbone, embeddings = _embeddings(args, volume)
    method = FewShot(backbone)
    bar, update = _progress_bar("train fewshot")
    with bar:
        losses = run_task(method.fit(embeddings, annotations, args.label_values, args.iterations), update)
    method.save(args.output)
    print(f"napari-samed: {len(losses)} iterations, final loss {losses[-1]:.4f}", file=sys.stderr)
    print(args.output)
    return 0


def _dataset(paths: list[Path]):
    from .training import Dataset

    if len(paths) == 1:
        return Dataset.from_folder(paths[0])
    if len(paths) % 2:
        raise SamedError("DATA is one MSD-style folder or IMAGE LABEL pairs; got an odd number of files")
    return Dataset.from_pairs(zip(paths[::2], paths[1::2], strict=True))


def _dataset_files(args) -> list[Path]:
    """Every file a training command reads: its dataset's images and labels and the backbone weights."""
    return [p for case in _dataset(args.data).cases for p in (case.image, case.label)] + [args.checkpoint]


def _training_slices(args, backbone):
    from .methods import run_task
    from .training import load_slices, parse_structures

    structures = parse_structures(args.structures)
    bar, update = _progress_bar("prepare")
    with bar:
        splits = run_task(load_slices(_dataset(args.data), structures, backbone, args.window or "auto", args.cache,
                                      args.seed), update)
    print(f"napari-samed: {splits.summary()}", file=sys.stderr)
    return structures, splits


def cmd_train_cotrain(args) -> int:
    from .methods import CoTrain, run_task
    from .methods.cotrain import parse_jitter
    from .models import load_backbone

    _checkpoint_output(args, CoTrain, _dataset_files(args))
    backbone = load_backbone(args.model, args.checkpoint, args.device, args.precision)
    structures, splits = _training_slices(args, backbone)
    method = CoTrain(backbone, structures, args.mode, parse_jitter(args.jitter, structures))
    bar, update = _progress_bar(f"train {args.mode}")
    with bar:
        history = run_task(method.fit(splits, args.epochs, args.batch, args.lr, args.seed, args.output,
                                      args.window or "auto"), update)
    best = max(history, key=lambda h: h["val_dsc"])
    print(f"napari-samed: best validation DSC {best['val_dsc']:.4f} at epoch {best['epoch']}", file=sys.stderr)
    print(args.output)
    return 0


def cmd_train_promise(args) -> int:
    from dataclasses import replace

    from .methods import Promise, run_task
    from .methods.promise.config import default_config
    from .models import load_backbone
    from .training import Structure

    try:
        target = Structure("target", tuple(int(v) for v in args.label.split("+")))
    except ValueError:
        raise SamedError(f"--label is a label value or values joined by + (2, 1+2); got {args.label!r}") from None
    if args.crop is not None and args.crop < 8:
        raise SamedError(f"--crop must be at least 8; got {args.crop}")
    _checkpoint_output(args, Promise, _dataset_files(args))
    dataset = _dataset(args.data)
    dataset.check_structures([target])
    backbone = load_backbone(args.backbone, args.checkpoint, args.device, args.precision)
    config = default_config(backbone.name)
    method = Promise(backbone, config if args.crop is None else replace(config, crop=args.crop))
    cases = []
    for case in dataset.cases:
        volume, labels = case.load()
        cases.append((volume, target.mask(labels)))
    if not any(mask.any() for _, mask in cases):
        raise SamedError(f"label value(s) {args.label} occur in none of the {len(cases)} volumes")
    bar, update = _progress_bar("train promise")
    with bar:
        losses = run_task(method.fit(cases, args.epochs, args.output, args.window or "auto", args.crops,
                                     args.cache, args.seed), update)
    print(f"napari-samed: {len(losses)} steps, {method.config.describe()}, last epoch's mean loss "
          f"{sum(losses[-len(cases) * args.crops:]) / max(len(cases) * args.crops, 1):.4f}", file=sys.stderr)
    print(args.output)
    return 0


def cmd_benchmark_cotrain(args) -> int:
    from .evaluation.cotrain_report import benchmark_cotrain
    from .io.outputs import check_writable_folder
    from .methods import run_task
    from .methods.cotrain import parse_jitter
    from .models import load_backbone

    check_writable_folder(args.output, "report folder")
    backbone = load_backbone(args.model, args.checkpoint, args.device, args.precision)
    structures, splits = _training_slices(args, backbone)
    bar, update = _progress_bar("benchmark cotrain")
    with bar:
        run_task(benchmark_cotrain(splits, backbone, args.output, parse_jitter(args.jitter, structures), args.epochs,
                                   args.batch, args.lr, args.seed, args.window or "auto"), update)
    print((args.output / "table1.md").read_text())
    return 0


def cmd_benchmark(args) -> int:
    from .evaluation.compare import parse_methods, with_prompts
    from .evaluation.report import benchmark, find_cases
    from .io.outputs import check_writable_folder
    from .methods import PROMPT_KINDS, run_task

    if args.data is None or args.report is None:
        raise SamedError("benchmark needs --data DIR and -o OUT (or a suite: benchmark cotrain DATA -o DIR)")
    check_writable_folder(args.report, "report folder")
    cases, notes = find_cases(args.data)
    slots = with_prompts(parse_methods(args.methods), PROMPT_KINDS, args.prompts)
    for note in notes:
        print(f"napari-samed: {note}", file=sys.stderr)
    bar, update = _progress_bar("benchmark")
    with bar:
        run_task(benchmark(cases, slots, args.report, args.device, args.window, args.cache, args.tolerance, notes,
                           args.command_line, args.precision), update)
    print(args.report / "report.md")
    return 0


def cmd_embed(args) -> int:
    from .io import read_volume
    from .methods import Progress

    volume = read_volume(args.image)
    _, embeddings = _embeddings(args, volume)
    bar, update = _progress_bar("embed")
    with bar:
        for done, total in embeddings.compute():
            update(Progress(done, total, f"{embeddings.rate:.2f} slices/s"))
    print(embeddings.dir)
    return 0


def cmd_sample(args) -> int:
    from .io.outputs import check_writable_folder
    from .sample_data import write_sample, write_sample_dataset

    check_writable_folder(args.output, "sample folder")
    if args.cases is not None:
        print(write_sample_dataset(args.output, args.cases, args.seed))
        return 0
    for path in write_sample(args.output, args.seed):
        print(path)
    return 0


def cmd_demo(args) -> int:
    if args.headless:
        from .evaluation.report import demo_report
        from .io.outputs import check_writable_folder
        from .methods import run_task

        check_writable_folder(args.output, "report folder")
        bar, update = _progress_bar("demo")
        with bar:
            run_task(demo_report(args.output, args.device, args.cache, precision=args.precision), update)
        print(args.output / "report.md")
        return 0
    import napari

    from .widgets.demo import open_demo

    open_demo(napari.Viewer(title="napari-samed demo"))
    napari.run()
    return 0


COMMANDS = {"segment": cmd_segment, "evaluate": cmd_evaluate, "embed": cmd_embed, "sample": cmd_sample,
            "demo": cmd_demo}


TRAINERS = {"fewshot": cmd_train_fewshot, "cotrain": cmd_train_cotrain, "promise": cmd_train_promise}
BENCHMARKS = {"cotrain": cmd_benchmark_cotrain}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"napari-samed: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # timm and MONAI deprecation notices
        warnings.showwarning = _show_warning  # one line each
        return _run(argv)


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["napari-samed", *argv])
    try:
        if args.command == "train":
            return TRAINERS[args.method](args)
        if args.command == "benchmark":
            return BENCHMARKS[args.suite](args) if args.suite else cmd_benchmark(args)
        return COMMANDS[args.command](args)
    except SamedError as exc:
        print(f"napari-samed: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("napari-samed: interrupted (finished embeddings stay cached)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

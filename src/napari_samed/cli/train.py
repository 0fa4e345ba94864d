"""``napari-samed train fewshot | cotrain | promise``."""

from __future__ import annotations

import sys

from ..errors import SamedError
from . import options


def add_parser(sub) -> None:
    train = sub.add_parser("train", help="train a method").add_subparsers(dest="method", required=True,
                                                                          metavar="METHOD")
    add_fewshot(train)
    add_cotrain_options(train.add_parser("cotrain", help="co-train the mask decoder with batched boxes of several "
                                                         "structures"),
                        "CKPT", "checkpoint to write (the epoch with the best validation DSC)")
    train.choices["cotrain"].set_defaults(run=run_cotrain)
    add_promise(train)


def add_fewshot(train) -> None:
    p = train.add_parser("fewshot", help="fine-tune the few-shot decoder on a few labelled slices")
    p.add_argument("image", type=options.path, metavar="IMAGE")
    p.add_argument("labels", type=options.path, metavar="LABELS", help="label volume on IMAGE's grid")
    p.add_argument("-o", "--output", type=options.path, required=True, metavar="CKPT")
    options.add_overwrite(p)
    p.add_argument("--slices", required=True, type=options.int_list("--slices"), metavar="Z1,Z2,...",
                   help="the labelled slices to train on; LABELS' other slices are never used")
    p.add_argument("--labels", dest="label_values", type=options.int_list("--labels"), metavar="1,2,...",
                   help="label values to learn (default: all found on the slices)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--budget", type=options.positive_float("--budget"), metavar="SECONDS",
                        help="most seconds of training (default: no limit; it stops by itself within a fixed number "
                             "of steps, sooner once the labelled slices are learnt or no longer improve)")
    length.add_argument("--iterations", type=options.positive_int("--iterations"),
                        help="exactly this many optimiser steps instead of stopping by itself")
    p.add_argument("--also", nargs=3, action="append", default=[], metavar=("IMAGE", "LABELS", "Z1,Z2,..."),
                   help="another image, its label volume and its labelled slices to train on too; repeat for more "
                        "(their window must be IMAGE's)")
    p.add_argument("--init", type=options.path, metavar="CKPT",
                   help="start from this few-shot model (the last one, before more slices were labelled)")
    p.add_argument("--suggest", type=options.positive_int("--suggest"), metavar="K",
                   help="then print the K slices of IMAGE to label next (embeds the whole volume)")
    options.add_model(p)
    p.set_defaults(run=run_fewshot)


def add_cotrain_options(p, output: str, output_help: str, mode: bool = True) -> None:
    """DATA, -o and the training options of ``train cotrain`` and (without ``--mode``) ``benchmark cotrain``."""
    options.add_dataset(p)
    p.add_argument("-o", "--output", type=options.path, required=True, metavar=output, help=output_help)
    p.add_argument("--structures", required=True, metavar="NAME=V[+V],...",
                   help="the structures to co-train and their label values, e.g. organ=1,lesion=2")
    if mode:
        p.add_argument("--mode", choices=["cotrain", "single"], default="cotrain",
                       help="cotrain: all structures of a slice per step, max loss (default); single: one per step")
    options.add_overwrite(p, inherited=not mode)
    p.add_argument("--epochs", type=options.positive_int("--epochs"), default=10,
                   help="passes over the training slices (default 10)")
    p.add_argument("--batch", type=options.positive_int("--batch"), default=4,
                   help="slices per optimiser step (default 4)")
    p.add_argument("--lr", type=options.positive_float("--lr"), default=1e-4, help="AdamW learning rate (default 1e-4)")
    p.add_argument("--jitter", metavar="NAME=AMOUNT,...",
                   help="largest outward shift of each box side per structure: a fraction of the object's size "
                        "(0.1, the default) or pixels (5px)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the shuffling and the jitter")
    options.add_model(p)


def add_promise(train) -> None:
    p = train.add_parser("promise", help="train ProMISe (3D segmentation from one click) on labelled volumes")
    options.add_dataset(p)
    p.add_argument("-o", "--output", type=options.path, required=True, metavar="CKPT",
                   help="checkpoint, written after every epoch; an existing one of the same configuration resumes")
    p.add_argument("--label", required=True, metavar="V[+V...]",
                   help="the target's label value(s), e.g. 2 or 1+2 for their union")
    options.add_model(p, help_extra="; lite-medsam is the CPU configuration, a SAM ViT with --checkpoint the "
                                    "paper's (for a GPU)")
    p.add_argument("--backbone", dest="model", action=options.Deprecated, new="--model", help="old name of --model")
    p.add_argument("--crop", type=crop_side,
                   help="crop side on the crop grid (default 32 on lite-medsam, 128 on a ViT)")
    p.add_argument("--epochs", type=options.positive_int("--epochs"), default=20,
                   help="passes over the training volumes (default 20)")
    p.add_argument("--crops", type=options.positive_int("--crops"), default=10,
                   help="crops drawn from every volume per epoch (default 10)")
    p.add_argument("--validate", nargs="+", type=options.path, metavar="DATA",
                   help="held-out labelled volumes (a folder or IMAGE LABEL pairs): after each epoch one click at "
                        "the target's deepest voxel scores the model on them, and the best epoch is kept")
    p.add_argument("--seed", type=int, default=0)
    options.add_overwrite(p)
    p.set_defaults(run=run_promise)


def crop_side(text: str) -> int:
    """--crop: a whole number of at least ProMISe's smallest crop."""
    from ..methods.promise.config import MIN_CROP

    return options.positive_int("--crop", MIN_CROP)(text)


def labelled_image(image, labels, slices):
    """IMAGE's volume and {slice: labels} of LABELS' ``slices``, checked to match."""
    from ..io import read_labels, read_volume

    volume, found = read_volume(image), read_labels(labels)
    if found.shape != volume.shape:
        raise SamedError(f"{labels} shape {found.shape} does not match {image} shape {volume.shape}")
    bad = [z for z in slices if not 0 <= z < volume.shape[0]]
    if bad:
        raise SamedError(f"slice {bad[0]} is outside the volume (0..{volume.shape[0] - 1}) of {image}")
    return volume, {z: found.data[z].copy() for z in slices}


def run_fewshot(args) -> int:
    from ..methods import FewShot, suggest
    from ..models import VolumeEmbeddings
    from ..tasks import run_task

    others = [(options.path(image), options.path(labels), options.int_list("--also")(slices))
              for image, labels, slices in args.also]
    options.checkpoint_output(args, FewShot, [args.image, args.labels, args.checkpoint,
                                              *(p for image, labels, _ in others for p in (image, labels))])
    volume, annotations = labelled_image(args.image, args.labels, args.slices)
    backbone, embeddings = options.embeddings(args, volume)
    every = [(embeddings, annotations)]
    for image, labels, slices in others:
        other, labelled = labelled_image(image, labels, slices)
        every.append((VolumeEmbeddings(other, backbone, args.window or "auto", args.cache), labelled))
    start = FewShot.open(args.init, backbone=backbone) if args.init else None
    method = FewShot(backbone)
    bar, update = options.progress_bar("train fewshot", "step")
    with bar:
        losses = run_task(method.fit([e for e, _ in every], [a for _, a in every], args.label_values,
                                     args.iterations, args.budget, start=start), update)
    method.save(args.output)
    if start is not None:
        print(f"napari-samed: went on from {args.init}" if method.continued else
              f"napari-samed: {args.init} learnt labels {start.labels}, not {method.labels}: trained from the "
              "pretrained decoder", file=sys.stderr)
    print(f"napari-samed: {method.stopped}, final loss {losses[-1]:.4f}; {method.drawing} (they match the "
          "labelled slices better)", file=sys.stderr)
    print(args.output)
    if args.suggest:
        bar, update = options.progress_bar("suggest", "slice")
        with bar:
            picks = run_task(suggest(method, embeddings, sorted(annotations), args.suggest), update)
        for pick in picks:
            print(f"slice {pick.z}: {pick.why}")
        if len(picks) < args.suggest:
            print(f"napari-samed: {len(picks)} slice(s) to suggest; the others are labelled or far from the "
                  "structure", file=sys.stderr)
    return 0


def training_slices(args, backbone):
    """The structures of --structures and the embedded, split slices of DATA."""
    from ..tasks import run_task
    from ..training import Dataset, load_slices, parse_structures

    structures = parse_structures(args.structures)
    bar, update = options.progress_bar("prepare")
    with bar:
        splits = run_task(load_slices(Dataset.from_paths(args.data), structures, backbone, args.window or "auto",
                                      args.cache, args.seed), update)
    print(f"napari-samed: {splits.summary()}", file=sys.stderr)
    return structures, splits


def run_cotrain(args) -> int:
    from ..methods import CoTrain
    from ..methods.cotrain import parse_jitter
    from ..tasks import run_task
    from ..training import Dataset

    options.checkpoint_output(args, CoTrain, [*Dataset.from_paths(args.data).files(), args.checkpoint])
    backbone = options.backbone(args)
    structures, splits = training_slices(args, backbone)
    method = CoTrain(backbone, structures, args.mode, parse_jitter(args.jitter, structures))
    bar, update = options.progress_bar(f"train {args.mode}", "step")
    with bar:
        history = run_task(method.fit(splits, args.epochs, args.batch, args.lr, args.seed, args.output), update)
    best = max(history, key=lambda h: h["val_dsc"])
    print(f"napari-samed: best validation DSC {best['val_dsc']:.4f} at epoch {best['epoch']}", file=sys.stderr)
    print(args.output)
    return 0


def join_torchrun(device: str) -> str:
    """Under ``torchrun`` (WORLD_SIZE > 1): join its process group (NCCL on CUDA, else Gloo) and return this
    process's device (cuda:LOCAL_RANK on CUDA); else ``device`` unchanged."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return device
    from ..models import resolve_device

    cuda = resolve_device(device).type == "cuda"
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    if not cuda:
        return "cpu"
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    return f"cuda:{os.environ['LOCAL_RANK']}"


def run_promise(args) -> int:
    from dataclasses import replace

    import torch

    from ..methods import Promise
    from ..methods.promise.config import default_config
    from ..methods.promise.method import describe_epoch
    from ..tasks import run_task
    from ..training import Dataset, Structure

    target = Structure.parse_values(args.label)
    dataset = Dataset.from_paths(args.data)
    held_out = Dataset.from_paths(args.validate) if args.validate else None
    options.checkpoint_output(args, Promise, [*dataset.files(), *(held_out.files() if held_out else []),
                                              args.checkpoint])
    dataset.check_structures([target])
    backbone = options.backbone(args, join_torchrun(args.device))
    config = default_config(backbone.name)
    torch.manual_seed(args.seed)  # the network's initialisation too: a run is repeatable
    method = Promise(backbone, config if args.crop is None else replace(config, crop=args.crop), target.values)
    cases = dataset.target_cases(target)
    validation = held_out.target_cases(target) if held_out else []
    bar, update = options.progress_bar("train promise", "step")
    with bar:
        losses = run_task(method.fit(cases, args.epochs, args.output, args.window or "auto", args.crops,
                                     args.cache, args.seed, validation), update)
    for record in method.history:
        print(f"napari-samed: {describe_epoch(record, args.epochs)}", file=sys.stderr)
    last = losses[-len(cases) * args.crops:]
    print(f"napari-samed: {len(losses)} steps, {method.config.describe()}, last epoch's mean loss "
          f"{sum(last) / max(len(last), 1):.4f}", file=sys.stderr)
    print(args.output)
    return 0

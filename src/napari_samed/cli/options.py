"""Argument types and option groups shared by the commands, and the parser that reports errors in one line."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, with exit status 2, like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"napari-samed: error: {message} (see {self.prog} --help)\n")


def warn(message: str) -> None:
    print(f"napari-samed: warning: {message}", file=sys.stderr)


class Deprecated(argparse.Action):
    """An old spelling of an option: stores into the new one's ``dest`` and warns with the new spelling."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn(f"{option_string} is deprecated; use {self.new}")
        setattr(namespace, self.dest, values)


def positive_int(what: str, low: int = 1):
    """A whole number of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            kind = "positive whole number" if low == 1 else f"whole number of at least {low}"
            raise argparse.ArgumentTypeError(f"{what} must be a {kind}; got {text!r}")
        return value

    return parse


def positive_float(what: str):
    """A finite number above 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{what} must be a finite number above 0; got {text!r}")
        return value

    return parse


def path(text: str) -> Path:
    """A file or folder name (not empty: an empty one would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a path cannot be empty")
    return Path(text)


def tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"--tolerance is a distance in mm, 0 or more; got {text!r}")
    return value


def int_list(what: str):
    def parse(text: str) -> list[int]:
        try:
            return [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be comma-separated integers; got {text!r}") from None

    return parse


def prompt(kind: str):
    """A flat prompt of ``kind`` (``box``, ``box3d``, ``point``), as `methods.prompts.parse_prompt` reads it."""

    def parse(text: str) -> tuple[int, ...]:
        from ..errors import SamedError
        from ..methods.prompts import parse_prompt

        try:
            return parse_prompt(kind, text)
        except SamedError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def prompt_kinds(text: str) -> list[str]:
    from ..methods import PROMPT_KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in PROMPT_KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"prompt kinds are {', '.join(PROMPT_KINDS)} (comma-separated); got {text!r}")
    return kinds


def add_model(p: argparse.ArgumentParser, help_extra: str = "") -> None:
    """--model and --checkpoint (the backbone and its weights file), then the run options."""
    from ..models.registry import BACKBONES, DEFAULT_BACKBONE

    p.add_argument("--model", choices=list(BACKBONES),
                   help=f"SAM-family backbone (default {DEFAULT_BACKBONE}, bundled){help_extra}")
    p.add_argument("--checkpoint", type=path, help="backbone weights file, for models other than lite-medsam")
    add_run(p)


def add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", help="intensity window: ct, mr, auto (default) or LO,HI")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    add_precision(p)
    p.add_argument("--cache", type=path, help="embedding cache folder (default: the user cache folder)")


def add_precision(p: argparse.ArgumentParser) -> None:
    from ..models.registry import PRECISIONS

    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="image encoder arithmetic: auto (default: fp16 on CUDA, bf16 on a CPU with native bf16, else "
                        "fp32; a trained model's own when it runs at full speed), fp32 (exact), bf16, fp16 "
                        "(CUDA); part of the embedding cache key")


def add_overwrite(p: argparse.ArgumentParser, inherited: bool = False) -> None:
    """--overwrite; ``inherited``: a sub-command's, which keeps the value its parent command parsed when not given."""
    p.add_argument("--overwrite", action="store_true", default=argparse.SUPPRESS if inherited else False,
                   help="replace an existing output file (or a file in an output folder) even when napari-samed did "
                        "not write it there")


def add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="+", type=Path, metavar="DATA",
                   help="an MSD-style folder (imagesTr/, labelsTr/, dataset.json) or IMAGE LABEL pairs")


def progress_bar(desc: str, unit: str = "slice"):
    """A tqdm bar on stderr counting ``unit``s and the callback that moves it with each `Progress`."""
    from tqdm import tqdm

    # Shown after half a second: input refused at once leaves its one-line error alone.
    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, delay=0.5)

    def update(step) -> None:
        bar.total = step.total
        bar.set_postfix_str(step.message, refresh=False)
        bar.update(step.done - bar.n)

    return bar, update


def backbone(args, device: str | None = None):
    """The backbone of --model (default: the bundled one) and --checkpoint, on --device (or ``device``)."""
    from ..models import load_backbone
    from ..models.registry import DEFAULT_BACKBONE

    return load_backbone(args.model or DEFAULT_BACKBONE, args.checkpoint, device or args.device, args.precision)


def embeddings(args, volume):
    """The backbone of --model/--checkpoint and ``volume``'s embeddings under --window and --cache."""
    from ..models import VolumeEmbeddings

    model = backbone(args)
    return model, VolumeEmbeddings(volume, model, args.window or "auto", args.cache)


def checkpoint_output(args, method_cls, inputs) -> Path:
    """-o CKPT of a training command, checked before any work: only an earlier checkpoint of the same method may
    be replaced without --overwrite."""
    from ..io.outputs import check_output_file
    from ..methods.trained import checkpoint_entry

    return check_output_file(args.output, inputs, lambda p: checkpoint_entry(p, "kind") == method_cls.kind,
                             f"{method_cls.name} checkpoint", args.overwrite)

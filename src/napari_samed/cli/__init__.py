"""The ``napari-samed`` command: the widgets' operations, headless.

Coordinates are voxel indices of the (z, y, x) view the reader produces (``napari_samed.io``). Each command's
parser and its run function live in a small module (`segment`, `train`, `benchmark`, `apply`, `tools`); the parser sets
``run``.
"""

from __future__ import annotations

import shlex
import sys
import warnings
from collections.abc import Sequence

from ..errors import SamedError
from . import apply, benchmark, segment, tools, train
from .options import EXIT_BAD_INPUT, Parser, warn

__all__ = ["EXIT_BAD_INPUT", "build_parser", "main"]


def build_parser() -> Parser:
    parser = Parser(prog="napari-samed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    segment.add_parser(sub)
    tools.add_parsers(sub)
    train.add_parser(sub)
    benchmark.add_parser(sub)
    apply.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # timm and MONAI deprecation notices
        warnings.showwarning = lambda message, *_args, **_kwargs: warn(str(message))  # one line each
        return _run(argv)


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["napari-samed", *argv])
    try:
        return args.run(args)
    except SamedError as exc:
        print(f"napari-samed: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("napari-samed: interrupted (finished embeddings stay cached)", file=sys.stderr)
        return 130

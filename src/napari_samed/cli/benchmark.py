"""``napari-samed benchmark``: methods scored on labelled volumes with simulated prompts, and its suites."""

from __future__ import annotations

import sys

from ..errors import SamedError
from . import options
from .train import add_cotrain_options, training_slices


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="score methods on labelled volumes with simulated prompts, or run a "
                                         "suite (cotrain); write a report")
    p.add_argument("--data", type=options.path, metavar="DIR",
                   help="folder of IMAGE / IMAGE_label volume pairs (e.g. X_img_uint8.nii.gz, X_label.nii.gz)")
    p.add_argument("-o", "--output", dest="report", type=options.path, metavar="OUT",
                   help="report folder: report.md, results.csv, a PNG per case")
    p.add_argument("--methods", default="zero-shot:lite-medsam", metavar="METHOD[:MODEL|:CKPT],...",
                   help="methods to compare: zero-shot:MODEL[=WEIGHTS], cotrain:CKPT, fewshot:CKPT, "
                        "promise:CKPT (default zero-shot:lite-medsam); trained ones use their own window")
    p.add_argument("--prompts", type=options.prompt_kinds, metavar="box,box3d,click",
                   help="simulated prompt kinds to use (default: every kind each method understands)")
    p.add_argument("--tolerance", type=options.tolerance, default=1.0, help="NSD tolerance in mm (default 1)")
    options.add_run(p)  # --window auto also takes uint8 images as already windowed (0,255)
    options.add_overwrite(p)
    p.set_defaults(run=run)
    suites = p.add_subparsers(dest="suite", metavar="SUITE")
    cotrain = suites.add_parser("cotrain", help="the co-training paper's Table 1: untouched, single prompt, co-train")
    add_cotrain_options(cotrain, "DIR", "report folder: table1.md, table1.csv, overlays/, the two checkpoints",
                        mode=False)
    cotrain.set_defaults(run=run_cotrain)


def run(args) -> int:
    from ..evaluation.compare import parse_methods, with_prompts
    from ..evaluation.report import benchmark, find_cases
    from ..io.outputs import OutputFolder
    from ..methods import PROMPT_KINDS, get_method
    from ..tasks import run_task

    if args.data is None or args.report is None:
        raise SamedError("benchmark needs --data DIR and -o OUT (or a suite: benchmark cotrain DATA -o DIR)")
    methods = parse_methods(args.methods)
    for slot in methods:
        understood = get_method(slot.method).prompts
        if args.prompts and understood and not set(understood) & set(args.prompts):
            options.warn(f"{slot.method} takes {', '.join(understood)} prompts; --prompts {','.join(args.prompts)} "
                         f"gives it none of them: it gets {understood[0]}")
    slots = with_prompts(methods, PROMPT_KINDS, args.prompts)
    cases, notes = find_cases(args.data)
    folder = OutputFolder(args.report, "report folder", args.overwrite)
    bar, update = options.progress_bar("benchmark")
    with folder.claim(["report.md", "results.csv", *(f"{case.name}.png" for case in cases)]), bar:
        for note in notes:
            print(f"napari-samed: {note}", file=sys.stderr)
        run_task(benchmark(cases, slots, args.report, args.device, args.window, args.cache, args.tolerance,
                           notes, args.command_line, args.precision), update)
    print(args.report / "report.md")
    return 0


def run_cotrain(args) -> int:
    from ..evaluation.cotrain_report import benchmark_cotrain
    from ..io.outputs import OutputFolder
    from ..methods.cotrain import parse_jitter
    from ..tasks import run_task

    folder = OutputFolder(args.output, "report folder", args.overwrite)
    with folder.claim(["table1.md", "table1.csv", "single.ckpt", "cotrain.ckpt"], ["overlays"]):
        backbone = options.backbone(args)
        structures, splits = training_slices(args, backbone)
        bar, update = options.progress_bar("benchmark cotrain", "step")
        with bar:
            run_task(benchmark_cotrain(splits, backbone, args.output, parse_jitter(args.jitter, structures),
                                       args.epochs, args.batch, args.lr, args.seed), update)
    print((args.output / "table1.md").read_text())
    return 0

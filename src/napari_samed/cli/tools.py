"""``napari-samed evaluate | embed | sample | demo``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import SamedError
from . import options

#: ``demo --sample`` choices, the keys of `sample_data.SAMPLES` (not imported here: the command starts fast).
SAMPLE_NAMES = ("synthetic", "chest-ct")


def add_parsers(sub) -> None:
    ev = sub.add_parser("evaluate", help="print DSC, IoU, NSD, ASSD, HD95 of PRED against GT as JSON")
    ev.add_argument("pred", type=options.path, metavar="PRED")
    ev.add_argument("gt", type=options.path, metavar="GT")
    ev.add_argument("--label", type=int, help="compare only this label value (default: any non-zero)")
    ev.add_argument("--tolerance", type=options.tolerance, default=1.0, help="NSD tolerance in mm (default 1)")
    ev.set_defaults(run=run_evaluate)

    emb = sub.add_parser("embed", help="precompute the embedding cache of a volume")
    emb.add_argument("image", type=options.path, metavar="IMAGE")
    options.add_model(emb)
    emb.set_defaults(run=run_embed)

    sample = sub.add_parser("sample", help="write the synthetic sample CT volume and its labels")
    sample.add_argument("-o", "--output", type=options.path, default=Path("sample_data"), metavar="DIR")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--cases", type=options.positive_int("--cases"), metavar="N",
                        help="write an MSD-style training folder of N phantoms (seeds SEED, SEED+1, ...) instead")
    options.add_overwrite(sample)
    sample.set_defaults(run=run_sample)

    info = sub.add_parser("info", help="what this machine offers: device, CPU capability, precision, threads, the "
                                       "last embedding's speed")
    info.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    info.add_argument("--cache", type=options.path, help="embedding cache folder (default: the user cache folder)")
    info.set_defaults(run=run_info)

    demo = sub.add_parser("demo", help="open napari with the sample volume and the Segment widget docked")
    demo.add_argument("--sample", choices=SAMPLE_NAMES, default=SAMPLE_NAMES[0],
                      help="synthetic: the phantom (fast); chest-ct: a real chest CT, the object its aorta "
                           "(default %(default)s)")
    demo.add_argument("--headless", action="store_true",
                      help="no display: zero-shot, five-slice few-shot and their comparison on the sample, as a "
                           "report in OUT")
    demo.add_argument("-o", "--output", type=options.path, metavar="OUT",
                      help="report folder of --headless (default samed_demo)")
    demo.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda (--headless)")
    options.add_precision(demo)
    demo.add_argument("--cache", type=options.path, help="embedding cache folder (--headless)")
    options.add_overwrite(demo)
    demo.set_defaults(run=cmd_demo)


def run_evaluate(args) -> int:
    from ..evaluation.metrics import evaluate_labels
    from ..io import read_labels

    pred, gt = read_labels(args.pred), read_labels(args.gt)
    print(json.dumps(evaluate_labels(pred.data, gt.data, gt.spacing, args.label, args.tolerance,
                                     (f"PRED {args.pred}", f"GT {args.gt}"))))
    return 0


def run_embed(args) -> int:
    from ..io import read_volume
    from ..tasks import Progress

    volume = read_volume(args.image)
    _, embeddings = options.embeddings(args, volume)
    bar, update = options.progress_bar("embed")
    with bar:
        for done, total in embeddings.compute():
            update(Progress(done, total, f"{embeddings.rate:.2f} slices/s"))
    print(embeddings.dir)
    return 0


def run_info(args) -> int:
    from ..models.cache import cache_root
    from ..models.machine import describe_machine

    for key, value in describe_machine(args.device, cache_root(args.cache)).items():
        print(f"{key}: {value}")
    return 0


def run_sample(args) -> int:
    from ..io.outputs import OutputFolder
    from ..sample_data import SAMPLES, write_sample, write_sample_dataset

    folder = OutputFolder(args.output, "sample folder", args.overwrite)
    if args.cases is not None:
        with folder.claim(["dataset.json"], ["imagesTr", "labelsTr"]):
            print(write_sample_dataset(args.output, args.cases, args.seed))
    else:
        with folder.claim(SAMPLES["synthetic"].files):
            for path in write_sample(args.output, args.seed):
                print(path)
    return 0


def cmd_demo(args) -> int:
    """The demo: a report headless, else napari with the sample (the only command that imports napari)."""
    if args.headless:
        from ..evaluation.report import demo_files, demo_report
        from ..io.outputs import OutputFolder
        from ..models import resolve_device
        from ..models.cache import cache_root
        from ..tasks import run_task

        resolve_device(args.device)  # a bad --device or --cache before the sample is written
        if args.cache is not None:
            cache_root(args.cache)
        out = args.output or Path("samed_demo")
        bar, update = options.progress_bar("demo")
        with OutputFolder(out, "report folder", args.overwrite).claim(demo_files(args.sample)), bar:
            run_task(demo_report(out, args.device, args.cache, precision=args.precision, sample=args.sample),
                     update)
        print(out / "report.md")
        return 0
    given = [name for name, value in (("-o", args.output), ("--device", args.device != "auto"),
                                      ("--precision", args.precision != "auto"), ("--cache", args.cache),
                                      ("--overwrite", args.overwrite)) if value]
    if given:
        raise SamedError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for napari-samed demo --headless; "
                         f"the demo in napari takes none")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise SamedError("napari-samed demo opens napari, which needs a display, and none is set (DISPLAY, "
                         "WAYLAND_DISPLAY); without one, run napari-samed demo --headless -o OUT")
    import napari

    from ..widgets.demo import open_demo
    from ..widgets.model_code import keep_triton_out

    keep_triton_out()  # triton first, before napari draws with Mesa
    open_demo(napari.Viewer(title="napari-samed demo"), args.sample)
    napari.run()
    return 0

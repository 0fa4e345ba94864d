"""``napari-samed apply``: a model over a cohort, one label volume per case, in parallel on Dask if asked."""

from __future__ import annotations

import argparse
import sys

from . import options

EXAMPLE = """a manifest with prompts (a cell that holds commas is quoted, as CSV writers do):
  image,reference,box3d,point
  case01.nii.gz,labels/case01.nii.gz,"10,40,52,30,98,120",
  case02.nii.gz,,,"22,80,96;22,60,70,0"
"""


def add_parser(sub) -> None:
    p = sub.add_parser("apply", help="segment a cohort with a trained or zero-shot model (prompts from a CSV "
                                     "manifest): one label volume per case, a summary; resumable, in parallel on "
                                     "Dask with --workers or --scheduler",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLE)
    p.add_argument("model", type=options.path, metavar="CKPT",
                   help="a trained model (napari-samed train fewshot, cotrain, promise) or zero-shot:MODEL[=WEIGHTS] "
                        "(e.g. zero-shot:lite-medsam, as benchmark --methods spells it); every model but few-shot "
                        "segments from each case's prompts in the manifest")
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="NIfTI/TIFF files, folders (their NIfTI/TIFF files and DICOM series), globs, or a CSV "
                        "manifest with columns image[,reference][,box][,box3d][,point] (paths relative to the CSV; "
                        "each prompt cell a ';'-separated list written as segment's --box Z,Y0,X0,Y1,X1[,LABEL], "
                        "--box3d Z0,Y0,X0,Z1,Y1,X1, --point Z,Y,X[,POLARITY[,LABEL]])")
    p.add_argument("-o", "--output", type=options.path, required=True, metavar="DIR",
                   help="output folder: DIR/CASE.nii.gz (.tif for TIFF input) per case, summary.csv, summary.md; "
                        "a rerun skips the finished cases")
    p.add_argument("--workers", type=options.positive_int("--workers"), default=1, metavar="N",
                   help="cases in parallel on a local Dask cluster of N processes (default 1: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the cases on the Dask cluster at ADDRESS (tcp://HOST:8786) instead")
    p.add_argument("--propagate", action="store_true",
                   help="zero-shot: segment each object through the volume from its prompts, as segment --propagate")
    p.add_argument("--window", help="zero-shot: intensity window ct, mr, auto (default) or LO,HI (a trained model uses "
                                    "its own)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    options.add_precision(p)
    p.add_argument("--cache", type=options.path, help="embedding cache folder (default: the user cache folder)")
    p.add_argument("--tolerance", type=options.tolerance, default=1.0, help="NSD tolerance in mm (default 1)")
    options.add_overwrite(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..evaluation.cohort import Cohort, Settings
    from ..tasks import run_task

    settings = Settings(args.device, args.precision, args.cache, args.tolerance, args.window, args.propagate)
    cohort = Cohort.prepare(args.model, args.inputs, args.output, args.overwrite, settings)
    bar, update = options.progress_bar("apply", "case")
    with cohort.folder, bar:
        results = run_task(cohort.run(args.workers, args.scheduler), update)
    failed = [r for r in results if r.status == "failed"]
    for result in failed:
        print(f"napari-samed: {result.case} failed: {result.reason}", file=sys.stderr)
    if failed:
        print(f"napari-samed: {len(failed)} of {len(results)} cases failed (see {args.output / 'summary.csv'})",
              file=sys.stderr)
    print(args.output / "summary.md")
    return 1 if failed else 0

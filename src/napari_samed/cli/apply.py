"""``napari-samed apply``: a trained model over a cohort, one label volume per case, in parallel on Dask if asked."""

from __future__ import annotations

import sys

from . import options


def add_parser(sub) -> None:
    p = sub.add_parser("apply", help="segment a cohort with a trained model: one label volume per case, a summary; "
                                     "resumable, in parallel on Dask with --workers or --scheduler")
    p.add_argument("trained", type=options.path, metavar="CKPT",
                   help="a trained model that segments without prompts (napari-samed train fewshot)")
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="NIfTI/TIFF files, folders (their NIfTI/TIFF files and DICOM series), globs, or a CSV "
                        "manifest with columns image[,reference] (paths relative to the CSV)")
    p.add_argument("-o", "--output", type=options.path, required=True, metavar="DIR",
                   help="output folder: DIR/CASE.nii.gz (.tif for TIFF input) per case, summary.csv, summary.md; "
                        "a rerun skips the finished cases")
    p.add_argument("--workers", type=options.positive_int("--workers"), default=1, metavar="N",
                   help="cases in parallel on a local Dask cluster of N processes (default 1: in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the cases on the Dask cluster at ADDRESS (tcp://HOST:8786) instead")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    options.add_precision(p)
    p.add_argument("--cache", type=options.path, help="embedding cache folder (default: the user cache folder)")
    p.add_argument("--tolerance", type=options.tolerance, default=1.0, help="NSD tolerance in mm (default 1)")
    options.add_overwrite(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..evaluation.cohort import Cohort, Settings
    from ..tasks import run_task

    cohort = Cohort.prepare(args.trained, args.inputs, args.output, args.overwrite)
    settings = Settings(args.device, args.precision, args.cache, args.tolerance)
    bar, update = options.progress_bar("apply", "case")
    with cohort.folder, bar:
        results = run_task(cohort.run(settings, args.workers, args.scheduler), update)
    failed = [r for r in results if r.status == "failed"]
    for result in failed:
        print(f"napari-samed: {result.case} failed: {result.reason}", file=sys.stderr)
    if failed:
        print(f"napari-samed: {len(failed)} of {len(results)} cases failed (see {args.output / 'summary.csv'})",
              file=sys.stderr)
    print(args.output / "summary.md")
    return 1 if failed else 0

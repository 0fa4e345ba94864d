"""Issue 29 on real data: `apply --workers 2` over the five BraTS patients, one Dask worker killed (-9) mid-run.

    PYTHONPATH=src flock /tmp/cpu.lock python benchmarks/apply_brats.py [--work DIR]

As a user would, with `napari-samed` commands in subprocesses: `train fewshot` at the defaults on the whole tumour
(labels > 0, written binary into the work folder) of 5 spread slices of patient 0002's FLAIR; a CSV manifest of the
five FLAIR volumes (0002..0006) with their OTMultiClass references (scored as whole tumour: any non-zero voxel) and
one truncated copy of a .nii.gz; `apply MODEL manifest.csv -o OUT --workers 2` with a cold embedding cache, and
`kill -9` of one of its worker processes once the first output is in OUT; then the same command again. Checks
that every output reads back (nibabel), no temporary file is left, the corrupt input fails with a one-line reason
and the others are done or skipped with a DSC, and that the rerun recomputes only the cases run 1 did not finish.
Prints a markdown report (the DSC of 0003..0006 is that of a model trained on another patient's slices, not
what is checked). Reads ``../shared/data`` (``SAMED_SHARED_DATA`` overrides).
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import realdata as rd  # noqa: E402

from napari_samed.io import read_labels  # noqa: E402

COMMAND = [sys.executable, "-m", "napari_samed.cli"]
DATA = rd.DEFAULT_DATA
PATIENTS = ("0002", "0003", "0004", "0005", "0006")
CORRUPT = "corrupt_pat0003_Flair"


def stem(patient: str) -> Path:
    return DATA / "brats2013" / f"brats_2013_pat{patient}_1_"


def train(work: Path) -> Path:
    """`train fewshot` on 5 slices spread over patient 0002's whole tumour (binary labels in the work folder)."""
    labels = nib.load(f"{stem('0002')}OTMultiClass.nii.gz")
    whole = work / "pat0002_whole_tumour.nii.gz"
    nib.save(nib.Nifti1Image((np.asarray(labels.dataobj) > 0).astype(np.uint8), labels.affine, labels.header), whole)
    zs = np.flatnonzero(read_labels(whole).data.any(axis=(1, 2)))  # slices in the plugin's (z, y, x) view
    slices = rd.spread(zs)
    model = work / "whole_tumour.ckpt"
    subprocess.run([*COMMAND, "train", "fewshot", f"{stem('0002')}Flair_subtrMeanDivStd.nii.gz", whole, "-o", model,
                    "--slices", ",".join(map(str, slices)), "--cache", work / "cache-train"],
                   check=True, stdout=sys.stderr)
    print(f"trained on slices {slices}", file=sys.stderr)
    return model


def summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def outputs(out: Path) -> list[Path]:
    """The outputs in ``out``, not the hidden temporary files of writers."""
    return sorted(p for p in out.glob("*.nii.gz") if not p.name.startswith("."))


def is_worker(process: psutil.Process) -> bool:
    """A LocalCluster worker process (multiprocessing's spawn), not the resource tracker."""
    try:
        return "spawn_main" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def apply(model: Path, manifest: Path, out: Path, cache: Path, kill: bool) -> dict:
    """Run the command; with ``kill``, kill -9 one Dask worker process once the first output is in ``out``."""
    start, killed = time.perf_counter(), None
    args = [*COMMAND, "apply", model, manifest, "-o", out, "--workers", "2", "--cache", cache]
    with open(out.parent / f"apply{'1' if kill else '2'}.log", "w") as log:
        proc = subprocess.Popen(list(map(str, args)), stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(0.5)
            if kill and killed is None and outputs(out):
                first = time.perf_counter() - start
                children = psutil.Process(proc.pid).children(recursive=True)
                workers = sorted(filter(is_worker, children), key=lambda c: c.pid)
                os.kill(workers[0].pid, signal.SIGKILL)
                killed = {"first output s": first, "kill s": time.perf_counter() - start, "pid": workers[0].pid,
                          "workers": [w.pid for w in workers], "finished then": [p.name for p in outputs(out)]}
    return {"code": proc.returncode, "seconds": time.perf_counter() - start, "killed": killed, "rows": summary(out),
            "outputs": {p.name: p.stat().st_mtime_ns for p in outputs(out)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="apply-brats-"))
    inputs, out = work / "inputs", work / "out"
    inputs.mkdir(parents=True)
    began = datetime.now().strftime("%Y-%m-%d %H:%M")
    model = train(work)
    whole = Path(f"{stem('0003')}Flair_subtrMeanDivStd.nii.gz").read_bytes()
    (inputs / f"{CORRUPT}.nii.gz").write_bytes(whole[: len(whole) // 2])
    rows = [f"{stem(p)}Flair_subtrMeanDivStd.nii.gz,{stem(p)}OTMultiClass.nii.gz" for p in PATIENTS]
    (manifest := inputs / "cases.csv").write_text("image,reference\n" + "\n".join(rows) + f"\n{CORRUPT}.nii.gz,\n")
    out.mkdir()
    first = apply(model, manifest, out, work / "cache-apply", kill=True)
    second = apply(model, manifest, out, work / "cache-apply", kill=False)

    cases = list(second["rows"])
    unfinished = {c for c in cases if first["rows"][c]["status"] != "done"}
    recomputed = {c for c, r in second["rows"].items() if r["status"] != "skipped"}
    kept = all(second["outputs"].get(n) == t for n, t in first["outputs"].items())
    readable = {p.name: nib.load(p).get_fdata().shape for p in outputs(out)}
    leftovers = [str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name]
    bad = second["rows"][CORRUPT]
    good = [second["rows"][c] for c in cases if c != CORRUPT]
    checks = {
        "a worker was killed after the first output": first["killed"] is not None,
        "every output reads (nibabel), one per good case": len(readable) == len(PATIENTS),
        "no temporary file left": not leftovers,
        "corrupt input failed with a one-line reason naming it, in both runs":
            all(r["rows"][CORRUPT]["status"] == "failed" and f"{CORRUPT}.nii.gz" in r["rows"][CORRUPT]["reason"]
                and "\n" not in r["rows"][CORRUPT]["reason"] for r in (first, second)),
        "the others done/skipped with a DSC": all(r["status"] in ("done", "skipped") and r["dsc"] for r in good),
        "the rerun recomputed only run 1's unfinished cases": recomputed == unfinished and kept,
    }
    k = first["killed"] or {}
    print(f"# apply --workers 2 over BraTS 0002..0006 + a corrupt input, a worker killed ({began})\n")
    print(f"- run 1: {first['seconds']:.1f} s, exit {first['code']}; first output at "
          f"{k.get('first output s', 0):.1f} s; kill -9 of worker pid {k.get('pid')} (of {k.get('workers')}) "
          f"at {k.get('kill s', 0):.1f} s (outputs then: {', '.join(k.get('finished then', []))}); the nanny restarted "
          f"{(work / 'apply1.log').read_text().count('Restarting worker')} worker(s)")
    print(f"- run 2 (same command): {second['seconds']:.1f} s, exit {second['code']}; recomputed: "
          f"{', '.join(sorted(recomputed)) or 'none'}")
    print(f"- corrupt input's reason: {bad['reason']}\n")
    print("| case | run 1 | run 2 | DSC | NSD | HD95 | seconds |\n|---|---|---|---:|---:|---:|---:|")
    for c in cases:
        r1, r2 = first["rows"][c], second["rows"][c]
        print(f"| {c} | {r1['status']} | {r2['status']} | {r2.get('dsc', '')} | {r2.get('nsd', '')} "
              f"| {r2.get('hd95', '')} | {r2['seconds']} |")
    print("\n" + "\n".join(f"- [{'x' if ok else ' '}] {name}" for name, ok in checks.items()))
    if leftovers:
        print(f"\nleft over: {leftovers}")
    cached = [p.name for p in (work / "cache-apply").rglob("*") if ".tmp" in p.name]
    print(f"\ntemporary files left in the embedding cache: {cached or 'none'}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()

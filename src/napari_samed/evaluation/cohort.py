"""A trained model over a cohort: one label volume per case, resumable, with a summary (``napari-samed apply``).

Each finished case leaves ``DIR/<case>.nii.gz`` (or ``.tif``) and its record ``DIR/.napari-samed-apply/<case>.json``:
the fingerprints of its input, reference and model, the output's SHA-256 and shape, its time and metrics. The record
is written before the output is renamed into place, so a kill at any moment leaves either no output, or an output
that its record vouches for. A rerun skips the cases whose record matches their input, reference, model and output
(read back, of the recorded shape) and computes the others. Cases run in this process, or on a Dask cluster
(`cohort_dask`) where each worker loads the model once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SamedError
from ..io.atomic import atomic_path, file_sha256
from ..io.outputs import OutputFolder
from ..tasks import Progress, Task
from .cohort_inputs import Case, find_cases, fingerprint

RECORDS = ".napari-samed-apply"
RECORD_MARK = "napari-samed apply"
METRICS = ("dsc", "nsd", "hd95")


@dataclass(frozen=True)
class Settings:
    """How each case runs: the model's device and encoder precision, the embedding cache, the NSD tolerance (mm)."""

    device: str = "auto"
    precision: str = "auto"
    cache: Path | None = None
    tolerance: float = 1.0


@dataclass
class CaseResult:
    """What became of one case: ``done`` (computed now), ``skipped`` (finished earlier) or ``failed`` (``reason``)."""

    case: str
    status: str
    seconds: float = 0.0
    voxels: int | None = None
    metrics: dict = field(default_factory=dict)
    reason: str = ""


def check_model(path: Path) -> type:
    """The trained method of checkpoint ``path``, checked as opening it would (digest, schema, finite weights);
    `SamedError` for any other file, or for a model that needs prompts."""
    from ..methods.trained import trained_class

    cls = trained_class(path)
    cls.read(path)
    if cls.prompts:
        raise SamedError(f"{path} is a {cls.what} model: it segments from prompts ({', '.join(cls.prompts)}), which "
                         f"apply has none of; apply runs models that segment without prompts (fewshot)")
    return cls


@dataclass
class Cohort:
    """The checked plan of a run: the model, the cases, the output folder claimed and the cases finished earlier."""

    checkpoint: Path
    cases: list[Case]
    folder: OutputFolder
    finished: dict[str, dict]

    @property
    def output(self) -> Path:
        return self.folder.folder

    @classmethod
    def prepare(cls, checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike],
                output: str | os.PathLike, overwrite: bool = False) -> Cohort:
        """Every check before any work: the model, the cases and the files they will write (`OutputFolder`
        rules; earlier outputs of this command are its own). `SamedError` for the first problem; writes nothing but
        the folder."""
        checkpoint, output = Path(checkpoint), Path(output)
        check_model(checkpoint)
        cases = find_cases(inputs, output)
        model = file_sha256(checkpoint)
        finished = {c.name: r for c in cases if (r := _finished(c, output, model)) is not None}
        ours = {c.output for c in cases if _vouched(output, c)}
        names = [c.output for c in cases if c.name not in finished and c.output not in ours]
        folder = OutputFolder(output, "output folder", overwrite).claim([*names, "summary.csv", "summary.md"])
        return cls(checkpoint, cases, folder, finished)

    def run(self, settings: Settings = Settings(), workers: int = 1, scheduler: str | None = None
            ) -> Task[list[CaseResult]]:
        """Task: every case not finished earlier, in this process (``workers`` 1, no ``scheduler``) or on Dask;
        one `Progress` per case. Writes the summary (`write_summary`) and returns the results in case order."""
        results = {name: CaseResult(name, "skipped", record["seconds"], record["voxels"], record["metrics"])
                   for name, record in self.finished.items()}
        todo = [c for c in self.cases if c.name not in self.finished]
        model = file_sha256(self.checkpoint)
        if workers == 1 and scheduler is None:
            ran = _in_process(self.checkpoint, todo, self.output, model, settings)
        else:
            from .cohort_dask import run_on_dask

            ran = run_on_dask(self.checkpoint, todo, self.output, model, settings, workers, scheduler)
        yield Progress(len(results), len(self.cases), f"{len(results)} finished earlier")
        for result in ran:
            results[result.case] = result
            yield Progress(len(results), len(self.cases), f"{result.case} {result.status}")
        ordered = [results[c.name] for c in self.cases]
        write_summary(ordered, self.output, self.checkpoint)
        return ordered


def _in_process(checkpoint: Path, cases: list[Case], output: Path, model: str, settings: Settings
                ) -> Iterator[CaseResult]:
    from ..methods.trained import open_trained

    if not cases:
        return
    method = open_trained(checkpoint, settings.device, settings.precision)
    for case in cases:
        yield segment_case(method, case, output, model, settings)


def segment_case(method, case: Case, output: Path, model: str, settings: Settings) -> CaseResult:
    """Segment one case with ``method`` (a trained method that needs no prompts), write its output and record
    atomically; a failure (unreadable, wrong shape, NaN, out of memory, ...) comes back as its one-line reason."""
    from ..io import read_labels, read_volume, write_labels
    from ..tasks import run_task
    from .metrics import evaluate_labels

    start = time.perf_counter()
    try:
        volume = read_volume(case.image)
        reference = read_labels(case.reference) if case.reference is not None else None
        if reference is not None and reference.shape != volume.shape:
            raise SamedError(f"reference {case.reference.name} has shape {reference.shape}, the image {volume.shape}")
        labels = run_task(method.segment(method.embeddings(volume, settings.cache)))
        metrics = {} if reference is None else evaluate_labels(labels, reference.data, volume.spacing,
                                                               tolerance=settings.tolerance)
        result = CaseResult(case.name, "done", 0.0, int(np.count_nonzero(labels)),
                            {k: metrics[k] for k in METRICS if k in metrics})
        target = output / case.output
        with atomic_path(target, suffix=".tif" if target.suffix == ".tif" else ".nii.gz") as tmp:
            write_labels(labels, tmp, volume)
            result.seconds = round(time.perf_counter() - start, 3)
            record = {"written by": RECORD_MARK, "input": fingerprint(case.image),
                      "reference": fingerprint(case.reference), "model": model, "output": file_sha256(tmp),
                      "shape": list(volume.shape), "seconds": result.seconds, "voxels": result.voxels,
                      "metrics": result.metrics}
            _record_path(output, case).parent.mkdir(exist_ok=True)
            with atomic_path(_record_path(output, case)) as rec:
                rec.write_text(json.dumps(record, indent=1))
        return result
    except MemoryError:
        return CaseResult(case.name, "failed", time.perf_counter() - start, reason="out of memory")
    except Exception as exc:  # noqa: BLE001 - one case's failure is reported and the others go on
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, SamedError):
            reason = f"{type(exc).__name__}: {reason}"
        return CaseResult(case.name, "failed", time.perf_counter() - start, reason=reason)


def _record_path(output: Path, case: Case) -> Path:
    return output / RECORDS / f"{case.name}.json"


def _record(output: Path, case: Case) -> dict | None:
    try:
        record = json.loads(_record_path(output, case).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("written by") == RECORD_MARK else None


def _vouched(output: Path, case: Case) -> bool:
    """Whether the case's output file is the one its record was written with (this command's own)."""
    record, path = _record(output, case), output / case.output
    return record is not None and path.is_file() and file_sha256(path) == record.get("output")


def _finished(case: Case, output: Path, model: str) -> dict | None:
    """The case's record when its output is finished for this input, reference and model: vouched for by the
    record, readable, of the recorded shape; else None."""
    from ..io import read_labels

    record = _record(output, case)
    if record is None or not _vouched(output, case) or record.get("model") != model:
        return None
    if record.get("input") != fingerprint(case.image) or record.get("reference") != fingerprint(case.reference):
        return None
    try:
        shape = read_labels(output / case.output).shape
    except SamedError:
        return None
    return record if list(shape) == record.get("shape") else None


def write_summary(results: Sequence[CaseResult], output: Path, checkpoint: Path) -> None:
    """``summary.csv`` (case, status, seconds, voxels, DSC/NSD/HD95 where a reference was given, reason) and
    ``summary.md`` (the table and the mean DSC), each written atomically."""
    scored = any(r.metrics for r in results)
    columns = ["case", "status", "seconds", "voxels", *(METRICS if scored else ()), "reason"]
    rows = [{"case": r.case, "status": r.status, "seconds": f"{r.seconds:.2f}",
             "voxels": "" if r.voxels is None else r.voxels, "reason": r.reason,
             **{k: _number(r.metrics.get(k)) for k in METRICS}} for r in results]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(output / "summary.csv") as tmp:
        tmp.write_text(text.getvalue())
    failed = [r for r in results if r.status == "failed"]
    dsc = [r.metrics["dsc"] for r in results if r.metrics.get("dsc") is not None]
    lines = [f"# napari-samed apply: {checkpoint.name}", "",
             f"{len(results) - len(failed)} of {len(results)} cases segmented"
             + (f"; {len(failed)} failed" if failed else "") + ".",
             *([f"Mean DSC {np.mean(dsc):.4f} over {len(dsc)} cases with a reference."] if dsc else []), "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]).replace("|", "/") for c in columns) + " |" for row in rows]
    with atomic_path(output / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"

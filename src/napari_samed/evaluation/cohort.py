"""A model over a cohort: one label volume per case, resumable, with a summary (``napari-samed apply``).

The model is a trained checkpoint or a zero-shot backbone (`parse_model`); a model that segments from prompts gets
each case's prompts from the CSV manifest (`case_prompts`). Each finished case leaves ``DIR/<case>.nii.gz`` (or
``.tif``) and its record ``DIR/.napari-samed-apply/<case>.json``: the fingerprints of its input, reference, model
and prompts, the output's SHA-256 and shape, its time and metrics. The record is written before the output is
renamed into place, so a kill at any moment leaves either no output, or an output that its record vouches for. A
rerun skips the cases whose record matches their input, reference, model, prompts and output (read back, of the
recorded shape) and computes the others. Cases run in this process, or on a Dask cluster (`cohort_dask`) where
each worker loads the model once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import SamedError, SamedWarning
from ..io.atomic import atomic_path, file_sha256
from ..io.outputs import OutputFolder
from ..tasks import Progress, Task
from .cohort_inputs import PROMPT_COLUMNS, Case, find_cases, fingerprint
from .compare import MethodSlot, parse_methods

RECORDS = ".napari-samed-apply"
RECORD_MARK = "napari-samed apply"
METRICS = ("dsc", "nsd", "hd95")
NO_PROMPTS = "no prompts for this case in the manifest"


@dataclass(frozen=True)
class Settings:
    """How each case runs: the model's device and encoder precision, the embedding cache, the NSD tolerance (mm),
    the intensity window of a zero-shot model (None: auto) and whether its objects propagate (``--propagate``)."""

    device: str = "auto"
    precision: str = "auto"
    cache: Path | None = None
    tolerance: float = 1.0
    window: str | None = None
    propagate: bool = False


@dataclass
class CaseResult:
    """What became of one case: ``done`` (computed now), ``skipped`` (finished earlier) or ``failed`` (``reason``)."""

    case: str
    status: str
    seconds: float = 0.0
    voxels: int | None = None
    metrics: dict = field(default_factory=dict)
    reason: str = ""


def parse_model(text: str | os.PathLike) -> MethodSlot:
    """A trained model's checkpoint, or ``zero-shot[:MODEL[=WEIGHTS]]`` (as ``benchmark --methods`` spells it), as
    the slot of its method; `SamedError` for a missing file or one that is not a trained model."""
    from ..methods.trained import trained_class

    text = str(text)
    if text.partition(":")[0] != "zero-shot":
        return MethodSlot(trained_class(text).name, checkpoint=Path(text))
    slots = parse_methods(text)
    if len(slots) != 1:
        raise SamedError(f"apply runs one model; got {len(slots)} in {text!r}")
    return slots[0]


def check_model(slot: MethodSlot, window: str | None = None) -> str:
    """The fingerprint of ``slot``'s model, checked as far as it can be without loading it: a trained one as opening
    it would (digest, schema, finite weights; its SHA-256), a zero-shot one's weights file (its backbone, the
    SHA-256 of its weights and ``window``). `SamedError` for a model that cannot run or a window that is none."""
    from ..methods import get_method
    from ..models import get_spec, resolve_window

    cls = get_method(slot.method)
    if cls.trained:
        cls.read(slot.checkpoint)
        return file_sha256(slot.checkpoint)
    spec = get_spec(slot.model)
    weights = slot.checkpoint or (spec.default_checkpoint() if spec.default_checkpoint else None)
    if weights is None:
        raise SamedError(f"model {slot.model} needs its weights file: {spec.checkpoint_hint} "
                         f"(zero-shot:{slot.model}=WEIGHTS)")
    if not Path(weights).is_file():
        raise SamedError(f"weights file not found: {weights}")
    resolve_window(window, np.zeros((1, 2, 2), np.float32))
    return f"{slot.method} {slot.model} {file_sha256(weights)} window {window or 'auto'}"


@dataclass
class Cohort:
    """The checked plan of a run: the model and its fingerprint, the cases, how they run, the output folder claimed
    and the cases finished earlier."""

    model: MethodSlot
    fingerprint: str
    cases: list[Case]
    settings: Settings
    folder: OutputFolder
    finished: dict[str, dict]

    @property
    def output(self) -> Path:
        return self.folder.folder

    @property
    def title(self) -> str:
        """The model in the summary's title: the checkpoint's file name, or the zero-shot backbone."""
        return self.model.checkpoint.name if self.model.trained else self.model.name

    @classmethod
    def prepare(cls, model: str | os.PathLike, inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                overwrite: bool = False, settings: Settings = Settings()) -> Cohort:
        """Every check before any work: the model (`parse_model`, `check_model`), ``--propagate``, prompts for a
        model that needs them (a manifest with prompt columns), the cases and the files they will write
        (`OutputFolder` rules; earlier outputs of this command are its own). `SamedError` for the first problem;
        writes nothing but the folder. Warns once of what a model ignores: a few-shot model the prompts, a trained
        one the window."""
        from ..methods import get_method
        from ..methods.prompted import check_propagate

        slot, output = parse_model(model), Path(output)
        method = get_method(slot.method)
        if slot.trained and settings.window is not None:
            warnings.warn(f"{slot.checkpoint} uses the window it was trained with; --window is for zero-shot models",
                          SamedWarning, stacklevel=2)
            settings = replace(settings, window=None)
        model_id = check_model(slot, settings.window)
        check_propagate(method, settings.propagate)
        cases = find_cases(inputs, output)
        if method.prompts and all(c.prompts is None for c in cases):
            raise SamedError(f"{slot.name} segments from prompts: give each case's in a CSV manifest, in columns "
                             f"{', '.join(PROMPT_COLUMNS)} (see napari-samed apply --help)")
        if not method.prompts and any(c.prompts and any(c.prompts) for c in cases):
            warnings.warn(f"{method.what} segments without prompts: the manifest's prompts are ignored", SamedWarning,
                          stacklevel=2)
        finished = {c.name: r for c in cases if (r := _finished(c, output, model_id, settings, method.prompts))}
        ours = {c.output for c in cases if _vouched(output, c)}
        names = [c.output for c in cases if c.name not in finished and c.output not in ours]
        folder = OutputFolder(output, "output folder", overwrite).claim([*names, "summary.csv", "summary.md"])
        return cls(slot, model_id, cases, settings, folder, finished)

    def run(self, workers: int = 1, scheduler: str | None = None) -> Task[list[CaseResult]]:
        """Task: every case not finished earlier, in this process (``workers`` 1, no ``scheduler``) or on Dask;
        one `Progress` per case. Writes the summary (`write_summary`) and returns the results in case order."""
        results = {name: CaseResult(name, "skipped", record["seconds"], record["voxels"], record["metrics"])
                   for name, record in self.finished.items()}
        todo = [c for c in self.cases if c.name not in self.finished]
        if workers == 1 and scheduler is None:
            ran = _in_process(self.model, todo, self.output, self.fingerprint, self.settings)
        else:
            from .cohort_dask import run_on_dask

            ran = run_on_dask(self.model, todo, self.output, self.fingerprint, self.settings, workers, scheduler)
        yield Progress(len(results), len(self.cases), f"{len(results)} finished earlier")
        for result in ran:
            results[result.case] = result
            yield Progress(len(results), len(self.cases), f"{result.case} {result.status}")
        ordered = [results[c.name] for c in self.cases]
        write_summary(ordered, self.output, self.title)
        return ordered


def _in_process(slot: MethodSlot, cases: list[Case], output: Path, model: str, settings: Settings
                ) -> Iterator[CaseResult]:
    if not cases:
        return
    method = slot.load(settings.device, settings.precision)
    for case in cases:
        yield segment_case(method, case, output, model, settings)


def case_prompts(case: Case, cls: type, propagate: bool, shape: tuple[int, int, int]) -> list:
    """The case's manifest prompts for a method of class ``cls``, read and checked as ``segment`` reads its
    ``--box``, ``--box3d`` and ``--point`` (`method_prompts`); `SamedError` naming the column of a bad cell."""
    from ..methods.prompted import method_prompts
    from ..methods.prompts import group_prompts, parse_prompt

    if case.prompts is None or not any(case.prompts):
        raise SamedError(NO_PROMPTS)
    flat: dict[str, list] = {}
    for column, cell in zip(PROMPT_COLUMNS, case.prompts, strict=True):
        try:
            flat[column] = [parse_prompt(column, text) for text in cell]
            group_prompts(*(flat[column] if c == column else () for c in PROMPT_COLUMNS))  # its labels, polarities
        except SamedError as exc:
            raise SamedError(f"column {column}: {exc}") from None
    return method_prompts(cls, *flat.values(), propagate=propagate, shape=shape)


def _prompt_key(case: Case, takes_prompts: bool, propagate: bool) -> dict | None:
    """The prompts as the case's record holds them: None for a model without prompts."""
    if not takes_prompts or case.prompts is None:
        return None
    return {**{c: list(cell) for c, cell in zip(PROMPT_COLUMNS, case.prompts, strict=True)}, "propagate": propagate}


def segment_case(method, case: Case, output: Path, model: str, settings: Settings) -> CaseResult:
    """Segment one case with ``method`` (from its manifest prompts if it takes prompts), write its output and record
    atomically; a failure (unreadable, wrong shape, bad prompts, NaN, out of memory, ...) comes back as its one-line
    reason."""
    from ..io import read_labels, read_volume, write_labels
    from ..methods.prompted import made_by, segment_volume, volume_embeddings
    from ..tasks import run_task
    from .metrics import evaluate_labels

    start = time.perf_counter()
    try:
        volume = read_volume(case.image)
        reference = read_labels(case.reference) if case.reference is not None else None
        if reference is not None and reference.shape != volume.shape:
            raise SamedError(f"reference {case.reference.name} has shape {reference.shape}, the image {volume.shape}")
        prompts = case_prompts(case, type(method), settings.propagate, volume.shape) if method.prompts else []
        embeddings = volume_embeddings(method, volume, settings.cache, settings.window)
        labels, _ = run_task(segment_volume(method, embeddings, prompts))
        metrics = {} if reference is None else evaluate_labels(labels, reference.data, volume.spacing,
                                                               tolerance=settings.tolerance)
        result = CaseResult(case.name, "done", 0.0, int(np.count_nonzero(labels)),
                            {k: metrics[k] for k in METRICS if k in metrics})
        target = output / case.output
        with atomic_path(target, suffix=".tif" if target.suffix == ".tif" else ".nii.gz") as tmp:
            write_labels(labels, tmp, volume, made_by(method))
            result.seconds = round(time.perf_counter() - start, 3)
            record = {"written by": RECORD_MARK, "input": fingerprint(case.image),
                      "reference": fingerprint(case.reference), "model": model,
                      "prompts": _prompt_key(case, bool(method.prompts), settings.propagate),
                      "output": file_sha256(tmp), "shape": list(volume.shape), "seconds": result.seconds,
                      "voxels": result.voxels, "metrics": result.metrics}
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


def _finished(case: Case, output: Path, model: str, settings: Settings, takes_prompts: bool) -> dict | None:
    """The case's record when its output is finished for this input, reference, model and prompts: vouched for by
    the record, readable, of the recorded shape; else None."""
    from ..io import read_labels

    record = _record(output, case)
    if record is None or not _vouched(output, case) or record.get("model") != model:
        return None
    if record.get("prompts") != _prompt_key(case, takes_prompts, settings.propagate):
        return None
    if record.get("input") != fingerprint(case.image) or record.get("reference") != fingerprint(case.reference):
        return None
    try:
        shape = read_labels(output / case.output).shape
    except SamedError:
        return None
    return record if list(shape) == record.get("shape") else None


def write_summary(results: Sequence[CaseResult], output: Path, title: str) -> None:
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
    lines = [f"# napari-samed apply: {title}", "",
             f"{len(results) - len(failed)} of {len(results)} cases segmented"
             + (f"; {len(failed)} failed" if failed else "") + ".",
             *([f"Mean DSC {np.mean(dsc):.4f} over {len(dsc)} cases with a reference."] if dsc else []), "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]).replace("|", "/") for c in columns) + " |" for row in rows]
    with atomic_path(output / "summary.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"

"""A cohort's cases on a Dask cluster: a local one (``workers`` processes) or the one at a scheduler's address.

Each worker loads the model once, when `ModelPlugin` is set up on it (registered with the cluster, so a worker
that joins or replaces a killed one loads it too); the model lives in the plugin, Dask's worker-local state, and
goes away with the worker. A case is a task with ``retries``; a worker killed mid-case has its task run again on
another worker by the scheduler, and the output, written atomically (`cohort.segment_case`), is never half there.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from ..errors import SamedError
from .cohort import CaseResult, Settings, segment_case
from .cohort_inputs import Case
from .compare import MethodSlot

#: How many times a case that raised is tried again (a case's own failure is a result, not an exception).
RETRIES = 2


class ModelPlugin(WorkerPlugin):
    """The model of a method slot (a trained checkpoint or a zero-shot backbone), loaded once per worker, and the
    torch threads the worker may use: its machine's cores over ``sharing``, the most workers on one machine."""

    def __init__(self, slot: MethodSlot, settings: Settings, sharing: int):
        self.slot, self.settings, self.sharing = slot, settings, sharing
        self.method, self.threads = None, 1

    def setup(self, worker) -> None:
        import torch

        self.threads = max(1, len(os.sched_getaffinity(0)) // self.sharing)  # this machine's cores, shared
        torch.set_num_threads(self.threads)
        self.method = self.slot.load(self.settings.device, self.settings.precision)


def plugin_name(model: str) -> str:
    """The plugin's name on the cluster: one per model fingerprint, so runs of different models can share a
    cluster."""
    return f"napari-samed-model-{hashlib.sha256(model.encode()).hexdigest()[:16]}"


def _run_case(name: str, case: Case, output: Path, model: str, settings: Settings) -> CaseResult:
    """The task of one case, on a worker: its plugin's model, in the worker's share of the cores."""
    import torch

    plugin = get_worker().plugins[name]
    torch.set_num_threads(plugin.threads)  # per thread under OpenMP: set in the thread that runs the case
    return segment_case(plugin.method, case, output, model, settings)


def run_on_dask(slot: MethodSlot, cases: list[Case], output: Path, model: str, settings: Settings,
                workers: int, scheduler: str | None = None) -> Iterator[CaseResult]:
    """The results of ``cases`` as they finish, on ``LocalCluster(n_workers=workers, threads_per_worker=1,
    processes=True)`` or on the cluster at ``scheduler``. Torch gets the cores of a machine shared by its workers."""
    if not cases:
        return
    with ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            address = cluster.scheduler_address
        else:
            address = scheduler
        try:
            client = stack.enter_context(Client(address, timeout="30s"))
        except OSError as exc:
            raise SamedError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        client.wait_for_workers(1 if scheduler else workers, timeout=120)
        hosts = Counter(w["host"] for w in client.scheduler_info()["workers"].values())
        name = plugin_name(model)
        responses = client.register_plugin(ModelPlugin(slot, settings, max(hosts.values())), name=name)
        for response in (responses or {}).values():
            if isinstance(response, dict) and response.get("status") == "error":
                raise SamedError(f"a Dask worker could not load {slot.checkpoint or slot.name}: "
                                 f"{response.get('exception_text')}")
        futures = {client.submit(_run_case, name, case, output, model, settings, retries=RETRIES, pure=False,
                                 key=f"apply-{case.name}-{uuid.uuid4().hex[:8]}"): case for case in cases}
        for future in as_completed(futures):
            case = futures[future]
            if future.status == "finished":
                yield future.result()
            else:
                exc = future.exception()
                yield CaseResult(case.name, "failed", reason=f"{type(exc).__name__}: {exc}".splitlines()[0])

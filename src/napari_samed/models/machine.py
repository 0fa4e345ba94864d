"""What this machine offers the models, and how fast its last embedding ran: for `napari-samed info`, the
widgets and bug reports."""

from __future__ import annotations

import json
import os
import platform
import time
from importlib.metadata import version
from pathlib import Path

import torch

from ..io.atomic import atomic_path
from .backbone import Backbone, resolve_device
from .encoder import cpu_has_bf16, resolve_precision

#: The file, in the embedding cache folder, that keeps the speed of the last embedding run.
LAST_EMBEDDING = "last-embedding.json"


def record_speed(cache: Path, backbone: Backbone, slices: int, seconds: float) -> None:
    """Keep the speed of an embedding run of ``slices`` slices in ``seconds`` (best effort: never raises)."""
    entry = {"model": backbone.name, "precision": backbone.precision, "device": str(backbone.device),
             "cpu capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
             "slices": slices, "seconds per slice": round(seconds / slices, 4),
             "when": time.strftime("%Y-%m-%d %H:%M")}
    try:
        with atomic_path(Path(cache) / LAST_EMBEDDING) as tmp:
            tmp.write_text(json.dumps(entry, indent=1))
    except OSError:
        pass


def last_speed(cache: Path) -> dict | None:
    """What `record_speed` kept in ``cache``, or None."""
    try:
        entry = json.loads((Path(cache) / LAST_EMBEDDING).read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def summary(backbone: Backbone, rate: float = 0.0) -> str:
    """One line for a widget: device, CPU capability, encoder precision, threads, and ``rate`` (slices/s) when
    measured."""
    text = (f"{backbone.device}, {torch.backends.cpu.get_cpu_capability()}, {backbone.precision}, "
            f"{torch.get_num_threads()} threads")
    return text + (f"; embedding {1 / rate:.2f} s/slice" if rate else "")


def describe_machine(device: str = "auto", cache: Path | None = None) -> dict[str, str]:
    """The device, CPU capability, native bf16, default encoder precision, threads and versions, and the last
    embedding's speed when ``cache`` (the embedding cache folder) has one."""
    dev = resolve_device(device)
    info = {"napari-samed": version("napari-samed"), "torch": torch.__version__, "python": platform.python_version(),
            "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
            "cpu": platform.processor() or platform.machine(),
            "cpu capability": torch.backends.cpu.get_cpu_capability(),
            "native bf16": "yes" if cpu_has_bf16() else "no (bf16 is emulated: the encoder runs fp32 by default)",
            "default precision": resolve_precision("auto", dev),
            "threads": f"{torch.get_num_threads()} (of {os.cpu_count()} CPUs)"}
    last = last_speed(cache) if cache else None
    info["last embedding"] = "none in this cache" if last is None else (
        f"{last.get('seconds per slice')} s/slice over {last.get('slices')} slices ({last.get('model')}, "
        f"{last.get('precision')}, {last.get('device')}, {last.get('cpu capability')}, {last.get('threads')} "
        f"threads, {last.get('when')})")
    return info

"""Checkpoints of trained methods: atomic writes, kind checks and the backbone they were trained on."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import SamedError
from ..io.atomic import atomic_path
from ..models.backbone import Backbone, load_backbone, resolve_device
from ..models.encoder import native
from ..models.registry import get_spec


def backbone_identity(backbone: Backbone) -> dict:
    """What a checkpoint records about its backbone: name, weights hash and file, and the encoder precision of
    the embeddings it was trained on."""
    return {"backbone": backbone.name, "weights_id": backbone.weights_id, "weights_path": backbone.weights_path,
            "precision": backbone.precision}


def write_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` through a temporary file, so an interrupted write never leaves a broken checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` a napari-samed checkpoint records, or None for any other file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    return state.get("kind") if isinstance(state, dict) else None


#: What every trained method's checkpoint records (`backbone_identity` and the window).
IDENTITY_KEYS = ("backbone", "weights_id", "weights_path", "window")


def read_checkpoint(path: str | os.PathLike, kind: str, what: str, keys: tuple[str, ...] = ()) -> dict:
    """The state saved by `write_checkpoint`; `SamedError` unless it is a readable checkpoint of ``kind`` with
    every entry of `IDENTITY_KEYS` and ``keys``."""
    path = Path(path)
    if not path.is_file():
        raise SamedError(f"{what} checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SamedError(f"cannot read {what} checkpoint {path}: truncated or not a checkpoint "
                         f"({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else None
        raise SamedError(f"{path} is not a napari-samed {what} checkpoint" + (f" but a {found} one" if found else ""))
    missing = [k for k in (*IDENTITY_KEYS, *keys) if k not in state]
    if missing:
        raise SamedError(f"{what} checkpoint {path} lacks its {', '.join(missing)} "
                         f"entr{'ies' if len(missing) > 1 else 'y'}: it is damaged or was not written by napari-samed")
    return state


def check_backbone(state: dict, backbone: Backbone, path: str | os.PathLike, what: str) -> None:
    """`SamedError` when the checkpoint was trained on another backbone or other weights."""
    if state["backbone"] != backbone.name or state["weights_id"] != backbone.weights_id:
        raise SamedError(
            f"{what} checkpoint {path} was trained on {state['backbone']} (weights {state['weights_id'][:12]}), "
            f"not on the loaded {backbone.name} (weights {backbone.weights_id[:12]})"
        )


def open_backbone(state: dict, device: str = "auto", precision: str = "auto") -> Backbone:
    """The backbone a checkpoint names: the bundled weights, or the file recorded at training time.

    ``precision="auto"`` takes the precision recorded at training time (fp32 for checkpoints that record none)
    when it runs at full speed on ``device``, else the device's own choice; any other value is used as given.
    """
    spec = get_spec(state["backbone"])
    weights = None if spec.default_checkpoint else state["weights_path"]
    if precision == "auto" and native(state.get("precision", "fp32"), resolve_device(device)):
        precision = state.get("precision", "fp32")
    return load_backbone(spec.name, weights, device, precision)

"""`TrainedMethod`: what every trained method shares; `open_trained` opens any napari-samed trained model.

A trained model's checkpoint records its ``kind``, the backbone it was trained on (name, weights hash and file,
encoder precision) and the intensity window rule of its training images. Only this module reads and writes
those entries: a subclass adds its own state (`state`, `from_state`), and callers open a file with
`open_trained` without looking at its kind. A trained model always sees images preprocessed as in training
(`window_for`, `embeddings`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..errors import SamedError, SamedWarning
from ..io.atomic import atomic_path
from ..io.volume import Volume
from ..models.backbone import Backbone, load_backbone, resolve_device
from ..models.cache import VolumeEmbeddings
from ..models.encoder import native
from ..models.preprocess import resolve_window
from ..models.registry import get_spec

#: What every trained method's checkpoint records besides its own state.
IDENTITY_KEYS = ("kind", "backbone", "weights_id", "weights_path", "window")


class TrainedMethod:
    """Base of the trained methods: checkpoint kind, atomic save, open/load, backbone identity and window.

    A subclass sets ``name``, ``kind`` (the checkpoint's kind), ``what`` (its name in messages) and
    ``state_keys``, and implements ``state()`` (its checkpoint entries) and ``from_state(state, backbone, path)``.
    ``backbone`` is the pretrained backbone whose encoder makes its embeddings; ``window`` the rule of its
    training images (`models.preprocess.window_rule`).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    what: ClassVar[str]
    state_keys: ClassVar[tuple[str, ...]] = ()
    trained: ClassVar[bool] = True
    #: What the Segment widget does with it: None (not interactive), "decoder" (its decoder segments the
    #: prompts; the boxes of a slice together) or "click3d" (a click segments the object in 3D).
    interactive: ClassVar[str | None] = None

    backbone: Backbone
    window: str | tuple = "auto"

    # -- checkpoints -----------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The method's own checkpoint entries (tensors on the CPU)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict, backbone: Backbone, path: str | os.PathLike) -> TrainedMethod:
        """The trained method from a checked checkpoint ``state`` on ``backbone``."""
        raise NotImplementedError

    @property
    def pretrained(self) -> Backbone:
        """The backbone as loaded from its weights (what the checkpoint's identity describes)."""
        return self.backbone

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint atomically (a temporary file renamed into place)."""
        state = {"kind": self.kind, **backbone_identity(self.pretrained), "window": self.window, **self.state()}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> dict:
        """The checkpoint's entries; `SamedError` unless it is a readable, complete checkpoint of this method."""
        path = Path(path)
        state = _load(path, cls.what)
        found = state.get("kind")
        if found != cls.kind:
            other = next((m.what for m in trained_methods() if m.kind == found), found)
            raise SamedError(f"{path} is not a napari-samed {cls.what} checkpoint" + (f" but a {other} one" if other
                                                                                       else ""))
        missing = [k for k in (*IDENTITY_KEYS, *cls.state_keys) if k not in state]
        if missing:
            raise SamedError(f"{cls.what} checkpoint {path} lacks its {', '.join(missing)} entr"
                             f"{'ies' if len(missing) > 1 else 'y'}: it is damaged or was not written by napari-samed")
        return state

    @classmethod
    def open(cls, path: str | os.PathLike, device: str = "auto", precision: str = "auto",
             backbone: Backbone | None = None) -> TrainedMethod:
        """The trained method in ``path`` on ``backbone``, by default the one its checkpoint names (the bundled
        weights or the recorded file, see `open_backbone`); `SamedError` for another backbone or weights."""
        state = cls.read(path)
        if backbone is None:
            backbone = open_backbone(state, device, precision)
        else:
            cls.check_backbone(state, backbone, path)
        return cls.from_state(state, backbone, path)

    @classmethod
    def check_backbone(cls, state: dict, backbone: Backbone, path: str | os.PathLike) -> None:
        """`SamedError` unless the checkpoint ``state`` was trained on ``backbone``'s name and weights."""
        if state["backbone"] != backbone.name or state["weights_id"] != backbone.weights_id:
            raise SamedError(
                f"{cls.what} checkpoint {path} was trained on {state['backbone']} (weights "
                f"{state['weights_id'][:12]}), not on the loaded {backbone.name} (weights {backbone.weights_id[:12]})")

    # -- preprocessing -----------------------------------------------------------------------------------------
    def window_note(self, data: np.ndarray, chosen: str | tuple | None = None) -> str | None:
        """What to tell a user who chose the window ``chosen`` for ``data``: None when it is ``auto`` or gives the
        training window; else that the training window is used instead."""
        if chosen is None or chosen == "auto":
            return None
        own, other = resolve_window(self.window, data), resolve_window(chosen, data)
        if np.allclose(own, other):
            return None
        return (f"{self.name} uses the window it was trained with, {describe_window(self.window)} ({own[0]:g} to "
                f"{own[1]:g} here), not the chosen {describe_window(chosen)}")

    def window_for(self, data: np.ndarray, chosen: str | tuple | None = None) -> str | tuple:
        """The window rule this model uses on ``data``: always its training one; a `SamedWarning` gives the
        `window_note` of a ``chosen`` window that differs."""
        note = self.window_note(data, chosen)
        if note:
            warnings.warn(note, SamedWarning, stacklevel=2)
        return self.window

    def embeddings(self, volume: Volume | np.ndarray, cache_dir: str | os.PathLike | None | bool = None,
                   chosen: str | tuple | None = None) -> VolumeEmbeddings:
        """``volume``'s embeddings, preprocessed as in training (see `window_for`)."""
        data = volume.data if isinstance(volume, Volume) else np.asarray(volume)
        return VolumeEmbeddings(volume, self.backbone, self.window_for(data, chosen), cache_dir)


def backbone_identity(backbone: Backbone) -> dict:
    """What a checkpoint records about its backbone: name, weights hash and file, and the encoder precision of
    the embeddings it was trained on."""
    return {"backbone": backbone.name, "weights_id": backbone.weights_id, "weights_path": backbone.weights_path,
            "precision": backbone.precision}


def describe_window(spec: str | tuple | None) -> str:
    if isinstance(spec, tuple | list):
        return f"{spec[0]:g},{spec[1]:g}"
    return str(spec or "auto")


def trained_methods() -> list[type[TrainedMethod]]:
    """The registered trained methods."""
    from . import METHODS  # the package registers every method

    return [cls for cls in METHODS.values() if isinstance(cls, type) and issubclass(cls, TrainedMethod)]


def trained_class(path: str | os.PathLike) -> type[TrainedMethod]:
    """The registered method whose checkpoint ``path`` is; `SamedError` for a missing file or any other file."""
    path = Path(path)
    kind = _load(path, "trained model", mmap=True).get("kind")
    for cls in trained_methods():
        if cls.kind == kind:
            return cls
    raise SamedError(f"{path} is not a napari-samed trained model (a "
                     f"{', '.join(c.what for c in trained_methods())} checkpoint)")


def open_trained(path: str | os.PathLike, device: str = "auto", precision: str = "auto",
                 backbone: Backbone | None = None) -> TrainedMethod:
    """The trained method in ``path``, whichever it is (see `TrainedMethod.open`)."""
    return trained_class(path).open(path, device, precision, backbone)


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` a napari-samed checkpoint records, or None for any other file (to tell an earlier output
    apart before overwriting it)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    return state.get("kind") if isinstance(state, dict) else None


def _load(path: Path, what: str, mmap: bool = False) -> dict:
    if not path.is_file():
        raise SamedError(f"{what} checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:
        raise SamedError(f"cannot read {what} checkpoint {path}: truncated or not a checkpoint "
                         f"({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise SamedError(f"{path} is not a napari-samed {what} checkpoint")
    return state


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

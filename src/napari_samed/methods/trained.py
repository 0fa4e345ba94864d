"""`TrainedMethod`: what every trained method shares; `open_trained` opens any napari-samed trained model.

A trained model's checkpoint records its ``kind``, the backbone it was trained on (name, weights hash and file,
encoder precision), the intensity window rule of its training images and the digest of its content. Only this
module reads and writes those entries: a subclass adds its own state (`state`, `from_state`) and its `schema`,
and callers open a file with `open_trained` without looking at its kind. Opening checks the file before any of it
is used (`TrainedMethod.read`): digest, schema, finite weights, and that the backbone's weights are the ones it was
trained on. A trained model always sees images preprocessed as in training
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
from ..io.atomic import atomic_path, file_sha256
from ..io.volume import Volume
from ..models.backbone import Backbone, load_backbone, resolve_device
from ..models.cache import VolumeEmbeddings
from ..models.encoder import native
from ..models.preprocess import resolve_window
from ..models.registry import PRECISIONS, get_spec
from . import checkpoint_checks as checks

#: What every trained method's checkpoint records besides its own state.
IDENTITY_KEYS = ("kind", "backbone", "weights_id", "weights_path", "window")


def _window(value) -> str | None:
    """A window rule: ``ct``, ``mr``, ``auto``, ``"LO,HI"`` or a pair of numbers (`models.preprocess`)."""
    pair = isinstance(value, list | tuple) and checks.list_of(checks.number(), 2, 2)(value) is None
    try:
        usable = (isinstance(value, str) or pair) and resolve_window(value, np.zeros((1, 2, 2), np.float32))
    except SamedError:
        usable = False
    return None if usable else f"is {value!r}, not an intensity window"


IDENTITY_SCHEMA = {"backbone": checks.text, "weights_id": checks.text,
                   "weights_path": checks.optional(checks.text), "window": _window,
                   "precision": checks.one_of(*PRECISIONS)}


class TrainedMethod:
    """Base of the trained methods: checkpoint kind, atomic save, open/load, backbone identity and window.

    A subclass sets ``name``, ``kind`` (the checkpoint's kind), ``what`` (its name in messages) and
    ``state_keys`` and ``schema`` (a check per entry, `checkpoint_checks`), and implements ``state()`` (its
    checkpoint entries) and ``from_state(state, backbone, path)``, which may trust every entry the schema checks.
    ``backbone`` is the pretrained backbone whose encoder makes its embeddings; ``window`` the rule of its
    training images (`models.preprocess.window_rule`).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    what: ClassVar[str]
    state_keys: ClassVar[tuple[str, ...]] = ()
    schema: ClassVar[dict[str, checks.Check]] = {}
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
        state[checks.DIGEST] = checks.content_digest(state)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> dict:
        """The checkpoint's entries; `SamedError` unless it is a complete checkpoint of this method, with the
        content its digest was made of, every entry as its schema says and finite weights. A checkpoint without a
        digest (written before napari-samed recorded one) gives a `SamedWarning`."""
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
        recorded = state.get(checks.DIGEST)
        if recorded is None:
            warnings.warn(f"{cls.what} checkpoint {path} carries no digest (an earlier napari-samed wrote it): "
                          f"damage to it cannot be detected", SamedWarning, stacklevel=2)
        elif recorded != checks.content_digest(state):
            raise SamedError(f"{cls.what} checkpoint {path} is damaged: its content differs from the digest it was "
                             f"saved with; restore a copy or train again")
        problem = checks.first_problem(state, {**IDENTITY_SCHEMA, **cls.schema})
        if problem:
            raise SamedError(f"{cls.what} checkpoint {path} is not usable: its {problem[0]} entry {problem[1]} (it "
                             f"was not written by this napari-samed)")
        bad = checks.non_finite(state)
        if bad:
            raise SamedError(f"{cls.what} checkpoint {path} holds NaN or infinite weights ({bad}): refused; train "
                             f"again")
        return state

    @classmethod
    def open(cls, path: str | os.PathLike, device: str = "auto", precision: str = "auto",
             backbone: Backbone | None = None) -> TrainedMethod:
        """The trained method in ``path`` on ``backbone``, by default the one its checkpoint names (the bundled
        weights or the recorded file, see `open_backbone`); `SamedError` for another backbone or weights."""
        state = cls.read(path)
        if backbone is None:
            backbone = open_backbone(state, device, precision, f"{cls.what} checkpoint {path}")
        else:
            cls.check_backbone(state, backbone, path)
        return cls.from_state(state, backbone, path)

    @classmethod
    def check_backbone(cls, state: dict, backbone: Backbone, path: str | os.PathLike) -> None:
        """`SamedError` unless the checkpoint ``state`` was trained on ``backbone``'s name and weights."""
        if state["backbone"] != backbone.name or state["weights_id"] != backbone.weights_id:
            raise SamedError(
                f"{cls.what} checkpoint {path} was trained on {state['backbone']} (weights "
                f"{state['weights_id'][:12]}), not on the loaded {backbone.name} (weights {backbone.weights_id[:12]}): "
                f"give no backbone weights (--checkpoint) to use the ones it was trained on")

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


def checkpoint_entry(path: str | os.PathLike, key: str):
    """The entry ``key`` of a napari-samed checkpoint, unchecked, or None for any other file (to tell an earlier
    output apart before overwriting it, or a model's backbone before opening it)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    return state.get(key) if isinstance(state, dict) else None


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


def open_backbone(state: dict, device: str = "auto", precision: str = "auto",
                  what: str = "the checkpoint") -> Backbone:
    """The backbone a checkpoint was trained on: the bundled weights or the file it records, whichever has the
    recorded weights hash; `SamedError` (naming ``what``) when neither does.

    ``precision="auto"`` takes the precision recorded at training time (fp32 for checkpoints that record none)
    when it runs at full speed on ``device``, else the device's own choice; any other value is used as given.
    """
    spec = get_spec(state["backbone"])
    if precision == "auto" and native(state.get("precision", "fp32"), resolve_device(device)):
        precision = state.get("precision", "fp32")
    wanted, recorded = state["weights_id"], state["weights_path"]
    bundled = spec.default_checkpoint() if spec.default_checkpoint else None
    for weights in (bundled, recorded):
        if weights and Path(weights).is_file() and file_sha256(weights) == wanted:
            return load_backbone(spec.name, weights, device, precision)
    where = f"{recorded}, which is not there" if recorded and not Path(recorded).is_file() else \
        f"{recorded}, which has changed since" if recorded else "a file it does not name"
    raise SamedError(f"{what} was trained on {spec.name} weights {wanted[:12]} ({where}"
                     f"{', not the bundled ones' if bundled else ''}): give those weights as the backbone checkpoint "
                     f"(--checkpoint FILE)")


def load_weights(module: torch.nn.Module, weights: dict, what: str, strict: bool = True) -> None:
    """``module.load_state_dict(weights)``; `SamedError` naming ``what`` when they do not fit the module."""
    try:
        module.load_state_dict(weights, strict=strict)
    except RuntimeError as exc:
        detail = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise SamedError(f"{what} does not fit its model: {detail}") from None

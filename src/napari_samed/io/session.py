"""Interactive sessions on disk: the labels, prompts, objects and settings of one image, in one ``.npz`` file
beside the image (or in the user's data folder when that is not writable), so that work survives closing napari."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import platformdirs

from ..errors import SamedError
from .atomic import atomic_path

SUFFIX = ".samed-session.npz"
#: A folder for every session file, instead of beside the images (data folders the user would keep clean).
SESSIONS_ENV = "NAPARI_SAMED_SESSIONS"
VERSION = 1


@dataclass
class SavedSession:
    """What a session file holds. Prompts are in the image's voxel coordinates (z, y, x): points with their
    polarity and object, boxes as their four corners (m, 4, 3) with their object."""

    labels: np.ndarray
    points: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    point_positive: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    point_label: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    boxes: np.ndarray = field(default_factory=lambda: np.empty((0, 4, 3)))
    box_label: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    current: int = 1
    locked: list[int] = field(default_factory=list)
    hidden: list[int] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  #: the widget's choices: model, window, trained model, ...


def session_path(image_path: str | os.PathLike | None, name: str, data: np.ndarray | None = None) -> Path:
    """Where the session of an image lives: ``<image file><SUFFIX>`` beside it when its folder is writable, else in
    ``$NAPARI_SAMED_SESSIONS`` when set (for every image then) or the user's data folder, under a name made from
    the image's path, or for an image without a file from its layer ``name`` and a fingerprint of its ``data``
    (shape, type and a sample of its voxels), so that another array under the same name does not inherit it."""
    folder = os.environ.get(SESSIONS_ENV)
    if image_path:
        image_path = Path(image_path).resolve()
        if not folder and os.access(image_path.parent, os.W_OK):
            return image_path.with_name(image_path.name + SUFFIX)
    key = hashlib.sha1(str(image_path or name).encode())
    if not image_path and data is not None:
        data = np.asarray(data)
        key.update(f"{data.shape}{data.dtype}".encode())
        key.update(np.ascontiguousarray(data.reshape(-1)[::max(1, data.size // 100_000)]).tobytes())
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in (Path(image_path).name if image_path else name))
    root = Path(folder) if folder else platformdirs.user_data_path("napari-samed") / "sessions"
    return root / f"{stem}-{key.hexdigest()[:12]}{SUFFIX}"


def save_session(path: str | os.PathLike, session: SavedSession) -> None:
    """Write ``session`` to ``path`` atomically (a crash leaves the previous file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"version": VERSION, "current": int(session.current), "locked": sorted(map(int, session.locked)),
            "hidden": sorted(map(int, session.hidden)), "settings": session.settings}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, labels=session.labels, points=np.asarray(session.points, float).reshape(-1, 3),
                            point_positive=np.asarray(session.point_positive, bool),
                            point_label=np.asarray(session.point_label, int),
                            boxes=np.asarray(session.boxes, float).reshape(-1, 4, 3),
                            box_label=np.asarray(session.box_label, int), meta=np.array(json.dumps(meta)))


def load_session(path: str | os.PathLike, shape: tuple[int, ...]) -> SavedSession:
    """Read a session file of an image of ``shape``; `SamedError` when it is unreadable or of another image."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        saved = SavedSession(**arrays, current=meta["current"], locked=meta["locked"], hidden=meta["hidden"],
                             settings=meta["settings"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise SamedError(f"the session file {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if saved.labels.shape != tuple(shape):
        raise SamedError(f"the session file {path} holds labels of shape {saved.labels.shape}, but the image is "
                         f"{tuple(shape)}: it belongs to another image")
    if len(saved.points) != len(saved.point_positive) or len(saved.boxes) != len(saved.box_label):
        raise SamedError(f"the session file {path} is inconsistent: prompts and their objects do not match")
    return saved


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a session file that cannot be used, so that a new one does not overwrite it; returns the new name."""
    path = Path(path)
    aside = path.with_name(path.name + ".unused")
    os.replace(path, aside)
    return aside

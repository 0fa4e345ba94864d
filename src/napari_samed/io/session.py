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
MAX_LABEL = int(np.iinfo(np.uint16).max)  # the labels of `InteractiveSession` are uint16
MAX_PROMPTS = 10**6  # points, or boxes, in one file
MAX_COORD = 10**6  # voxels from the origin: far beyond any image (a click beside one is kept), well within float32
MAX_META = 10**6  # characters of the meta's JSON
#: Each array of a file: its numpy dtype kinds, those in words, and its shape ("n": 0 to MAX_PROMPTS prompts; None:
#: the image's).
ARRAYS = {"labels": ("iu", "integers", None), "points": ("fiu", "numbers", ("n", 3)),
          "point_positive": ("biu", "booleans", ("n",)), "point_label": ("iu", "integers", ("n",)),
          "boxes": ("fiu", "numbers", ("n", 4, 3)), "box_label": ("iu", "integers", ("n",)),
          "meta": ("U", f"text of up to {MAX_META} characters", ())}
OBJECT = f"object labels are 1 to {MAX_LABEL}"


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
    """Read a session file of an image of ``shape``, every field checked (type, shape, range, counts) before it is
    used and every array's header before it is read; `SamedError`, in one line naming the file and the field, when
    the file is damaged, of another image or of a newer napari-samed."""
    try:
        return _load(path, tuple(int(n) for n in shape))
    except _Unusable as exc:
        raise SamedError(f"the session file {path} cannot be used: {exc}") from exc
    except Exception as exc:  # whatever a damaged file makes zipfile, zlib, numpy or json raise
        problem = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise SamedError(f"the session file {path} cannot be read ({problem})") from exc


class _Unusable(Exception):
    """A field of a session file that cannot be used; the message names it."""


def _load(path: str | os.PathLike, shape: tuple[int, ...]) -> SavedSession:
    with zipfile.ZipFile(path) as archive:
        arrays = {name: _read(archive, name, *spec, shape) for name, spec in ARRAYS.items()}
    labels, meta = arrays.pop("labels"), json.loads(str(arrays.pop("meta")))
    if labels.dtype != np.uint16:
        _require("labels", labels, (labels >= 0) & (labels <= MAX_LABEL), f"labels are 0 to {MAX_LABEL}")
    for name in ("points", "boxes"):
        _require(name, arrays[name], np.abs(arrays[name]) <= MAX_COORD,
                 f"prompts lie at finite coordinates, at most {MAX_COORD:,} voxels from the origin")
    _require("point_positive", arrays["point_positive"], np.isin(arrays["point_positive"], (0, 1)),
             "polarities are true or false")
    for name in ("point_label", "box_label"):
        _require(name, arrays[name], (arrays[name] >= 1) & (arrays[name] <= MAX_LABEL), OBJECT)
    for group in (("points", "point_positive", "point_label"), ("boxes", "box_label")):
        if len({len(arrays[name]) for name in group}) > 1:
            raise _Unusable(f"{', '.join(group)} disagree on the number of prompts "
                            f"({', '.join(str(len(arrays[name])) for name in group)})")
    return SavedSession(labels.astype(np.uint16), points=arrays["points"].astype(float),
                        point_positive=arrays["point_positive"].astype(bool),
                        point_label=arrays["point_label"].astype(int), boxes=arrays["boxes"].astype(float),
                        box_label=arrays["box_label"].astype(int), **_meta(meta))


def _read(archive: zipfile.ZipFile, name: str, kinds: str, words: str, want: tuple | None,
          shape: tuple[int, ...]) -> np.ndarray:
    """Array ``name`` of the file, read once its header gives a type and a shape (so a size) the field may have."""
    if f"{name}.npy" not in archive.namelist():
        raise _Unusable(f"{name} is missing")
    with archive.open(f"{name}.npy") as file:
        version = np.lib.format.read_magic(file)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise _Unusable(f"{name} is in .npy format {version}, which napari-samed does not read")
        dims, _, dtype = read_header(file)
    if dtype.kind not in kinds or dtype.itemsize > 4 * MAX_META:  # (numbers are 16 bytes at most)
        raise _Unusable(f"{name} is of type {dtype}, not {words}")
    if want is None and dims != shape:
        raise _Unusable(f"labels are of shape {dims}, but the image is {shape}: the file is of another image")
    if want is not None and (len(dims) != len(want) or any(d > MAX_PROMPTS if w == "n" else d != w
                                                            for d, w in zip(dims, want, strict=False))):
        raise _Unusable(f"{name} is of shape {dims}, not ({', '.join(map(str, want))})")
    with archive.open(f"{name}.npy") as file:
        return np.lib.format.read_array(file, allow_pickle=False)


def _require(name: str, values: np.ndarray, ok: np.ndarray, rule: str) -> None:
    """`_Unusable` naming the first of ``values`` that is not ``ok``."""
    if not np.all(ok):
        raise _Unusable(f"{name} holds {values[~ok].flat[0].item()!r} ({rule})")


def _meta(meta) -> dict:
    """The `SavedSession` fields of a file's meta (current object, locked, hidden, settings), its version checked."""
    if not isinstance(meta, dict):
        raise _Unusable(f"meta is {meta!r:.80}, not a dict")
    missing = [key for key in ("version", "current", "locked", "hidden", "settings") if key not in meta]
    if missing:
        raise _Unusable(f"meta has no {missing[0]}")
    version, current, settings = meta["version"], meta["current"], meta["settings"]
    if type(version) is not int or version < 1:
        raise _Unusable(f"version is {version!r:.80}, not a version number")
    if version > VERSION:
        raise _Unusable(f"it is of version {version}, newer than this napari-samed reads ({VERSION}): update "
                        f"napari-samed")
    if not _is_label(current):
        raise _Unusable(f"current is {current!r:.80} ({OBJECT})")
    for key in ("locked", "hidden"):
        if not isinstance(meta[key], list) or not all(map(_is_label, meta[key])):
            raise _Unusable(f"{key} is {meta[key]!r:.80}, not a list of object labels ({OBJECT})")
    if not isinstance(settings, dict) or not all(isinstance(v, str | int | float | None) for v in settings.values()):
        raise _Unusable(f"settings is {settings!r:.80}, not a dict of text, numbers and true/false")
    return {"current": current, "locked": meta["locked"], "hidden": meta["hidden"], "settings": settings}


def _is_label(value) -> bool:
    return type(value) is int and 1 <= value <= MAX_LABEL


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a session file that cannot be used, so that a new one does not overwrite it; returns the new name."""
    path = Path(path)
    aside = path.with_name(path.name + ".unused")
    os.replace(path, aside)
    return aside

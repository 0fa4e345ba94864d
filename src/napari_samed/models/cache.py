"""On-disk embedding cache, one file per slice, keyed by image content, weights and preprocessing.

A slice's file holds the CRC-32 of its float16 embedding, then the embedding: a file cut short by a crash or a
full disk, or changed on disk, fails the check on reading and is recomputed with a warning. (A CRC, not a
cryptographic digest: it guards against damage, and BLAKE2b took more time than the encoder on a GPU, see
docs/benchmarks.md.)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import platformdirs
import torch

from ..errors import SamedError, SamedWarning
from ..io.atomic import atomic_path
from ..io.outputs import check_writable_folder
from ..io.volume import Volume
from .backbone import Backbone
from .machine import record_speed
from .preprocess import resolve_window, window_rule

CACHE_ENV = "NAPARI_SAMED_CACHE"
#: Preprocessing and file layout of the cache; part of the key, so a change starts a fresh folder.
CACHE_VERSION = 3
EMBEDDING_SHAPE = (256, 64, 64)
_DIGEST = 4


def default_cache_dir() -> Path:
    """``$NAPARI_SAMED_CACHE`` or the user cache folder (``~/.cache/napari-samed`` on Linux)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(platformdirs.user_cache_dir("napari-samed")) / "embeddings"


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """The cache folder (`default_cache_dir` when None), created and checked to be writable."""
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    try:
        return check_writable_folder(root, "the embedding cache folder")
    except SamedError as exc:
        raise SamedError(f"{exc}; choose another with --cache DIR or {CACHE_ENV}") from None


def _digest(payload: bytes) -> bytes:
    return zlib.crc32(payload).to_bytes(_DIGEST, "little")


def content_hash(data: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{data.shape}{data.dtype.str}".encode())
    digest.update(np.ascontiguousarray(data).data)
    return digest.hexdigest()


class VolumeEmbeddings:
    """The image embeddings of one volume under one backbone and window, computed lazily and cached.

    ``cache_dir=None`` uses `default_cache_dir`; ``cache_dir=False`` keeps embeddings in memory only.
    ``get(z)`` computes a missing slice on demand; ``compute(slices, first=z)`` is a generator that fills the
    cache (current slice first, then outward, `Backbone.batch_size` slices per encoder call) and yields
    ``(done, total)`` after each slice, so a caller can stop between batches and a later call resumes where it
    stopped; ``rate`` is its speed so far in slices per second.
    """

    def __init__(self, volume: Volume | np.ndarray, backbone: Backbone, window: str | tuple | None = "auto",
                 cache_dir: str | os.PathLike | None | bool = None, memory_slices: int = 64):
        self.data = volume.data if isinstance(volume, Volume) else np.asarray(volume)
        self.spacing = volume.spacing if isinstance(volume, Volume) else None
        self.backbone = backbone
        self.window_rule = window_rule(window, self.data)  # what a model trained on these embeddings records
        self.window = resolve_window(self.window_rule, self.data)
        self.key = self._key()
        self.dir = None if cache_dir is False else cache_root(cache_dir) / self.key
        self._memory: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._memory_slices = memory_slices
        self.rate = 0.0
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._write_meta()

    @property
    def num_slices(self) -> int:
        return self.data.shape[0]

    @property
    def slice_shape(self) -> tuple[int, int]:
        return tuple(self.data.shape[1:])

    @property
    def image_hash(self) -> str:
        """The content hash of the volume's voxels (part of the cache key), computed once."""
        return self._parts["image"]

    def _key(self) -> str:
        spec = self.backbone.spec
        parts = {
            "image": content_hash(self.data),
            "model": spec.name,
            "weights": self.backbone.weights_id,
            "window": [round(v, 4) for v in self.window],
            "size": spec.image_size,
            "normalize": spec.normalize,
            "precision": self.backbone.precision,
            "version": CACHE_VERSION,
        }
        self._parts = parts
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def _write_meta(self) -> None:
        meta = self.dir / "meta.json"
        if not meta.exists():
            with atomic_path(meta) as tmp:
                tmp.write_text(json.dumps({**self._parts, "shape": list(self.data.shape)}, indent=1))

    def _path(self, z: int) -> Path:
        return self.dir / f"z{z:05d}.emb"

    def _check(self, z: int) -> int:
        z = int(z)
        if not 0 <= z < self.num_slices:
            raise IndexError(f"slice {z} outside the volume (0..{self.num_slices - 1})")
        return z

    def has(self, z: int) -> bool:
        z = self._check(z)
        return z in self._memory or (self.dir is not None and self._path(z).exists())

    def missing(self, slices: Iterable[int] | None = None) -> list[int]:
        slices = range(self.num_slices) if slices is None else slices
        return [int(z) for z in slices if not self.has(z)]

    def get(self, z: int) -> torch.Tensor:
        """The (256, 64, 64) float32 embedding of slice ``z``, computed and cached if missing."""
        z = self._check(z)
        if z in self._memory:
            self._memory.move_to_end(z)
            return self._memory[z].float()
        emb = self._load(z)
        if emb is None:
            emb = self._encode([z])[0]
        self._remember(z, emb)
        return emb.float()

    def _load(self, z: int) -> torch.Tensor | None:
        """The cached float16 embedding of slice ``z``; None when absent, or damaged (with a warning)."""
        path = None if self.dir is None else self._path(z)
        if path is None or not path.exists():
            return None
        try:
            raw = bytearray(path.read_bytes())
        except OSError as exc:
            return self._damaged(path, exc.strerror or str(exc))
        size = _DIGEST + 2 * int(np.prod(EMBEDDING_SHAPE))
        if len(raw) != size:
            return self._damaged(path, f"{len(raw)} bytes instead of {size}")
        if _digest(raw[_DIGEST:]) != raw[:_DIGEST]:
            return self._damaged(path, "its checksum does not match")
        return torch.from_numpy(np.frombuffer(raw, np.float16, offset=_DIGEST).reshape(EMBEDDING_SHAPE))

    @staticmethod
    def _damaged(path: Path, why: str) -> None:
        warnings.warn(f"damaged embedding cache entry {path} ({why}): recomputing it", SamedWarning, stacklevel=4)
        return None

    def _encode(self, slices: list[int]) -> torch.Tensor:
        """Embed and store ``slices``: (len(slices), 256, 64, 64) float16; ``rate`` becomes this call's speed."""
        start = time.perf_counter()
        embs = self.backbone.encode(self.data[slices], self.window).half()
        self.rate = len(slices) / (time.perf_counter() - start)
        if self.dir is not None:
            for z, emb in zip(slices, embs, strict=True):
                payload = emb.contiguous().numpy().tobytes()
                with atomic_path(self._path(z)) as tmp:
                    tmp.write_bytes(_digest(payload) + payload)
        return embs

    def _remember(self, z: int, emb: torch.Tensor) -> None:
        self._memory[z] = emb
        while len(self._memory) > self._memory_slices:
            self._memory.popitem(last=False)

    def compute(self, slices: Iterable[int] | None = None, first: int | None = None) -> Iterator[tuple[int, int]]:
        """Generator: embed the missing ``slices`` (all by default), ``first`` and its neighbours first."""
        todo = self.missing(slices)
        if first is not None:
            todo.sort(key=lambda z: (abs(z - first), z))
        start, step, done = time.perf_counter(), self.backbone.batch_size, 0
        try:
            for i in range(0, len(todo), step):
                batch = todo[i:i + step]
                for done, (z, emb) in enumerate(zip(batch, self._encode(batch), strict=True), start=i + 1):
                    self._remember(z, emb)
                    self.rate = done / (time.perf_counter() - start)
                    yield done, len(todo)
        finally:
            if done and self.dir is not None:  # for `napari-samed info`
                record_speed(self.dir.parent, self.backbone, done, done / self.rate)

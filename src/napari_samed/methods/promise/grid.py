"""Volumes on the crop grid: resampling to the configured voxel size, crops, clicks and pasting back.

For a SAM ViT the crop grid is the volume resampled to ``config.spacing``. For LiteMedSAM it is the resampled
volume's slices as the encoder sees them (longest side resized to the model input, zero-padded) at half the
model's resolution, so that one cached 64×64 embedding cell covers 2×2 grid pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import Resize

from ...models.backbone import Backbone
from ...models.cache import VolumeEmbeddings
from ...models.preprocess import SliceTransform, window_to_uint8_range
from .config import PromiseConfig

SAME_SPACING = 1e-3  # relative difference under which a volume is not resampled


def resampled_shape(shape: tuple[int, ...], spacing: tuple[float, ...], target: tuple[float, ...]) -> tuple[int, ...]:
    return tuple(max(round(n * s / t), 1) for n, s, t in zip(shape, spacing, target, strict=True))


def resample(data: np.ndarray, spacing: tuple[float, ...], target: tuple[float, ...],
             labels: bool = False) -> np.ndarray:
    """``data`` (z, y, x) at ``spacing`` -> the voxel size ``target`` (unchanged when already there)."""
    if np.allclose(spacing, target, rtol=SAME_SPACING):
        return data
    size = resampled_shape(data.shape, spacing, target)
    resize = Resize(size, mode="nearest" if labels else "trilinear", anti_aliasing=False)
    work = np.float64 if data.dtype == np.float64 else np.float32  # float64 may hold values beyond float32's range
    out = np.asarray(resize(np.asarray(data, work)[None]))[0]
    return out.astype(data.dtype) if labels else out


@dataclass
class GridVolume:
    """One volume on the crop grid: the windowed image in [0, 1] (Z, Y, X), its labels for training, the cached
    embeddings (LiteMedSAM) and what it takes to map clicks in and masks out."""

    image: torch.Tensor
    shape: tuple[int, int, int]
    resampled: tuple[int, int, int]
    plane: SliceTransform | None
    embeddings: VolumeEmbeddings | None = None
    labels: torch.Tensor | None = None

    @classmethod
    def build(cls, data: np.ndarray, spacing: tuple[float, float, float], window: tuple[float, float],
              config: PromiseConfig, backbone: Backbone, cache_dir=False, mask: np.ndarray | None = None,
              embeddings: VolumeEmbeddings | None = None) -> GridVolume:
        """``embeddings`` of ``data`` are reused when no resampling is needed; else new ones are made (LiteMedSAM)."""
        moved = resample(data, spacing, config.spacing)
        lo, hi = window
        image = torch.from_numpy(window_to_uint8_range(moved, window) / 255.0)
        labels = None if mask is None else torch.from_numpy(resample(np.asarray(mask, np.uint8), spacing,
                                                                     config.spacing, labels=True).astype(np.float32))
        plane = None
        if config.lite:
            if embeddings is None or moved is not data:
                embeddings = VolumeEmbeddings(moved, backbone, (lo, hi), cache_dir)
            plane = SliceTransform(moved.shape[1], moved.shape[2], backbone.spec.image_size // 2)
            image = to_plane(image, plane, "area")
            labels = None if labels is None else (to_plane(labels, plane, "area") > 0.5).float()
        return cls(image, tuple(data.shape), tuple(moved.shape), plane, embeddings if config.lite else None, labels)

    def to_grid(self, zyx: np.ndarray) -> np.ndarray:
        """Voxel coordinates (N, 3) of the input volume -> crop-grid coordinates."""
        scale = np.asarray(self.resampled) / np.asarray(self.shape)
        out = (np.asarray(zyx, float) + 0.5) * scale - 0.5
        if self.plane is not None:
            out[:, 1:] = (out[:, 1:] + 0.5) * self.plane.scale - 0.5
        return out

    def to_volume(self, probability: torch.Tensor) -> np.ndarray:
        """A (Z, Y, X) probability on the grid -> a boolean mask in the input volume's geometry."""
        p = probability[None, None].float()
        if self.plane is not None:
            rh, rw = self.plane.resized
            p = p[..., :rh, :rw]
        if tuple(p.shape[2:]) != self.shape:
            p = F.interpolate(p, size=self.shape, mode="trilinear", align_corners=False)
        return (p[0, 0] > 0.5).numpy()


def to_plane(volume: torch.Tensor, plane: SliceTransform, mode: str) -> torch.Tensor:
    """(Z, H, W) slices -> (Z, size, size): longest side resized to the grid, zero-padded bottom/right."""
    x = F.interpolate(volume[:, None].float(), size=plane.resized, mode=mode)
    return F.pad(x, (0, plane.size - plane.resized[1], 0, plane.size - plane.resized[0]))[:, 0]


def crop_start(centre: np.ndarray, size: int, align: tuple[int, int, int]) -> np.ndarray:
    """First voxel of a crop of side ``size`` centred on ``centre``, a multiple of ``align`` per axis."""
    start = np.floor(np.asarray(centre, float)).astype(int) - size // 2
    return start - np.mod(start, align)


def _overlap(start: np.ndarray, size: tuple[int, ...], shape: tuple[int, ...]) -> tuple[tuple, tuple] | None:
    """Index tuples (array side, crop side) of where a crop at ``start`` meets an array of ``shape``."""
    src, dst = [], []
    for s, n, full in zip(start, size, shape, strict=True):
        lo, hi = max(int(s), 0), min(int(s) + n, full)
        if hi <= lo:
            return None
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    return (..., *src), (..., *dst)


def take(array: torch.Tensor, start: np.ndarray, size: tuple[int, ...]) -> torch.Tensor:
    """array[..., start:start + size] over the last three axes, zero-padded where it leaves the array."""
    out = array.new_zeros((*array.shape[:-3], *size))
    where = _overlap(start, size, array.shape[-3:])
    if where is not None:
        out[where[1]] = array[where[0]]
    return out


def paste(crop: torch.Tensor, start: np.ndarray, shape: tuple[int, int, int]) -> torch.Tensor:
    """A zero (Z, Y, X) volume of ``shape`` holding ``crop`` at ``start`` (the inverse of `take`)."""
    out = crop.new_zeros(shape)
    where = _overlap(start, tuple(crop.shape), shape)
    if where is not None:
        out[where[0]] = crop[where[1]]
    return out


def crop_embeddings(embeddings: VolumeEmbeddings, start: np.ndarray, size: int) -> torch.Tensor:
    """(256, size, size/2, size/2) cached embeddings of a crop starting at grid voxel ``start`` (even y, x)."""
    z0, y0, x0 = (int(v) for v in start)
    cells = size // 2
    out = torch.zeros(256, size, cells, cells)
    for z in range(max(z0, 0), min(z0 + size, embeddings.num_slices)):
        out[:, z - z0] = take(embeddings.get(z), np.array([0, y0 // 2, x0 // 2]), (256, cells, cells))
    return out


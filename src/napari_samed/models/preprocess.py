"""Intensity windows and the per-slice resize/pad/normalise of the SAM family, as each model's own inference code does
it (the measurements behind each choice: docs/benchmarks.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SamedError

CT_WINDOW = (-160.0, 240.0)  # level 40, width 400 HU
MR_PERCENTILES = (0.5, 99.5)
CT_DETECT_HU = -500.0


def window_rule(spec: str | tuple[float, float] | None, data: np.ndarray) -> str | tuple[float, float]:
    """The rule ``spec`` stands for on ``data``: ``auto`` (or None) becomes the rule it picks, any other spec is
    kept. ``auto`` takes uint8 volumes as already windowed (0-255); else the CT window when the volume holds values
    below -500 (Hounsfield units), else the MR window."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        if data.dtype == np.uint8:
            return (0.0, 255.0)
        return "ct" if float(data.min()) < CT_DETECT_HU else "mr"
    return spec


def shared_rule(spec: str | tuple[float, float] | None, rules) -> str | tuple[float, float]:
    """What a model trained on several volumes records as its window: the rule ``spec`` picked on each of them
    (``rules``) when they all agree, else ``spec`` itself."""
    unique = {str(rule): rule for rule in rules}
    return next(iter(unique.values())) if len(unique) == 1 else (spec or "auto")


def resolve_window(spec: str | tuple[float, float] | None, data: np.ndarray) -> tuple[float, float]:
    """Turn ``ct``, ``mr``, ``auto`` (default, see `window_rule`), ``"LO,HI"`` or a pair into a concrete
    intensity window. The MR window is the 0.5-99.5 percentiles of the voxels above the volume's minimum (its
    background)."""
    spec = window_rule(spec, data)
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key == "ct":
            return CT_WINDOW
        if key == "mr":
            fg = data[data > data.min()]
            fg = fg if fg.size else data.ravel()
            lo, hi = np.percentile(fg, MR_PERCENTILES)
            return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        try:
            lo, hi = (float(v) for v in key.split(","))
        except ValueError:
            raise SamedError(f"window must be ct, mr, auto or LO,HI; got {spec!r}") from None
        spec = (lo, hi)
    lo, hi = (float(v) for v in spec)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise SamedError(f"window needs finite LO < HI; got {lo}, {hi}")
    return (lo, hi)


@dataclass(frozen=True)
class SliceTransform:
    """Geometry of one slice's resize to the model input: longest side to ``size``, pad bottom/right."""

    height: int
    width: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / max(self.height, self.width)

    @property
    def resized(self) -> tuple[int, int]:
        return (round(self.height * self.scale), round(self.width * self.scale))

    def boxes_to_model(self, boxes_yx: np.ndarray) -> np.ndarray:
        """(N, 4) boxes ``(y0, x0, y1, x1)`` in slice pixels -> SAM's ``(x0, y0, x1, y1)`` in model pixels."""
        b = np.asarray(boxes_yx, dtype=np.float32).reshape(-1, 4)
        return b[:, [1, 0, 3, 2]] * self.scale

    def points_to_model(self, points_yx: np.ndarray) -> np.ndarray:
        """(..., 2) points ``(y, x)`` in slice pixels -> SAM's ``(x, y)`` in model pixels."""
        return np.asarray(points_yx, dtype=np.float32)[..., ::-1] * self.scale

    def logits_to_slice(self, low_res: torch.Tensor) -> torch.Tensor:
        """Decoder logits (N, C, h, w) over the padded model input -> (N, C, height, width)."""
        up = F.interpolate(low_res, size=(self.size, self.size), mode="bilinear", align_corners=False)
        rh, rw = self.resized
        return F.interpolate(up[..., :rh, :rw], size=(self.height, self.width), mode="bilinear",
                             align_corners=False)


def masks_to_grid(masks: np.ndarray, grid: int) -> torch.Tensor:
    """(N, H, W) binary masks -> (N, grid, grid) area fractions on the model's padded input grid (the geometry of
    `SliceTransform`: longest side to ``grid``, padded bottom/right)."""
    _, h, w = masks.shape
    tf = SliceTransform(h, w, grid)
    x = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    x = F.interpolate(x, size=tf.resized, mode="area" if tf.scale < 1 else "nearest")
    return F.pad(x, (0, grid - tf.resized[1], 0, grid - tf.resized[0]))[:, 0]


def window_to_uint8_range(slices: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip to the window and scale to [0, 255] as float32; float64 input is windowed in float64 first, since
    its values may lie beyond float32's range (overflow) or below its resolution (flushed to zero)."""
    lo, hi = window
    work = np.float64 if slices.dtype == np.float64 else np.float32
    out = (np.clip(slices.astype(work, copy=False), lo, hi) - lo) * (255.0 / (hi - lo))
    return out.astype(np.float32, copy=False)


def to_model_input(slices: np.ndarray, window: tuple[float, float], size: int, normalize: str) -> torch.Tensor:
    """Stack of slices (B, H, W) -> model input (B, 3, size, size), resized, normalised, zero-padded.

    ``normalize``: ``"minmax"`` (MedSAM/LiteMedSAM: each slice to [0, 1] after resizing) or ``"imagenet"``
    (SAM: pixel mean/std on the 0-255 scale).
    """
    x = torch.from_numpy(window_to_uint8_range(slices, window))[:, None]
    tf = SliceTransform(x.shape[-2], x.shape[-1], size)
    if tf.scale < 1:  # pixel-area averaging, like the cv2 INTER_AREA of the reference pipelines
        x = F.interpolate(x, size=tf.resized, mode="area")
    else:
        x = F.interpolate(x, size=tf.resized, mode="bilinear", align_corners=False)
    if normalize == "minmax":
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / (hi - lo).clamp_min(1e-8)
        x = x.expand(-1, 3, -1, -1)
    elif normalize == "imagenet":
        mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
        x = (x.expand(-1, 3, -1, -1) - mean) / std
    else:
        raise ValueError(f"unknown normalisation {normalize!r}")
    rh, rw = tf.resized
    return F.pad(x, (0, size - rw, 0, size - rh))

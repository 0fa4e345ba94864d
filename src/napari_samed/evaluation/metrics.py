"""DSC, IoU, NSD, ASSD and HD95 of a binary prediction against a reference, spacing-aware, via MONAI."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
    compute_surface_dice,
)

from ..errors import SamedError, SamedWarning


def _onehot(mask: np.ndarray) -> torch.Tensor:
    """Binary mask -> MONAI's (batch, channel, *spatial) one-hot with background and foreground."""
    fg = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
    return torch.stack([~fg, fg]).float()[None]


def evaluate_masks(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None,
                   tolerance: float = 1.0) -> dict[str, float | None]:
    """Overlap and surface metrics of binary ``pred`` against binary ``ref``.

    ``spacing`` is the voxel size per axis in mm (voxels when None); NSD counts surface within ``tolerance``
    (same unit). With an empty prediction DSC, IoU and NSD are 0 and the distances are None (undefined).
    """
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise SamedError(f"prediction shape {pred.shape} does not match the reference shape {ref.shape}")
    if not ref.any():
        raise SamedError("the reference label is empty: nothing to compare against")
    spacing = [1.0] * pred.ndim if spacing is None else [float(s) for s in spacing]
    y_pred, y = _onehot(pred), _onehot(ref)
    result: dict[str, float | None] = {
        "dsc": float(compute_dice(y_pred, y, include_background=False)),
        "iou": float(compute_iou(y_pred, y, include_background=False)),
    }
    if not pred.any():
        return {**result, "nsd": 0.0, "assd": None, "hd95": None}
    result["nsd"] = float(compute_surface_dice(y_pred, y, [tolerance], spacing=spacing))
    result["assd"] = float(compute_average_surface_distance(y_pred, y, symmetric=True, spacing=spacing))
    result["hd95"] = float(compute_hausdorff_distance(y_pred, y, percentile=95, spacing=spacing))
    return result


def per_slice_dsc(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """DSC of each z slice (NaN where both are empty)."""
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    inter = (pred & ref).sum(axis=(1, 2))
    total = pred.sum(axis=(1, 2)) + ref.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / total, np.nan)


def evaluate_labels(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], label: int | None = None,
                    tolerance: float = 1.0, names: tuple[str, str] = ("the prediction", "the reference")
                    ) -> dict[str, float | None]:
    """`evaluate_masks` of two label volumes on one grid: their voxels of ``label``, or any non-zero voxel.

    `SamedError` when the shapes differ or the reference holds none; an empty prediction gives a `SamedWarning`
    (its distances are undefined: None). ``names`` name the two volumes in messages.
    """
    if pred.shape != gt.shape:
        raise SamedError(f"{names[0]} has shape {pred.shape} and {names[1]} {gt.shape}; they must share a grid")
    p, g = (pred != 0, gt != 0) if label is None else (pred == label, gt == label)
    if not g.any():
        raise SamedError(f"{names[1]} holds no labelled voxel: nothing to compare against" if label is None
                         else f"label {label} does not occur in {names[1]}")
    if not p.any():
        warnings.warn(f"{names[0]} is empty; distances are undefined (null)", SamedWarning, stacklevel=2)
    return evaluate_masks(p, g, spacing, tolerance)

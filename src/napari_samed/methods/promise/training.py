"""Training crops: foreground- or background-centred crops, the paper's augmentations and click sampling."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Compose, RandFlipd, RandRotated, RandShiftIntensityd, RandZoomd

from .config import PromiseConfig
from .grid import GridVolume, crop_embeddings, crop_start, take
from .prompt import normalise_points


def augmentations(lite: bool) -> Compose:
    """Flip, rotate (in-plane), zoom and intensity shift, the same spatial change for image, labels and
    (LiteMedSAM) the embedding crop."""
    keys = ["image", "label", "embeddings"] if lite else ["image", "label"]
    modes = ["bilinear", "nearest", "bilinear"][:len(keys)]
    return Compose([
        *(RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in (0, 1, 2)),
        RandRotated(keys, range_z=np.pi / 12, prob=0.3, mode=modes, padding_mode="zeros"),
        RandZoomd(keys, min_zoom=0.9, max_zoom=1.1, prob=0.3, padding_mode="constant",
                  mode=[m if m == "nearest" else "trilinear" for m in modes]),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ])


def align(config: PromiseConfig) -> tuple[int, int, int]:
    """Crop starts are multiples of this: whole embedding cells in-plane for LiteMedSAM."""
    return (1, 2, 2) if config.lite else (1, 1, 1)


def sample_crop(volume: GridVolume, config: PromiseConfig, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """A crop centred on a foreground or a background voxel with equal chance: image (1, S, S, S), label
    (1, S, S, S) and, for LiteMedSAM, embeddings (256, S, S/2, S/2)."""
    labels = volume.labels
    want = bool(rng.random() < 0.5)
    candidates = torch.nonzero(labels > 0 if want else labels == 0)
    if not len(candidates):
        candidates = torch.nonzero(labels >= 0)
    centre = candidates[rng.integers(len(candidates))].numpy()
    size = (config.crop,) * 3
    start = crop_start(centre, config.crop, align(config))
    crop = {"image": take(volume.image, start, size)[None], "label": take(labels, start, size)[None]}
    if config.lite:
        crop["embeddings"] = crop_embeddings(volume.embeddings, start, config.crop)
    return crop


def sample_clicks(label: torch.Tensor, config: PromiseConfig, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """Up to ``fg_points`` foreground clicks (when there is foreground) and up to ``random_points`` clicks anywhere,
    labelled by the mask: normalised points (1, N, 3) and labels (1, N)."""
    fg = torch.nonzero(label[0] > 0.5).numpy()
    n_fg = int(rng.integers(1, config.fg_points + 1)) if len(fg) else 0
    n_random = int(rng.integers(0 if n_fg else 1, config.random_points + 1))
    picks = [fg[rng.integers(len(fg), size=n_fg)]] if n_fg else []
    picks.append(rng.integers(0, label.shape[1:], size=(n_random, 3)))
    points = np.concatenate(picks)
    clicked = label[0][tuple(torch.from_numpy(points).long().T)] > 0.5
    coords = normalise_points(torch.from_numpy(points).float(), tuple(label.shape[1:]))
    return coords[None], clicked.long()[None]

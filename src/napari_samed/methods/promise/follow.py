"""Crops that follow an object larger than one crop.

ProMISe segments the crop around a click. Where the object found so far (the parts of the mask connected to a
positive click, `clicked_parts`) reaches a face of one of its crops, and the grid beyond that face is inside the
volume and not yet segmented, the object goes on there: the next crop is
centred on the mask's part of that face (half of it over what is known, half beyond), with a positive click at
the deepest voxel of the mask already found inside it. The crops so far stay as they are; a new crop is kept
only where its mask agrees with theirs over the grid they share (`agrees`), and then fills only grid not yet
covered; a crop that disagrees is dropped, its grid left as it was.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .grid import crop_start

#: The most crops one object gets (the clicked one included): enough for an object about twice a crop's size in
#: every direction; each is one forward pass.
MAX_CROPS = 8
#: Fewer mask voxels than this on a crop face do not start a new crop (a border speck, not the object going on).
MIN_FACE = 8
#: The least DSC between a new crop's mask and the mask so far, over the grid both cover, for the new crop to be
#: kept. Measured on BraTS (docs/benchmarks.md, "ProMISe on the enhancing tumour"): without it the crops followed
#: leaks and the whole tumour of patient 0004 fell from 0.877 to 0.421; at 0.5 the same, at 0.7 0.834, at 0.8
#: 0.898 (one crop more, kept) with the enhancing tumours unchanged or better. Chosen on those same cases.
AGREE = 0.8


def agrees(new: np.ndarray, old: np.ndarray, shared: np.ndarray) -> bool:
    """Whether the masks ``new`` and ``old`` agree (DSC at least `AGREE`) over the ``shared`` grid."""
    a, b = new & shared, old & shared
    total = int(a.sum() + b.sum())
    return total == 0 or 2 * int((a & b).sum()) >= AGREE * total


def _within(start: np.ndarray, size: int, shape: tuple[int, ...]) -> list[slice]:
    return [slice(max(int(s), 0), min(int(s) + size, n)) for s, n in zip(start, shape, strict=True)]


def clicked_parts(mask: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """The 26-connected parts of ``mask`` (Z, Y, X) that hold one of the (N, 3) grid ``clicks``: the object, not
    what else the crops found."""
    parts, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    index = np.clip(np.round(clicks).astype(int), 0, np.array(mask.shape) - 1)
    held = [k for k in np.unique(parts[tuple(index.T)]) if k]
    return np.isin(parts, held)


def next_crop(mask: np.ndarray, covered: np.ndarray, starts: list[np.ndarray], size: int,
              align: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, positive click) on the grid of the next crop for ``mask`` (the object found so far, (Z, Y, X)
    booleans) given the ``covered`` grid and the ``starts`` of the crops of side ``size`` so far; None when the
    mask reaches no crop face that opens on uncovered grid inside the volume with at least `MIN_FACE` voxels.
    The face with the most such voxels goes first."""
    best, best_count = None, MIN_FACE - 1
    for start in starts:
        for axis in range(3):
            for face, beyond in ((int(start[axis]), int(start[axis]) - 1),
                                 (int(start[axis]) + size - 1, int(start[axis]) + size)):
                if not (0 <= beyond < mask.shape[axis] and 0 <= face < mask.shape[axis]):
                    continue
                inside, outside = _within(start, size, mask.shape), _within(start, size, mask.shape)
                inside[axis], outside[axis] = face, beyond
                opening = mask[tuple(inside)] & ~covered[tuple(outside)]
                count = int(opening.sum())
                if count > best_count:
                    centre = np.array([s.start for s in inside if isinstance(s, slice)], float)
                    centre = np.insert(centre + np.argwhere(opening).mean(axis=0), axis, face)
                    best, best_count = centre, count
    if best is None:
        return None
    start = crop_start(best, size, align)
    region = _within(start, size, mask.shape)
    depth = ndimage.distance_transform_edt(mask[tuple(region)])
    click = np.unravel_index(int(np.argmax(depth)), depth.shape) + np.array([s.start for s in region])
    return start, click.astype(float)

"""Deterministic synthetic CT-like volumes: a body with spine, an organ with lesions inside it, noise.

Used as the plugin's sample data, by the tests and by training demos (different seeds give different
volumes). Labels: 0 background, 1 organ, 2 lesion (the lesion lies inside the organ).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .io.volume import Volume

ORGAN, LESION = 1, 2
HU = {"air": -1000.0, "fat": -100.0, "tissue": 35.0, "bone": 600.0, "organ": 115.0, "lesion": 45.0,
      "kidney": 170.0}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (np.abs(field).max() + 1e-8)


def make_phantom(seed: int = 0, shape: tuple[int, int, int] = (64, 256, 256),
                 spacing: tuple[float, float, float] = (2.5, 1.0, 1.0),
                 n_lesions: int | None = None) -> tuple[Volume, np.ndarray]:
    """A CT-like volume in Hounsfield units (int16) and its label volume (uint8), both (z, y, x)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    sz, sy, sx = spacing
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) - (n - 1) / 2 for n in shape), indexing="ij")
    z, y, x = z * sz, y * sy, x * sx  # mm from the centre; y grows posterior, x grows to the patient's left

    scale = min(ny * sy, nx * sx) / 256.0  # anatomy sized for a 256 mm field of view
    body = (y / (95 * scale)) ** 2 + (x / (122 * scale)) ** 2
    image = np.full(shape, HU["air"], np.float32)
    image[body <= 1.0] = HU["fat"]
    image[body <= 0.86] = HU["tissue"]
    spine = (y - 62 * scale) ** 2 + x**2 <= (13 * scale) ** 2
    image[spine] = HU["bone"]
    kidney = ((y - 35 * scale) / 22) ** 2 + ((x - 62 * scale) / 16) ** 2 + (z / 45) ** 2 <= scale**2
    image[kidney] = HU["kidney"]

    centre = np.array([rng.uniform(-8, 8), rng.uniform(-22, -12) * scale, rng.uniform(-48, -36) * scale])
    radii = np.array([rng.uniform(45, 55), rng.uniform(44, 52) * scale, rng.uniform(46, 56) * scale])
    ell = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
    wobble = ndimage.zoom(_smooth_field(rng, (6, 12, 12), 1.5), np.array(shape) / (6, 12, 12), order=1)
    organ = (ell * (1 + 0.35 * wobble) <= 1.0) & (body <= 0.8)
    image[organ] = HU["organ"]

    labels = np.zeros(shape, np.uint8)
    labels[organ] = ORGAN
    n_lesions = int(rng.integers(1, 3)) if n_lesions is None else n_lesions
    dist_inside = ndimage.distance_transform_edt(organ, sampling=spacing)
    for _ in range(n_lesions):
        r = rng.uniform(9, 16) * scale
        candidates = np.argwhere(dist_inside > r + 4)
        if not len(candidates):
            break
        c = (candidates[rng.integers(len(candidates))] - (np.array(shape) - 1) / 2) * spacing
        lesion = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= r**2
        image[lesion] = HU["lesion"]
        labels[lesion] = LESION

    image = ndimage.gaussian_filter(image, sigma=(0.3, 0.8, 0.8))
    image += rng.normal(0.0, 12.0, shape).astype(np.float32)
    return Volume(np.round(image).astype(np.int16), spacing=spacing), labels

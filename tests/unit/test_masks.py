"""3D parts kept by the few-shot extent rule (`masks.touching_slices`)."""

import numpy as np

from napari_samed.masks import touching_slices


def test_parts_reaching_the_range_are_kept_whole_and_the_others_dropped():
    mask = np.zeros((20, 8, 8), bool)
    mask[5:15, 2:4, 2:4] = True  # runs through the range and past it: kept whole
    mask[12:14, 6, 6] = True  # inside the range, apart from the rest: kept
    mask[17:19, 6:8, 0:2] = True  # beyond the range, touching nothing in it: dropped
    mask[15, 4, 4] = True  # diagonal to the first part's end (26-connected): kept
    kept = touching_slices(mask, 8, 13)
    expected = mask.copy()
    expected[17:19] = False
    np.testing.assert_array_equal(kept, expected)


def test_nothing_in_the_range_keeps_nothing():
    mask = np.zeros((10, 4, 4), bool)
    mask[0:2, 1, 1] = True
    assert not touching_slices(mask, 5, 7).any()

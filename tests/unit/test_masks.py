"""3D parts kept by the few-shot extent rules (`masks.touching_slices`, `masks.tapering_from`,
`masks.within_labelled_extent`, `FewShot.near_labelled_slices`)."""

import numpy as np

from napari_samed.masks import tapering_from, touching_slices, within_labelled_extent
from napari_samed.methods import FewShot


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


def test_tapering_keeps_what_shrinks_and_overlaps_and_stops_where_it_grows():
    mask = np.zeros((8, 10, 10), bool)
    mask[0:3, 2:8, 2:8] = True  # up to the start (slice 2) and before it: never touched
    mask[3, 3:7, 3:7] = True  # smaller, overlapping: kept
    mask[3, 0, 9] = True  # a part apart from slice 2's mask: dropped
    mask[4, 4:6, 4:6] = True  # smaller still: kept
    mask[5, 3:7, 3:7] = True  # grows: dropped, and everything beyond
    mask[6, 4:5, 4:5] = True
    kept = tapering_from(mask, 2, 1)
    expected = mask.copy()
    expected[3, 0, 9] = False
    expected[5:] = False
    np.testing.assert_array_equal(kept, expected)
    np.testing.assert_array_equal(tapering_from(mask[::-1], 5, -1), expected[::-1])  # the other way: the same


def test_what_goes_on_unchanged_past_an_end_where_the_labels_shrink_is_dropped():
    mask = np.zeros((16, 10, 10), bool)
    for z, half in zip(range(3, 10), (1, 2, 3, 4, 4, 3, 2), strict=True):  # grows, then shrinks toward slice 9
        mask[z, 5 - half:5 + half, 5 - half:5 + half] = True
    mask[10, 4:7, 4:7] = True  # past the last labelled slice (8), still shrinking: kept
    mask[11:14, 3:7, 3:7] = True  # then growing again: a look-alike
    expected = mask.copy()
    expected[11:] = False
    np.testing.assert_array_equal(within_labelled_extent(mask, (4, 8), (False, True), 1.1), expected)
    np.testing.assert_array_equal(within_labelled_extent(mask, (4, 8)), mask)  # not shrinking toward it: kept
    expected[:2], expected[10:] = False, False  # slices 2 and 10 labelled without it: nothing from there outward
    np.testing.assert_array_equal(within_labelled_extent(mask, (4, 8), absent=(2, 10)), expected)


def test_fewshot_applies_each_labels_extent_and_the_slices_labelled_without_it():
    out = np.zeros((12, 6, 6), np.uint8)
    out[1:11, 1:3, 1:3] = 1
    out[1:11, 4:6, 4:6] = 2
    method = FewShot(None)
    method.labels, method.extent, method.sources = [1, 2], {"ct": [(3, 5), (5, 7)]}, {"ct": [3, 5, 7]}
    other = out.copy()
    method.near_labelled_slices(other, "another image")  # not the labelled image: nothing dropped
    np.testing.assert_array_equal(other, out)
    method.near_labelled_slices(out, "ct")  # slice 7 labelled without label 1
    assert np.flatnonzero((out == 1).any(axis=(1, 2))).tolist() == list(range(1, 7))
    assert np.flatnonzero((out == 2).any(axis=(1, 2))).tolist() == list(range(4, 11))  # slice 3 lacks label 2

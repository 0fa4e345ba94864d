"""Which slice to suggest labelling next (`next_slice.candidates`, `next_slice.pick`), with the model's doubts
given."""

import numpy as np

from napari_samed.methods.next_slice import SliceDoubt, candidates, pick


def test_candidates_are_the_drawn_slices_the_labelled_range_and_one_beyond_each_end_of_the_drawing():
    assert candidates(np.array([10, 11, 12, 13, 14, 20]), [12, 15], 30) == [9, 10, 11, 13, 14, 20, 21]
    assert all(type(z) is int for z in candidates(np.array([3]), [], 5))  # plain ints: they are printed as JSON
    assert candidates([0, 1], [1], 2) == [0]  # nothing beyond the volume's ends
    assert candidates([], [3, 7], 10) == [4, 5, 6]  # it draws nothing: the gaps between labelled slices


def test_past_the_labelled_range_the_slice_next_to_it_settles_the_doubt_beyond_it():
    sure = SliceDoubt(True, 0.02, 0.01)
    doubts = {13: sure, 14: SliceDoubt(True, 0.1, 0.5), 16: sure, 17: sure, 19: sure}
    doubts |= {20: SliceDoubt(True, 0.5, 0.2), 21: SliceDoubt(False, 0.6, 0.0)}  # a false region running on
    first, second, third = pick(doubts, [12, 15, 18], 3)
    assert (first.z, second.z, third.z) == (19, 20, 21)  # the next past the range each time: the most unsure
    assert first.why.startswith("1 slice from the nearest labelled one") and "DSC 0.80" in second.why
    assert "the model draws nothing here but is unsure" in third.why


def test_between_labelled_slices_suggestions_spread_out_and_stop_when_nothing_is_left():
    doubts = {z: SliceDoubt(True, 0.3, 0.3) for z in range(1, 6)}
    picks = pick(doubts, [0, 6], 10)
    assert picks[0].z == 3 and sorted(p.z for p in picks) == [1, 2, 3, 4, 5]

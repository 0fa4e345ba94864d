"""Which slice to suggest labelling next (`next_slice.suggest`), with the model's doubts given."""

from types import SimpleNamespace

from napari_samed.methods import next_slice, run_task
from napari_samed.methods.next_slice import SliceDoubt


def suggestions(monkeypatch, doubts: dict[int, SliceDoubt], labelled, count):
    monkeypatch.setattr(next_slice, "slice_doubt", lambda method, embeddings, z: doubts[z])
    method, embeddings = SimpleNamespace(decoder=object()), SimpleNamespace(num_slices=len(doubts))
    return run_task(next_slice.suggest(method, embeddings, labelled, count))


def test_the_missed_edge_of_the_structure_beats_a_far_slice_with_a_few_unsure_pixels(monkeypatch):
    sure, nothing = SliceDoubt(True, 0.02, 0.01), SliceDoubt(False, 0.0, 0.0)
    doubts = {z: sure for z in range(10, 21)} | {z: SliceDoubt(False, 0.1, 0.0) for z in range(0, 8)}
    doubts |= {8: nothing, 9: SliceDoubt(False, 0.6, 0.0), 21: SliceDoubt(True, 0.1, 0.5)}
    doubts |= {z: nothing for z in range(22, 30)}
    first, second, third = suggestions(monkeypatch, doubts, [12, 15, 18], 3)
    assert (first.z, second.z) == (9, 21) and first.score > second.score
    assert "the model draws nothing here but is unsure" in first.why and "DSC 0.50" in second.why
    assert third.z == 0  # then the farthest of the equally unsure slices; never a slice it is sure is empty
    assert all(s.z not in (8, 22) for s in (first, second, third))


def test_several_suggestions_spread_out_and_stop_when_nothing_is_left(monkeypatch):
    doubts = {z: SliceDoubt(True, 0.3, 0.3) for z in range(6)}
    picks = suggestions(monkeypatch, doubts, [0], 10)
    assert [p.z for p in picks][:2] == [5, 2] and sorted(p.z for p in picks) == [1, 2, 3, 4, 5]

"""The bounded undo history: only changed voxels are kept, undo restores exactly, the oldest steps go first."""

import numpy as np
import pytest

from napari_samed.interactive import History, InteractiveSession


def paint(history, labels, z, region, value, amend=False):
    """Write ``value`` into ``region`` of slice ``z`` as one history step (or amending the last); the step."""
    step = history.begin(amend)
    before = labels[z].copy()
    labels[z][region] = value
    history.record(step, z, before, labels[z])
    history.commit(step)
    return step


def square(shape, y, x, side):
    mask = np.zeros(shape, bool)
    mask[y:y + side, x:x + side] = True
    return mask


def test_a_step_keeps_the_changed_box_and_undo_restores_it():
    labels = np.zeros((3, 64, 64), np.uint16)
    labels[1, 0:4, 0:4] = 7
    original = labels.copy()
    history = History()
    step = paint(history, labels, 1, np.s_[10:20, 30:35], 2)
    history.record(step, 2, labels[2].copy(), labels[2])  # unchanged: nothing kept
    assert list(step.patches) == [1] and step.patches[1].box == (10, 20, 30, 35)
    assert history.nbytes == 10 * 5 * 2
    assert history.undo(labels) and np.array_equal(labels, original)
    assert not history.undo(labels) and history.nbytes == 0


def test_amending_a_step_grows_its_box_and_keeps_the_first_state():
    labels = np.zeros((1, 32, 32), np.uint16)
    labels[0, 0:2, 0:2] = 3
    original = labels.copy()
    history = History()
    paint(history, labels, 0, np.s_[5:8, 5:8], 1)
    step = paint(history, labels, 0, np.s_[0:10, 6:12], 1, amend=True)  # overlaps the first change
    assert len(history) == 1 and step.patches[0].box == (0, 10, 5, 12)
    assert history.undo(labels) and np.array_equal(labels, original)


def test_the_oldest_steps_are_dropped_beyond_the_limit_never_the_newest():
    labels = np.zeros((1, 100, 100), np.uint16)
    history = History(limit=2 * 100 * 2)  # two 10×10 uint16 patches
    for i in range(4):
        paint(history, labels, 0, np.s_[10 * i:10 * i + 10, :10], i + 1)
        assert history.dropped == max(0, i - 1)
    assert len(history) == 2 and history.dropped == 2 and history.nbytes == 400
    big = History(limit=10)
    step = big.begin()
    big.record(step, 0, np.zeros((5, 5), np.uint16), np.ones((5, 5), np.uint16))
    assert big.commit(step) == 0 and len(big) == 1
    with pytest.raises(ValueError, match="positive"):
        History(limit=-1)


def test_session_edits_cost_their_objects_not_their_slices():
    """20 3D edits of a 40×40 object on 30 slices of 256²: undo holds the object's boxes, and undoes them all."""
    session = InteractiveSession(np.zeros((30, 256, 256), np.int16))
    session.apply_objects({2: {z: square((256, 256), 200, 200, 20) for z in range(30)}})
    for i in range(20):
        session.apply_objects({1: {z: square((256, 256), 50 + i, 60, 40) for z in range(30)}})
    assert session.history.nbytes <= 30 * (40 * 40 * 2 + 20 * 20 * 2) + 20 * 30 * 41 * 40 * 2
    session.delete(2)
    while session.undo():
        pass
    assert not session.labels.any()


def test_a_session_over_its_undo_limit_drops_the_oldest_and_says_so():
    session = InteractiveSession(np.zeros((10, 64, 64), np.int16), undo_limit=10 * 16 * 16 * 2)
    first = session.apply_objects({1: {z: square((64, 64), 0, 0, 16) for z in range(10)}})
    second = session.apply_objects({2: {z: square((64, 64), 30, 30, 16) for z in range(10)}})
    assert (first, second) == (0, 1) and len(session.history) == 1
    assert session.undo() and not session.undo()
    assert (session.labels == 1).sum() == 10 * 16 * 16 and not (session.labels == 2).any()

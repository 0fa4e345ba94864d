"""Objects of an interactive session: edit one after another, delete, lock (headless, real LiteMedSAM)."""

import numpy as np
import pytest

from napari_samed.errors import SamedError
from napari_samed.interactive import InteractiveSession
from napari_samed.masks import deepest_point, dice, grow_box, mask_bbox
from napari_samed.methods import SlicePrompt, run_task
from napari_samed.methods.clicks import lock_negatives
from napari_samed.phantom import LESION

Z = 32


@pytest.fixture
def session(phantom, cache_dir):
    volume, labels = phantom
    session = InteractiveSession(volume.data, cache_dir=cache_dir, spacing=volume.spacing)
    session.configure()
    return session, labels[Z] > 0, labels[Z] == LESION


def test_editing_the_first_object_after_the_second_changes_only_the_first(session):
    s, organ, lesion = session
    s.apply(run_task(s.segment_slice(Z, mask_bbox(lesion))))
    assert s.new_object() == 2
    s.apply(run_task(s.segment_slice(Z, mask_bbox(organ))))
    assert dice(s.labels[Z] == 1, lesion) > 0.9 and dice(s.labels[Z] > 0, organ) > 0.9
    second = s.labels == 2

    s.select(1)
    s.apply(run_task(s.segment_slice(Z, None, [deepest_point(lesion)], [1])))
    np.testing.assert_array_equal(s.labels == 2, second)  # the other object is untouched
    assert dice(s.labels[Z] == 1, lesion) > 0.9
    assert s.objects() == {1: (Z, Z, 1), 2: (Z, Z, 1)}


def test_a_locked_object_is_never_overwritten_and_repels_the_others(session):
    s, organ, lesion = session
    s.apply(run_task(s.segment_slice(Z, mask_bbox(organ))))  # object 1: the organ, lesion included
    s.lock(1)
    with pytest.raises(SamedError, match="locked"):
        run_task(s.segment_slice(Z, mask_bbox(lesion)))
    assert s.new_object() == 2
    first = s.labels == 1
    masks = run_task(s.segment_3d([SlicePrompt(Z, 2, grow_box(mask_bbox(organ), 10, organ.shape))]))
    assert not any((m & first[z]).any() for z, m in masks.masks.items())  # the model's masks avoid it already
    s.apply(masks.masks)
    np.testing.assert_array_equal(s.labels == 1, first)

    prompt = lock_negatives(SlicePrompt(Z, 2, mask_bbox(organ)), first[Z])
    assert prompt.point_labels == [0] and first[Z][tuple(int(v) for v in prompt.points[0])]


def test_deleting_an_object_is_one_undo_step(session):
    s, organ, _ = session
    s.apply(run_task(s.segment_slice(Z, mask_bbox(organ))))
    before = s.labels.copy()
    s.lock(1)
    s.delete(1)
    assert not s.labels.any() and not s.locked and s.objects() == {1: (-1, -1, 0)}
    assert s.undo()
    np.testing.assert_array_equal(s.labels, before)


def test_a_click_next_to_a_box_is_not_ignored_by_a_box_only_model(session):
    s, organ, _ = session
    y0, x0, y1, x1 = mask_bbox(organ)
    half = (y0, x0, (y0 + y1) // 2, x1)  # the box misses the organ's lower half
    ys, xs = np.nonzero(organ[(y0 + y1) // 2 + 5:])
    below = (float(ys[len(ys) // 2] + (y0 + y1) // 2 + 5), float(xs[len(xs) // 2]))
    box_only = run_task(s.segment_slice(Z, half))[Z]
    with_click = run_task(s.segment_slice(Z, half, [below], [1]))[Z]
    assert with_click[int(below[0]), int(below[1])] and not box_only[int(below[0]), int(below[1])]
    assert dice(with_click, organ) > dice(box_only, organ) + 0.1

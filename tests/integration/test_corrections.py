"""3D objects built in steps and corrected from any slice (headless; real LiteMedSAM on the sample phantom)."""

import numpy as np
import pytest
from conftest import SHARED_DATA

from napari_samed import read_volume
from napari_samed.evaluation.simulated_user import Click, first_click, next_click
from napari_samed.interactive import InteractiveSession
from napari_samed.masks import deepest_point, dice, mask_bbox, part_boxes
from napari_samed.methods import ObjectPrompt3D, SlicePrompt, ZeroShot, group_prompts, run_task

Z = 32


def test_the_command_line_gives_an_objects_prompts_as_steps_in_order():
    [obj] = group_prompts(points=[(20, 4, 4, 1, 1), (30, 5, 5, 1, 1), (20, 6, 6, 0, 1), (20, 7, 7, 1, 1)],
                          propagate=True)
    assert [(s.z, s.points, s.point_labels) for s in obj.slices] == [
        (20, [(4, 4)], [1]), (30, [(5, 5)], [1]), (20, [(4, 4), (6, 6), (7, 7)], [1, 0, 1])]
    [obj] = group_prompts(boxes=[(3, 0, 0, 9, 9, 1)], points=[(3, 5, 5, 0, 1), (8, 2, 2, 0, 1)], propagate=True)
    assert [(s.z, s.box, s.point_labels) for s in obj.slices] == [(3, (0, 0, 9, 9), [0]), (8, None, [0])]


def test_far_apart_parts_get_a_box_each_and_near_ones_share_one():
    mask = np.zeros((60, 60), bool)
    mask[5:15, 5:15] = mask[40:50, 40:50] = True  # far apart
    mask[16:18, 5:15] = True  # near the first part: shares its box
    mask[30, 30] = True  # under a tenth of the largest part: left out
    assert sorted(part_boxes(mask)) == [(5, 5, 17, 14), (40, 40, 49, 49)]
    assert part_boxes(np.zeros((4, 4), bool)) == []


def test_the_simulated_user_clicks_the_largest_error_on_the_worst_slice():
    ref = np.zeros((3, 30, 30), bool)
    ref[1, 5:25, 5:25] = True
    assert first_click(ref) == Click(1, 14, 14)
    pred = ref.copy()
    pred[1, 5:15, 5:15] = False  # missed: 100 pixels
    pred[2, 10:15, 10:15] = True  # extra: 25 pixels on another slice
    assert next_click(pred, ref) == Click(1, 9, 9, True)
    pred[1] = ref[1]
    assert next_click(pred, ref) == Click(2, 12, 12, False)
    assert next_click(ref, ref) is None


@pytest.fixture(scope="module")
def leaky(phantom, lite, cache_dir):
    """A session whose object 1 comes from a box drawn far past the organ (it leaks into its neighbours on many
    slices), the organ, and a negative click at the leak on a propagated slice."""
    volume, labels = phantom
    organ = labels > 0
    y0, x0, y1, x1 = mask_bbox(organ[Z])
    box = SlicePrompt(Z, 1, (y0, x0, y1 + 40, x1 + 60))
    session = InteractiveSession(volume.data, cache_dir, volume.spacing)
    session.configure()
    session.apply(run_task(session.segment_3d([box], Z)))
    z = Z + 8
    leak = (session.labels[z] == 1) & ~organ[z]
    assert leak.sum() > 1000
    return session, organ, box, SlicePrompt(z, 1, None, [deepest_point(leak)], [0])


def test_a_correction_in_the_session_equals_the_command_line_steps(leaky):
    session, _, box, negative = leaky
    before = session.labels.copy()
    session.apply(run_task(session.segment_3d([box, negative], negative.z)))
    stepwise = session.labels.copy()
    assert session.undo()
    np.testing.assert_array_equal(session.labels, before)
    emb = session.embeddings
    labels = run_task(ZeroShot(emb.backbone).segment(emb, [ObjectPrompt3D(1, [box, negative])]))
    np.testing.assert_array_equal(labels, stepwise)


def test_a_positive_click_only_adds_and_a_negative_one_only_removes(leaky):
    session, organ, box, negative = leaky
    before = session.labels == 1
    session.apply(run_task(session.segment_3d([box, negative], negative.z)))
    removed = session.labels == 1
    assert not (removed & ~before).any() and (before & ~removed & ~organ).sum() > 1000
    z = negative.z
    missed = organ[z] & ~removed[z]
    positive = SlicePrompt(z, 1, None, [*negative.points, deepest_point(missed)], [0, 1])
    session.apply(run_task(session.segment_3d([box, positive], z)))
    assert not (removed & (session.labels != 1)).any()
    for _ in range(2):
        session.undo()


def test_negative_clicks_where_the_object_has_no_mask_change_nothing(leaky):
    session, organ, box, _ = leaky
    before = session.labels.copy()
    outside = SlicePrompt(2, 1, None, [(10.0, 10.0)], [0])  # far below the organ: no mask there
    result = run_task(session.segment_3d([box, outside], 2))
    session.apply(result)
    np.testing.assert_array_equal(session.labels, before)
    session.undo()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
def test_a_tight_box_on_a_small_mr_slice_finds_the_organ(lite, cache_dir):
    image = read_volume(SHARED_DATA / "totalseg_abdomen_mr" / "mr.nii.gz")
    spleen = read_volume(SHARED_DATA / "totalseg_abdomen_mr" / "labels.nii.gz").data == 1
    from napari_samed.models import VolumeEmbeddings

    emb = VolumeEmbeddings(image, lite, "mr", cache_dir)
    z = int(spleen.sum(axis=(1, 2)).argmax())
    mask = ZeroShot(lite).segment_slice(emb, SlicePrompt(z, 1, mask_bbox(spleen[z])))
    assert dice(mask, spleen[z]) > 0.8  # 0.03 before user boxes were grown by 2 pixels of the model's input

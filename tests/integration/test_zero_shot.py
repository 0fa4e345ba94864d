import numpy as np
import pytest
from scipy import ndimage

from napari_samed import SamedError
from napari_samed.masks import dice
from napari_samed.masks import mask_bbox as bbox
from napari_samed.methods import BoxPrompt3D, ObjectPrompt3D, SlicePrompt, ZeroShot, group_prompts, run_task
from napari_samed.models import VolumeEmbeddings
from napari_samed.phantom import LESION

Z = 32  # a slice through the sample organ and a lesion


@pytest.fixture(scope="module")
def sample(phantom, lite, cache_dir):
    volume, labels = phantom
    return VolumeEmbeddings(volume, lite, "ct", cache_dir), labels > 0, labels == LESION


def _segment(emb, **prompts):
    return run_task(ZeroShot(emb.backbone).segment(emb, group_prompts(**prompts)))


def _deepest(mask):
    dist = ndimage.distance_transform_edt(mask)
    return np.unravel_index(int(dist.argmax()), mask.shape), dist


def test_box_segments_the_organ(sample):
    emb, organ, _ = sample
    y0, x0, y1, x1 = bbox(organ[Z])
    labels = _segment(emb, boxes=[(Z, y0, x0, y1, x1)])
    assert dice(labels[Z] == 1, organ[Z]) >= 0.90
    assert not labels[:Z].any() and not labels[Z + 1:].any()


def test_clicks_on_a_box_only_model_become_a_box(sample):
    emb, organ, _ = sample
    (cy, cx), dist = _deepest(organ[Z])
    ys, xs = np.nonzero(dist > 0.5 * dist.max())
    far = int(np.argmax(np.hypot(ys - cy, xs - cx)))
    outside = (cy, min(bbox(organ[Z])[3] + 12, organ.shape[2] - 1))
    points = [(Z, cy, cx, 1), (Z, ys[far], xs[far], 1), (Z, *outside, 0)]
    assert dice(_segment(emb, points=points)[Z] > 0, organ[Z]) >= 0.85


def test_one_click_on_a_lesion(sample):
    emb, _, lesion = sample
    (cy, cx), _ = _deepest(lesion[Z])
    assert dice(_segment(emb, points=[(Z, cy, cx)])[Z] > 0, lesion[Z]) >= 0.80


def test_several_objects_get_their_own_labels(sample):
    emb, organ, lesion = sample
    labels = _segment(emb, boxes=[(Z, *bbox(organ[Z])), (Z, *bbox(lesion[Z]))])
    assert set(np.unique(labels[Z])) == {0, 1, 2}
    assert dice(labels[Z] == 2, lesion[Z]) >= 0.85  # the later object paints over the organ
    assert dice(labels[Z] > 0, organ[Z]) >= 0.90


@pytest.mark.slow
def test_3d_box_propagates_through_the_organ(sample):
    emb, organ, _ = sample
    zs = np.flatnonzero(organ.any(axis=(1, 2)))
    y0, x0, y1, x1 = bbox(organ.any(axis=0))
    task = ZeroShot(emb.backbone).segment(emb, [BoxPrompt3D((zs[0], y0, x0, zs[-1], y1, x1), 1)])
    steps = []
    labels = run_task(task, steps.append)
    assert dice(labels > 0, organ) >= 0.85
    assert steps[-1].done == len(steps) and steps[0].total == len(zs)


def test_group_prompts():
    objs = group_prompts(boxes=[(3, 0, 0, 9, 9), (3, 20, 20, 29, 29)], boxes3d=[(1, 0, 0, 5, 9, 9)],
                         points=[(3, 25, 25), (3, 15, 15, 0), (7, 4, 4), (7, 5, 6, 0)])
    assert [o.label for o in objs] == [1, 2, 3, 4]
    first, second, box3d, loose = objs
    assert first.points == [] and second.points == [(25, 25), (15, 15)] and second.point_labels == [1, 0]
    assert isinstance(box3d, BoxPrompt3D) and isinstance(loose, SlicePrompt)
    assert loose.z == 7 and loose.point_labels == [1, 0]


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ({"boxes": [(40, 0, 0, 5, 5)]}, "slice 40 is outside"),
        ({"boxes": [(1, 0, 0, 5, 50)]}, "outside the slice"),
        ({"boxes3d": [(0, 0, 0, 9, 5, 5)]}, "outside the volume"),
        ({"points": [(1, 2, 99)]}, "outside the volume"),
        ({"points": [(1, 2, 3, 0)]}, "only negative points"),
        ({"points": [(1, 2, 3, 2)]}, "1 \\(positive\\) or 0"),
        ({}, "no prompts"),
    ],
)
def test_bad_prompts(tiny_backbone, prompts, message):
    emb = VolumeEmbeddings(np.zeros((5, 20, 20), np.float32), tiny_backbone, "0,1", cache_dir=False)
    with pytest.raises(SamedError, match=message):
        run_task(ZeroShot(tiny_backbone).segment(emb, group_prompts(**prompts)))
    assert tiny_backbone.encoded == 0


def test_group_prompts_with_labels_and_propagation():
    objs = group_prompts(boxes=[(3, 0, 0, 9, 9, 2), (5, 1, 1, 8, 8, 2), (3, 20, 20, 29, 29)],
                         points=[(4, 5, 5, 1, 2), (4, 25, 25)])
    assert sorted((o.z, o.label) for o in objs) == [(3, 1), (3, 2), (4, 2), (4, 3), (5, 2)]
    assert next(o for o in objs if (o.z, o.label) == (4, 2)).points == [(5, 5)]
    objs = group_prompts(boxes=[(3, 0, 0, 9, 9, 2), (5, 1, 1, 8, 8, 2)], points=[(9, 4, 4)], propagate=True)
    assert [(type(o), o.label, [s.z for s in o.slices]) for o in objs] == [(ObjectPrompt3D, 2, [3, 5]),
                                                                          (ObjectPrompt3D, 1, [9])]


@pytest.mark.slow
def test_one_click_propagates_through_the_organ_and_stops_where_it_ends(sample):
    emb, organ, _ = sample
    (cy, cx), _ = _deepest(organ[Z])
    [obj] = group_prompts(points=[(Z, cy, cx)], propagate=True)
    result = run_task(ZeroShot(emb.backbone).segment_object(emb, obj))
    pred = np.zeros_like(organ)
    for z, mask in result.masks.items():
        pred[z] = mask
    assert dice(pred, organ) >= 0.85
    zs = np.flatnonzero(organ.any(axis=(1, 2)))
    assert set(result.quality) == set(result.masks) - {Z}
    assert result.stops[-1].z >= zs[0] - 2 and result.stops[1].z <= zs[-1] + 2
    assert "stopped above slice" in result.describe()
    labels = _segment(emb, points=[(Z, cy, cx)], propagate=True)  # the same through `segment`
    np.testing.assert_array_equal(labels > 0, pred)

"""ProMISe's crops follow an object beyond the clicked crop (`follow.next_crop`)."""

import numpy as np

from napari_samed.methods.promise.follow import AGREE, MIN_FACE, agrees, clicked_parts, next_crop

SIZE = 16


def test_the_next_crop_is_centred_where_the_object_leaves_the_crop_with_a_click_inside_it():
    mask = np.zeros((16, 16, 48), bool)
    mask[4:12, 5:11, 2:40] = True  # a bar along x, longer than a crop
    covered = np.zeros_like(mask)
    covered[:, :, :16] = True  # the first crop, at (0, 0, 0)
    start, click = next_crop(mask, covered, [np.zeros(3, int)], SIZE, (1, 1, 1))
    assert list(start) == [-1, -1, 15 - SIZE // 2]  # centred on the bar where it leaves: (7.5, 7.5, 15)
    z, y, x = click.astype(int)
    assert mask[z, y, x] and covered[z, y, x] and start[2] <= x < start[2] + SIZE  # found, and in the new crop
    covered[:, :, :start[2] + SIZE] = True  # once the grid beyond is covered, the last crop's face opens further
    second, _ = next_crop(mask, covered, [np.zeros(3, int), start], SIZE, (1, 1, 1))
    assert second[2] == start[2] + SIZE - 1 - SIZE // 2


def test_no_next_crop_at_the_volume_border_for_a_speck_or_inside_the_crop():
    mask = np.zeros((16, 16, 16), bool)
    mask[2:14, 2:14, 2:16] = True  # reaches the crop face at x = 15, which is the volume's border
    assert next_crop(mask, np.ones_like(mask), [np.zeros(3, int)], SIZE, (1, 1, 1)) is None
    wide = np.zeros((16, 16, 32), bool)
    wide[8, 8, 14:17] = True  # a speck through the face
    covered = np.zeros_like(wide)
    covered[:, :, :16] = True
    assert MIN_FACE > 1 and next_crop(wide, covered, [np.zeros(3, int)], SIZE, (1, 1, 1)) is None
    wide[5:8, 5:8, 10:20] = True  # 9 voxels on the face: the object goes on
    assert next_crop(wide, covered, [np.zeros(3, int)], SIZE, (1, 1, 1)) is not None


def test_the_object_is_the_parts_holding_a_click():
    mask = np.zeros((8, 8, 8), bool)
    mask[1:3, 1:3, 1:3] = mask[5:7, 5:7, 5:7] = True
    assert clicked_parts(mask, np.array([[1.6, 2.2, 1.0]])).sum() == 8  # the first part only
    assert not clicked_parts(mask, np.array([[4.0, 4.0, 4.0]])).any()


def test_a_new_crop_must_agree_where_it_overlaps():
    shared = np.zeros((4, 4, 4), bool)
    shared[:, :, :2] = True
    old = np.zeros_like(shared)
    old[1:3, 1:3, :] = True
    assert agrees(old.copy(), old, shared) and agrees(np.zeros_like(old), np.zeros_like(old), shared)
    leak = old | shared  # the new crop fills the whole overlap: DSC 2·8/(32 + 8) = 0.4
    assert not agrees(leak, old, shared) and AGREE > 0.4

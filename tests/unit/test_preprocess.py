import numpy as np
import pytest
import torch

from napari_samed import SamedError
from napari_samed.models.preprocess import CT_WINDOW, SliceTransform, resolve_window, to_model_input


def test_windows():
    ct = np.array([-1000, 0, 300], dtype=np.float32)
    assert resolve_window("auto", ct) == CT_WINDOW
    assert resolve_window("ct", ct) == CT_WINDOW
    assert resolve_window("0,255", ct) == (0.0, 255.0)
    mr = np.concatenate([np.zeros(1000), np.linspace(1, 1000, 1000)])
    lo, hi = resolve_window("auto", mr)
    assert 1 <= lo < 10 and 990 < hi <= 1000  # percentiles of the non-background voxels
    for bad in ("soft", "10,5", "1,2,3", "nan,4"):
        with pytest.raises(SamedError, match="window"):
            resolve_window(bad, ct)


def test_slice_transform_scales_boxes_and_crops_logits():
    tf = SliceTransform(height=100, width=200, size=256)
    assert tf.resized == (128, 256)
    np.testing.assert_allclose(tf.boxes_to_model([[10, 20, 50, 100]]), [[25.6, 12.8, 128.0, 64.0]])
    np.testing.assert_allclose(tf.points_to_model([[10, 20]]), [[25.6, 12.8]])
    logits = torch.full((1, 1, 256, 256), -1.0)
    logits[..., :128, :] = 1.0  # the image part; padding below stays negative
    assert (tf.logits_to_slice(logits) > 0).all()


def test_model_input_is_resized_normalised_and_zero_padded():
    slices = np.stack([np.linspace(-500, 500, 100 * 200).reshape(100, 200)] * 2)
    x = to_model_input(slices, CT_WINDOW, 256, "minmax")
    assert x.shape == (2, 3, 256, 256)
    assert x[:, :, :128].min() == 0 and x[:, :, :128].max() == pytest.approx(1.0)
    assert (x[:, :, 128:] == 0).all()

import numpy as np
import pytest

from napari_samed import SamedError
from napari_samed.evaluation import evaluate_masks, per_slice_dsc


def _cube(shift=0):
    m = np.zeros((12, 40, 40), bool)
    m[3:9, 10:30, 10 + shift:30 + shift] = True
    return m


def test_perfect_and_shifted_predictions():
    ref = _cube()
    assert evaluate_masks(ref, ref, (5, 1, 1)) == {"dsc": 1.0, "iou": 1.0, "nsd": 1.0, "assd": 0.0, "hd95": 0.0}
    r = evaluate_masks(_cube(2), ref, (5, 1, 1), tolerance=1.0)
    assert r["dsc"] == pytest.approx(0.9) and r["iou"] == pytest.approx(18 / 22)
    assert r["hd95"] == pytest.approx(2.0)
    assert 0 < r["nsd"] < 1 and 0 < r["assd"] < 2


def test_distances_follow_the_spacing():
    coarse = evaluate_masks(_cube(2), _cube(), (5, 1, 3), tolerance=1.0)
    assert coarse["hd95"] == pytest.approx(6.0)  # two voxels of 3 mm along x
    assert coarse["dsc"] == pytest.approx(0.9)


def test_empty_inputs():
    with pytest.raises(SamedError, match="reference label is empty"):
        evaluate_masks(_cube(), np.zeros_like(_cube()))
    r = evaluate_masks(np.zeros_like(_cube()), _cube())
    assert r == {"dsc": 0.0, "iou": 0.0, "nsd": 0.0, "assd": None, "hd95": None}
    with pytest.raises(SamedError, match="does not match"):
        evaluate_masks(_cube()[:5], _cube())


def test_per_slice_dsc():
    d = per_slice_dsc(_cube(2), _cube())
    assert np.isnan(d[0]) and d[5] == pytest.approx(0.9)

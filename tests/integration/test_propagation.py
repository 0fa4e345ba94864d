"""Propagation through slices and its stop: the rule on synthetic signals, and on a real tumour."""

import importlib.util
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED_DATA

from napari_samed.methods import DEFAULT_STOP, ObjectPrompt3D, StopRule, ZeroShot, run_task
from napari_samed.methods.propagation import UNTIL_EMPTY, appearance, quality
from napari_samed.models import VolumeEmbeddings

spec = importlib.util.spec_from_file_location("realdata", ROOT / "benchmarks" / "realdata.py")
realdata = sys.modules["realdata"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(realdata)


def test_quality_signals_and_the_stop_rule():
    first = np.zeros((40, 40), bool)
    first[10:20, 10:20] = True
    logits = np.full((40, 40), -5.0)
    logits[10:30, 10:20] = 5.0  # twice the area, centroid moved by 5 pixels
    embedding = torch.zeros(256, 64, 64)
    embedding[0] = 1.0
    look = appearance(embedding, logits > 0)
    q = quality(logits, 0.9, first, first, look, look, -look)
    assert q.area == 200 and q.size == 2.0 and q.stability == 1.0
    assert q.shift == pytest.approx(5 / np.sqrt(100 / np.pi))
    assert q.similarity == pytest.approx(1.0) and q.similarity_prev == pytest.approx(-1.0)
    assert UNTIL_EMPTY.failure(q) is None
    assert DEFAULT_STOP.failure(q) == "area 2.0x the prompted slice's > 1.5x"
    assert "slice before (similarity -1.00 < 0.8)" in StopRule(min_similarity_prev=0.8).failure(q)
    assert "predicted IoU 0.90" in StopRule(min_iou=0.95).failure(q)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
def test_one_click_on_a_real_tumour_stops_within_two_slices_of_its_ends(lite, cache_dir):
    entry = next(e for e in realdata.MANIFEST if e.name == "BraTS 0004 enhancing")
    case = realdata.load_structure(entry, SHARED_DATA, margin=3)
    ref = case.mask
    zs = np.flatnonzero(ref.any(axis=(1, 2)))
    largest = int(ref.sum(axis=(1, 2)).argmax())
    emb = VolumeEmbeddings(case.volume, lite, case.window, cache_dir)
    zero = ZeroShot(lite)
    obj = ObjectPrompt3D(1, [realdata.deepest_click(ref[largest], largest)])
    result = run_task(zero.segment_object(emb, obj))
    covered = [z for z, m in result.masks.items() if m.any()]
    assert zs[0] - 2 <= min(covered) and max(covered) <= zs[-1] + 2, (result.describe(), zs[[0, -1]])
    pred = np.zeros_like(ref)
    for z, m in result.masks.items():
        pred[z] = m
    # Stopped only by an empty mask, it runs on to the end of the crop and scores lower.
    unstopped = run_task(zero.segment_object(emb, obj, rule=UNTIL_EMPTY))
    assert max(unstopped.masks) == len(ref) - 1 and unstopped.stops[1].reason == "end of the range"
    loose = np.zeros_like(ref)
    for z, m in unstopped.masks.items():
        loose[z] = m
    assert realdata.dice(pred, ref) > realdata.dice(loose, ref)

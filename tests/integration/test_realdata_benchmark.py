"""benchmarks/realdata.py: its manifest matches the shared data, and one structure runs end to end."""

import importlib.util
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED_DATA

spec = importlib.util.spec_from_file_location("realdata", ROOT / "benchmarks" / "realdata.py")
realdata = sys.modules["realdata"] = importlib.util.module_from_spec(spec)  # dataclasses need it
spec.loader.exec_module(realdata)

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")


@needs_data
def test_every_manifest_entry_is_on_disk():
    for entry in realdata.MANIFEST:
        for path in (entry.image, entry.label, entry.brain):
            assert path is None or (SHARED_DATA / path).is_file(), (entry.name, path)


@needs_data
def test_load_structure_crops_to_the_extent_with_a_margin():
    entry = next(e for e in realdata.MANIFEST if e.name == "T12 vertebra")
    case = realdata.load_structure(entry, SHARED_DATA, margin=10)
    zs = np.flatnonzero(case.mask.any(axis=(1, 2)))
    assert case.z0 == 0 and zs[0] == 0  # T12 starts on the first slice: the margin is clipped
    assert len(case.mask) == zs[-1] + 11 and case.volume.shape == case.mask.shape
    assert case.window == (-160.0, 240.0)  # HU: the CT window


def test_prompts_from_a_reference():
    ref = np.zeros((5, 40, 40), bool)
    ref[1:4, 5:10, 5:10] = True  # two components on each slice, one 3D component each
    ref[1:4, 20:30, 22:35] = True
    ref[2, 38, 38] = True  # under 10 pixels: no box
    boxes = realdata.slice_boxes(ref)
    assert [(b.z, b.box) for b in boxes[:2]] == [(1, (5, 5, 9, 9)), (1, (20, 22, 29, 34))] and len(boxes) == 6
    assert sorted(b.box for b in realdata.boxes_3d(ref)) == [(1, 5, 5, 3, 9, 9), (1, 20, 22, 3, 29, 34)]
    assert realdata.spread(np.arange(3, 10)) == [4, 5, 6, 7, 8]
    longer, shorter = np.ones_like(ref), np.zeros_like(ref)
    shorter[2, 6, 6] = True
    assert realdata.extent_over(longer, ref) == [1, 1]  # one slice below and one above the reference
    assert realdata.extent_over(shorter, ref) == [-1, -1]
    assert realdata.extent_over(np.zeros_like(ref), ref) is None


@pytest.mark.slow
@needs_data
def test_one_structure_with_ground_truth_boxes(lite, cache_dir):
    entry = next(e for e in realdata.MANIFEST if "000002" in e.name)
    row = realdata.run_structure(entry, ["box"], lite, cache_dir, SHARED_DATA)
    assert row["slices"] == 7 and row["box"] >= 0.9  # LiteMedSAM's own pipeline: 0.944 (docs/benchmarks.md)


def assert_fewshot_floor(name: str, lite, cache_dir) -> None:
    """The few-shot floor (issue 27): 5 spread slices at default settings, DSC on the other slices within 0.10 of
    a ground-truth box on every slice, and the labelled slices themselves learnt."""
    entry = next(e for e in realdata.MANIFEST if e.name == name)
    row = realdata.run_structure(entry, ["box", "fewshot"], lite, cache_dir, SHARED_DATA)
    assert row["fewshot"] >= row["box"] - 0.10 and row["fewshot_shots"] >= 0.85, row


@pytest.mark.slow
@needs_data
def test_five_labelled_slices_come_near_the_box_at_defaults_on_real_ct(lite, cache_dir):
    assert_fewshot_floor("DeepLesion 000010_01_01_078-090", lite, cache_dir)  # MR: test_realdata_fewshot_mr.py

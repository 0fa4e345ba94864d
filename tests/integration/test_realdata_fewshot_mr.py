"""The few-shot floor on real MR (issue 27): a file of its own, so that the two test workers (one file each at a
time) train it beside the CT one in test_realdata_benchmark.py."""

import pytest
from test_realdata_benchmark import assert_fewshot_floor, needs_data


@pytest.mark.slow
@needs_data
def test_five_labelled_slices_come_near_the_box_at_defaults_on_real_mr(lite, cache_dir):
    assert_fewshot_floor("MR spleen", lite, cache_dir)

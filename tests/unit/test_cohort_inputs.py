"""The cases `apply` finds in its INPUTS (names only: nothing is read) and the prompts of their manifest cells."""

import re
from pathlib import Path

import pytest

from napari_samed import SamedError
from napari_samed.evaluation.cohort import NO_PROMPTS, case_prompts
from napari_samed.evaluation.cohort_inputs import Case, find_cases


def test_a_folder_gives_its_images_and_leaves_its_label_volumes_out(tmp_path):
    for name in ("case01.nii.gz", "case01_label.nii.gz", "case02.tif", "case02_labels.tif", "notes.txt"):
        (tmp_path / name).touch()
    cases = find_cases([tmp_path], tmp_path.parent / "out")
    assert [(c.name, c.output) for c in cases] == [("case01", "case01.nii.gz"), ("case02", "case02.tif")]


def test_a_manifest_gives_each_case_the_prompts_of_its_cells(tmp_path):
    (tmp_path / "plain.csv").write_text("image\ncase01.nii.gz\n")
    assert find_cases([tmp_path / "plain.csv"], tmp_path / "out")[0].prompts is None  # no prompt columns
    (tmp_path / "cases.csv").write_text('image,point,box\ncase01.nii.gz," 2,3,4 ; 5,6,7,0;",2\ncase02.nii.gz,,\n')
    one, two = find_cases([tmp_path / "cases.csv"], tmp_path / "out")
    assert one.prompts == (("2",), (), ("2,3,4", "5,6,7,0")) and two.prompts == ((), (), ())


def cells(box=(), box3d=(), point=()):
    return Case(Path("case.nii.gz"), prompts=(tuple(box), tuple(box3d), tuple(point)))


def test_the_prompts_of_a_case_are_segment_s_and_a_bad_cell_names_its_column():
    from napari_samed.methods import ZeroShot
    from napari_samed.methods.prompted import method_prompts

    shape = (6, 64, 64)
    case = cells(box=["2,10,10,40,40,3"], box3d=["0,5,5,5,30,30"], point=["2,20,20,0,3", "4,8,8"])
    flat = [(2, 10, 10, 40, 40, 3)], [(0, 5, 5, 5, 30, 30)], [(2, 20, 20, 0, 3), (4, 8, 8)]
    for propagate in (False, True):
        assert case_prompts(case, ZeroShot, propagate, shape) == method_prompts(ZeroShot, *flat, propagate, shape)
    bad = {"column box: a box is Z,Y0,X0,Y1,X1": cells(box=["2,10,10"]),
           "column box3d: a 3D box is Z0,Y0,X0,Z1,Y1,X1 (integers); got '0,5,x'": cells(box3d=["0,5,x"]),
           "column point: a point's polarity is 1 (positive) or 0 (negative); got 2": cells(point=["2,20,20,2"]),
           "column box: object labels start at 1; got 0": cells(box=["2,10,10,40,40,0"]),
           "3D box (0, 5, 5, 9, 30, 30) lies outside the volume": cells(box3d=["0,5,5,9,30,30"]),
           NO_PROMPTS: cells()}
    for message, case in bad.items():
        with pytest.raises(SamedError, match=re.escape(message)):
            case_prompts(case, ZeroShot, False, shape)
    with pytest.raises(SamedError, match=NO_PROMPTS):
        case_prompts(Case(Path("case.nii.gz")), ZeroShot, False, shape)

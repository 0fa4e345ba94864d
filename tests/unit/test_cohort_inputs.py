"""The cases `apply` finds in its INPUTS (names only: nothing is read)."""

from napari_samed.evaluation.cohort_inputs import find_cases


def test_a_folder_gives_its_images_and_leaves_its_label_volumes_out(tmp_path):
    for name in ("case01.nii.gz", "case01_label.nii.gz", "case02.tif", "case02_labels.tif", "notes.txt"):
        (tmp_path / name).touch()
    cases = find_cases([tmp_path], tmp_path.parent / "out")
    assert [(c.name, c.output) for c in cases] == [("case01", "case01.nii.gz"), ("case02", "case02.tif")]

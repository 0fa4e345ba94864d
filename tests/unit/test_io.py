import nibabel as nib
import numpy as np
import pytest
import tifffile

from napari_samed import SamedError, Volume, read_volume, write_labels
from napari_samed.io import write_volume
from napari_samed.io.volume import default_affine


def _nifti(path, data, affine):
    nib.Nifti1Image(data, affine).to_filename(str(path))
    return path


def test_nifti_view_is_radiological_whatever_the_storage_order(tmp_path):
    # A volume stored R, A, S (the common scanner order) with distinct spacings.
    view = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # (z, y, x) as the plugin should show it
    stored = view.transpose(2, 1, 0)[::-1, ::-1, :]  # x: L->R, y: P->A, z: S
    affine = np.diag([0.7, 0.8, 3.0, 1.0])
    vol = read_volume(_nifti(tmp_path / "ras.nii.gz", stored, affine))
    np.testing.assert_array_equal(vol.data, view)
    assert vol.spacing == pytest.approx((3.0, 0.8, 0.7))


def test_nifti_labels_round_trip_in_the_source_storage_order(tmp_path):
    stored = np.random.default_rng(0).integers(0, 100, (6, 5, 4)).astype(np.int16)  # P, L, I like DeepLesion
    affine = np.array([[0, -0.9, 0, 10], [-0.9, 0, 0, 20], [0, 0, -5.0, 30], [0, 0, 0, 1]])
    src = _nifti(tmp_path / "pli.nii.gz", stored, affine)
    vol = read_volume(src)
    labels = (vol.data > 50).astype(np.uint8) * 3
    out = write_labels(labels, tmp_path / "labels.nii.gz", vol)
    img = nib.load(str(out))
    assert img.shape == stored.shape
    np.testing.assert_allclose(img.affine, affine)
    np.testing.assert_array_equal(np.asarray(img.dataobj), (stored > 50) * 3)
    np.testing.assert_array_equal(read_volume(out).data, labels)


def test_tiff_round_trip_keeps_array_and_spacing(tmp_path):
    data = np.random.default_rng(1).integers(0, 4, (3, 8, 9)).astype(np.uint8)
    vol = Volume(data.astype(np.float32), spacing=(2.0, 0.5, 0.25))
    write_labels(data, tmp_path / "l.tif", vol)
    back = read_volume(tmp_path / "l.tif")
    np.testing.assert_array_equal(back.data, data)
    assert back.spacing == pytest.approx((2.0, 0.5, 0.25))


def test_volume_written_from_an_array_reads_back_identically(tmp_path):
    data = np.random.default_rng(2).normal(0, 100, (4, 6, 7)).astype(np.int16)
    vol = Volume(data, spacing=(2.5, 1.0, 1.2))
    np.testing.assert_allclose(vol.affine, default_affine((2.5, 1.0, 1.2)))
    back = read_volume(write_volume(data, tmp_path / "v.nii", vol))
    np.testing.assert_array_equal(back.data, data)
    assert back.spacing == pytest.approx((2.5, 1.0, 1.2))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((8, 9), np.float32), "must be a 3D volume"),
        (np.zeros((2, 3, 8, 9), np.float32), "must be a 3D volume"),
        (np.where(np.eye(9)[None] > 0, np.nan, 1.0).astype(np.float32), "9 NaN"),
    ],
)
def test_bad_volumes_are_refused_with_a_clear_message(tmp_path, data, message):
    path = _nifti(tmp_path / "bad.nii.gz", data, np.eye(4))
    with pytest.raises(SamedError, match=message):
        read_volume(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(SamedError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(SamedError, match="could not read"):
        read_volume(tmp_path / "junk.nii.gz")
    with pytest.raises(SamedError, match="unsupported file type"):
        read_volume(tmp_path / "scan.png")
    tifffile.imwrite(tmp_path / "2d.tif", np.zeros((5, 5), np.uint8))
    with pytest.raises(SamedError, match="3D volume"):
        read_volume(tmp_path / "2d.tif")


def test_writing_labels_of_the_wrong_shape_is_refused(tmp_path):
    vol = Volume(np.zeros((2, 3, 4)))
    with pytest.raises(SamedError, match="does not match"):
        write_labels(np.zeros((2, 3, 5)), tmp_path / "x.nii.gz", vol)
    assert not list(tmp_path.iterdir())

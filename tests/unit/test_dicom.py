"""DICOM series reading: a real CT series against pydicom directly, and synthetic series for geometry and refusals."""

import re

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import SHARED_DATA, refused
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from napari_samed import SamedError, read_volume
from napari_samed.cli.segment import output_path
from napari_samed.io import write_labels, write_volume
from napari_samed.io.readers import volume_format
from napari_samed.napari_io import get_reader, read_layers, write_labels_layer

CT_SERIES = SHARED_DATA / "dicom_ct_3slice" / "series"
needs_ct = pytest.mark.skipif(not CT_SERIES.is_dir(), reason=f"the DICOM CT series is not at {CT_SERIES}")
AXIAL = (1, 0, 0, 0, 1, 0)


def write_series(folder, stored, positions=None, orientation=AXIAL, pixel_spacing=(0.5, 0.7), rescale=(1, -1024),
                 modality="CT", description="", names=None, uid=None):
    """One file per slice of ``stored`` (slice, row, column), at ``positions`` (default 2 mm apart along z)."""
    folder.mkdir(exist_ok=True)
    uid = uid or generate_uid()
    study, frame = generate_uid(), generate_uid()
    positions = [(0.0, 0.0, 2.0 * k) for k in range(len(stored))] if positions is None else positions
    paths = []
    for k, (pixels, position) in enumerate(zip(stored, positions, strict=True)):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = uid, study, frame
        ds.Modality, ds.SeriesDescription, ds.InstanceNumber = modality, description, k + 1
        ds.ImagePositionPatient = list(position)
        ds.ImageOrientationPatient = list(orientation)
        ds.PixelSpacing = list(pixel_spacing)
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.set_pixel_data(np.ascontiguousarray(pixels), "MONOCHROME2", 16)
        paths.append(folder / (names[k] if names else f"{description or 'im'}{k:02d}.dcm"))
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def stored_values(shape=(4, 5, 6), dtype=np.int16):
    return np.arange(np.prod(shape), dtype=dtype).reshape(shape)


@needs_ct
@pytest.mark.parametrize("which", ["folder", "file"])
def test_real_ct_series_reads_in_hounsfield_units(which):
    volume = read_volume(CT_SERIES if which == "folder" else CT_SERIES / "02.dcm")
    # Independently: axial slices with identity orientation, so the (z, y, x) view is the slices by rising
    # z (inferior to superior), each as stored (rows run posterior, columns run to the patient's left).
    slices = sorted((pydicom.dcmread(p) for p in CT_SERIES.glob("*.dcm")), key=lambda ds: ds.ImagePositionPatient[2])
    hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices])
    assert volume.shape == (3, 512, 512)
    np.testing.assert_array_equal(volume.data, hu)
    assert (volume.data.min(), volume.data.max()) == (-3024, 1381)
    assert volume.spacing == pytest.approx((1.0, 0.810547, 0.810547), abs=1e-5)  # not SliceThickness (1.25)
    assert volume.meta["format"] == "dicom" and volume.meta["modality"] == "CT"


@needs_ct
def test_real_ct_series_saved_as_nifti_sits_where_dicom_puts_it(tmp_path):
    volume = read_volume(CT_SERIES)
    img = nib.load(write_volume(volume.data, tmp_path / "ct.nii.gz", volume))
    ds = pydicom.dcmread(CT_SERIES / "01.dcm")
    row_dir, col_dir = np.array(ds.ImageOrientationPatient[:3]), np.array(ds.ImageOrientationPatient[3:])
    stored = img.get_fdata()
    for r, c in [(0, 0), (100, 300), (511, 7)]:
        lps = np.array(ds.ImagePositionPatient) + c * ds.PixelSpacing[1] * row_dir + r * ds.PixelSpacing[0] * col_dir
        ras = lps * [-1, -1, 1]
        voxel = np.round(np.linalg.inv(img.affine) @ [*ras, 1])[:3].astype(int)
        assert stored[tuple(voxel)] == ds.pixel_array[r, c] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert img.header["sform_code"] == 1  # scanner coordinates


def test_view_axes_run_left_posterior_superior_whatever_the_orientation(tmp_path):
    # A coronal series: rows run to the patient's left, columns down (inferior); slices step posterior.
    stored = stored_values((3, 4, 5))
    orientation = (1, 0, 0, 0, 0, -1)
    write_series(tmp_path / "cor", stored, positions=[(10.0, 3.0 * k, 50.0) for k in range(3)],
                 orientation=orientation, pixel_spacing=(0.5, 0.7), rescale=None)
    volume = read_volume(tmp_path / "cor")
    # Where DICOM puts each stored value, in L, P, S mm.
    k, r, c = np.indices(stored.shape)
    where = {int(v): np.array([10.0 + 0.7 * ci, 3.0 * ki, 50.0 - 0.5 * ri])
             for v, ki, ri, ci in zip(stored.ravel(), k.ravel(), r.ravel(), c.ravel(), strict=True)}
    assert volume.shape == (4, 3, 5) and volume.spacing == pytest.approx((0.5, 3.0, 0.7))
    origin = where[int(volume.data[0, 0, 0])]
    for z, y, x in np.ndindex(volume.shape):
        np.testing.assert_allclose(where[int(volume.data[z, y, x])] - origin, [0.7 * x, 3.0 * y, 0.5 * z])


def test_reversed_slice_order_reads_as_the_sorted_series(tmp_path):
    stored = stored_values()
    positions = [(0.0, 0.0, 2.0 * k) for k in range(4)]
    write_series(tmp_path / "sorted", stored, positions)
    write_series(tmp_path / "reversed", stored[::-1], positions[::-1])
    sorted_, reversed_ = read_volume(tmp_path / "sorted"), read_volume(tmp_path / "reversed")
    np.testing.assert_array_equal(sorted_.data, stored - 1024)
    np.testing.assert_array_equal(reversed_.data, sorted_.data)
    np.testing.assert_allclose(reversed_.affine, sorted_.affine)
    assert sorted_.spacing == pytest.approx((2.0, 0.5, 0.7)) and sorted_.data.dtype == np.int16


def test_mr_without_rescale_keeps_its_stored_values(tmp_path):
    stored = stored_values(dtype=np.uint16) * 1000
    write_series(tmp_path / "mr", stored, rescale=None, modality="MR")
    volume = read_volume(tmp_path / "mr")
    assert volume.data.dtype == np.uint16
    np.testing.assert_array_equal(volume.data, stored)


def test_two_series_in_a_folder_are_refused_and_one_file_chooses(capsys, tmp_path):
    first = write_series(tmp_path, stored_values(), description="arterial")
    second = write_series(tmp_path, stored_values() + 7, description="venous")
    with pytest.raises(SamedError) as err:
        read_volume(tmp_path)
    message = str(err.value)
    assert "\n" not in message and "2 DICOM series" in message and "one file of the wanted series" in message
    for paths in (first, second):
        assert pydicom.dcmread(paths[0]).SeriesInstanceUID in message
    assert "'arterial'" in message and "'venous'" in message
    np.testing.assert_array_equal(read_volume(second[1]).data, stored_values() + 7 - 1024)
    segment_is_refused(capsys, tmp_path, "2 DICOM series")


@pytest.mark.parametrize("case, message", [
    ("missing slice", "uneven slice spacing.*a slice is missing"),
    ("gantry tilt", "not stacked along their normal .*gantry tilt"),
    ("same position", "lie at the same position"),
    ("mixed sizes", r"mixes slice sizes \(rows×columns: 5×6 \(4 files\), 6×5 \(1 file\)\)"),
    ("truncated", "im02.dcm: truncated or corrupt DICOM file"),
])
def test_irregular_series_are_refused(capsys, tmp_path, case, message):
    stored, positions, orientation = stored_values(), [(0.0, 0.0, 2.0 * k) for k in range(4)], AXIAL
    if case == "missing slice":
        positions[3] = (0.0, 0.0, 8.0)
    elif case == "gantry tilt":  # slices tilted 15° about x, stacked straight along z as the table moves
        orientation = (1, 0, 0, 0, np.cos(np.radians(15)), -np.sin(np.radians(15)))
    elif case == "same position":
        positions[2] = positions[1]
    paths = write_series(tmp_path, stored, positions, orientation)
    if case == "mixed sizes":
        paths += write_series(tmp_path, np.zeros((1, 6, 5), np.int16), [(0.0, 0.0, 8.0)], names=["im04.dcm"],
                              uid=pydicom.dcmread(paths[0]).SeriesInstanceUID)
    if case == "truncated":
        data = paths[2].read_bytes()
        paths[2].write_bytes(data[: len(data) - 20])
    with pytest.raises(SamedError, match=message) as err:
        read_volume(tmp_path)
    assert "\n" not in str(err.value)
    assert all(p.is_file() for p in paths)
    segment_is_refused(capsys, tmp_path, message)


def segment_is_refused(capsys, series, message):
    """``segment`` on ``series`` ends in one line that says ``message`` (a regex), exit status 2, no file written."""
    out = series / "out"
    err = refused(capsys, "segment", series, "-o", out / "labels.nii.gz", "--box", "1,1,1,3,4", "--cache",
                  series.parent / f"{series.name}-cache", message="")
    assert re.search(message, err) and not (out.exists() and any(out.iterdir()))  # its folder, checked, is empty


def test_folder_without_dicom_is_refused(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(SamedError, match="holds no DICOM files"):
        read_volume(tmp_path)
    segment_is_refused(capsys, tmp_path, "holds no DICOM files|no such file")
    with pytest.raises(SamedError, match="no such file"):
        read_volume(tmp_path / "missing.dcm")


def test_napari_reader_takes_dicom_folders_and_files_only_and_its_labels_save_as_nifti(tmp_path):
    paths = write_series(tmp_path / "ct", stored_values())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("text")
    assert get_reader(str(tmp_path / "ct")) is read_layers
    assert get_reader(str(paths[0])) is read_layers
    assert get_reader(str(tmp_path / "other")) is None
    [(data, kwargs, kind)] = read_layers(str(paths[0]))
    assert kind == "image" and kwargs["name"] == "ct" and tuple(kwargs["scale"]) == pytest.approx((2.0, 0.5, 0.7))
    labels = (data > data.mean()).astype(np.uint8)
    layer = {"scale": kwargs["scale"], "metadata": kwargs["metadata"]}  # what napari hands its writer
    [out] = write_labels_layer(str(tmp_path / "seg.nii.gz"), labels, layer)
    np.testing.assert_allclose(nib.load(out).affine, read_volume(tmp_path / "ct").affine)
    np.testing.assert_array_equal(read_volume(out).data, labels)


def test_labels_of_a_dicom_series_save_as_nifti_or_tiff_and_images_not_as_dicom(tmp_path):
    write_series(tmp_path / "ct", stored_values())
    volume = read_volume(tmp_path / "ct")
    assert volume_format(tmp_path / "ct") == "dicom"
    labels = (volume.data > volume.data.mean()).astype(np.uint8)
    for name in ("seg.nii.gz", "seg.tif"):
        np.testing.assert_array_equal(read_volume(write_labels(labels, tmp_path / name, volume)).data, labels)
    with pytest.raises(SamedError, match="writes DICOM only as segmentations"):
        write_volume(volume.data, tmp_path / "ct.dcm", volume)
    assert not (tmp_path / "ct.dcm").exists()
    assert output_path(tmp_path / "seg", tmp_path / "ct").name == "seg.nii.gz"
    assert output_path(tmp_path / "seg.tif", tmp_path / "ct").name == "seg.tif"

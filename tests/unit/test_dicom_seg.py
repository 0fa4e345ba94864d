"""DICOM SEG: the real liver SEG against its NRRD twin (pynrrd), label volumes written as SEG and read back (highdicom
and pydicom check the files), SEG placed by its own geometry, and what is refused."""

import json
import shutil

import highdicom as hd
import nrrd
import numpy as np
import pydicom
import pytest
from conftest import SHARED_DATA, refused, run
from pydicom.sr.codedict import codes
from pydicom.uid import SegmentationStorage
from test_dicom import AXIAL, stored_values, write_series

from napari_samed import SamedError, SamedWarning, Volume, read_volume
from napari_samed.cli.segment import output_path
from napari_samed.io import read_labels, write_labels, write_volume
from napari_samed.io.readers import LABELS_MARK, volume_format, written_by
from napari_samed.napari_io import METHOD_KEY, get_reader, read_layers, write_labels_layer

CT_DIR = SHARED_DATA / "dicom_ct_3slice"
CT_SERIES, LIVER_SEG = CT_DIR / "series", CT_DIR / "liver.dcm"
needs_ct = pytest.mark.skipif(not (CT_SERIES.is_dir() and LIVER_SEG.is_file()),
                              reason=f"the DICOM CT series and its SEG are not in {CT_DIR}")
CORONAL = (1, 0, 0, 0, 0, -1)


def nrrd_view(path):
    """A NRRD label volume in the (z, y, x) view, read with pynrrd, with its spacing and origin (L, P, S mm).

    Its axes must run along +L, +P, +S (checked): the view, slices from inferior to superior with rows running
    posterior and columns to the patient's left, is then its axes reversed.
    """
    data, header = nrrd.read(str(path))
    directions = np.asarray(header["space directions"], dtype=float)
    assert header["space"] == "left-posterior-superior"
    assert np.allclose(directions, np.diag(np.diag(directions))) and (np.diag(directions) > 0).all()
    return np.ascontiguousarray(data.transpose(2, 1, 0)), tuple(np.diag(directions)[::-1]), header["space origin"]


def coronal_series(folder, slices=3):
    """A coronal CT series (view shape (8, slices, 10)): rows run down, slices step 3 mm posterior."""
    write_series(folder, stored_values((slices, 8, 10)), positions=[(10.0, 3.0 * k, 50.0) for k in range(slices)],
                 orientation=CORONAL)
    return read_volume(folder)


def blobs(shape, values, seed=0):
    """Labels ``values`` in boxes of a (z, y, x) volume of ``shape``, each somewhere else."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    for value in values:
        z0, y0, x0 = (rng.integers(0, max(1, s - 2)) for s in shape)
        labels[z0:z0 + 3, y0:y0 + 2, x0:x0 + 4] = value
    return labels


def seg_dataset(path):
    """The SEG at ``path``, checked to be one with highdicom and pydicom."""
    assert isinstance(hd.seg.segread(path), hd.seg.Segmentation)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == SegmentationStorage and ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    return ds


@needs_ct
def test_real_seg_reads_as_its_nrrd_mask_on_the_series_grid(tmp_path):
    expected, spacing, origin = nrrd_view(CT_DIR / "liver_seg.nrrd")
    ct = read_volume(CT_SERIES)
    seg = read_labels(LIVER_SEG)  # the series is in its subfolder
    assert seg.shape == ct.shape == expected.shape and expected.any()
    np.testing.assert_array_equal(seg.data, expected)
    assert seg.spacing == pytest.approx(ct.spacing) and seg.spacing == pytest.approx(spacing, abs=1e-5)
    np.testing.assert_allclose(seg.affine, ct.affine, atol=1e-4)
    lowest = min((pydicom.dcmread(p).ImagePositionPatient for p in CT_SERIES.glob("*.dcm")), key=lambda p: p[2])
    np.testing.assert_allclose(origin, [float(v) for v in lowest], atol=1e-4)
    assert seg.meta["segments"] == {1: "Liver"} and seg.meta["series"] == ct.meta["series"]
    assert seg.meta["sources"] == ct.meta["sources"]
    # Alone, its frames (one per slice of the series) are enough to place it.
    alone = read_labels(shutil.copy(LIVER_SEG, tmp_path / "liver.dcm"))
    np.testing.assert_array_equal(alone.data, expected)
    np.testing.assert_allclose(alone.affine, ct.affine, atol=1e-4)
    assert alone.meta["sources"] == ()


@needs_ct
def test_folder_with_the_series_and_its_seg_reads_as_the_series_and_the_seg_as_labels(tmp_path):
    for path in CT_SERIES.glob("*.dcm"):
        shutil.copy(path, tmp_path)
    seg = shutil.copy(LIVER_SEG, tmp_path / "liver.dcm")
    assert volume_format(seg) == "seg" and volume_format(tmp_path / "01.dcm") == "dicom"
    ct = read_volume(tmp_path)
    np.testing.assert_array_equal(ct.data, read_volume(CT_SERIES).data)
    assert ct.meta["format"] == "dicom" and len(ct.meta["sources"]) == 3
    np.testing.assert_array_equal(read_volume(tmp_path / "02.dcm").data, ct.data)
    assert get_reader(str(seg)) is read_layers
    [(data, kwargs, kind)] = read_layers(str(seg))
    assert kind == "labels" and kwargs["name"] == "liver" and tuple(kwargs["scale"]) == pytest.approx(ct.spacing)
    np.testing.assert_array_equal(data, nrrd_view(CT_DIR / "liver_seg.nrrd")[0])


@needs_ct
def test_labels_of_the_real_series_round_trip_as_dicom_seg(tmp_path):
    ct = read_volume(CT_SERIES)
    labels = nrrd_view(CT_DIR / "liver_spine_seg.nrrd")[0]  # liver 1, spine 2
    assert set(np.unique(labels)) == {0, 1, 2}
    out = write_labels(labels, tmp_path / "out" / "seg.dcm", ct, method="zero-shot lite-medsam")
    back = read_labels(out)
    np.testing.assert_array_equal(back.data, labels)
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-4)
    assert back.spacing == pytest.approx(ct.spacing) and back.meta["segments"] == {1: "label 1", 2: "label 2"}
    assert written_by(out) == LABELS_MARK and written_by(LIVER_SEG) is None

    ds = seg_dataset(out)
    [series] = ds.ReferencedSeriesSequence
    sources = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in CT_SERIES.glob("*.dcm")}
    assert series.SeriesInstanceUID == ct.meta["series"] != ds.SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in series.ReferencedInstanceSequence} == set(sources)
    assert ds.StudyInstanceUID == next(iter(sources.values())).StudyInstanceUID
    seg = hd.seg.segread(out)
    for number in (1, 2):
        description = seg.get_segment_description(number)
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        assert description.algorithm_identification[0].AlgorithmName == "napari-samed zero-shot lite-medsam"
    # Each frame refers to the slice it lies on (axial with identity orientation: the view is the stored order).
    by_position = sorted(sources, key=lambda uid: float(sources[uid].ImagePositionPatient[2]))
    np.testing.assert_array_equal(
        seg.get_pixels_by_source_instance(by_position, combine_segments=True), labels)

    # A SEG read with its series beside it writes back under its own segment names.
    liver = read_labels(LIVER_SEG)
    again = read_labels(write_labels(liver.data, tmp_path / "liver.dcm", liver))
    np.testing.assert_array_equal(again.data, liver.data)
    assert again.meta["segments"] == {1: "Liver"}


def test_multi_label_coronal_series_round_trips_with_its_names(tmp_path):
    ct = coronal_series(tmp_path / "ct")
    labels = blobs(ct.shape, (1, 2, 3))
    assert ct.shape == (8, 3, 10) and set(np.unique(labels)) == {0, 1, 2, 3}
    named = Volume(ct.data, ct.spacing, ct.affine, {**ct.meta, "segments": {1: "liver", 3: "tumour"}})
    out = write_labels(labels, tmp_path / "seg.dcm", named, method="fewshot")
    back = read_labels(out)
    np.testing.assert_array_equal(back.data, labels)
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-4)
    assert back.meta["segments"] == {1: "liver", 2: "label 2", 3: "tumour"}
    ds = seg_dataset(out)
    assert ds.NumberOfFrames == 3 * 3  # every slice of every segment, empty ones too: it places itself
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.meta["series"]
    assert [str(s.SegmentAlgorithmName) for s in ds.SegmentSequence] == ["napari-samed fewshot"] * 3


def test_label_values_with_gaps_become_consecutive_segments_named_by_value(tmp_path):
    ct = coronal_series(tmp_path / "ct")
    labels = blobs(ct.shape, (5, 2), seed=1)
    with pytest.warns(SamedWarning, match="label values 2, 5 are written as DICOM segments 1 to 2"):
        out = write_labels(labels, tmp_path / "seg.dcm", ct)
    back = read_labels(out)
    np.testing.assert_array_equal(back.data, np.select([labels == 2, labels == 5], [1, 2], 0))
    assert back.meta["segments"] == {1: "label 2", 2: "label 5"}


def highdicom_seg(sources, mask, path):
    """A SEG made by highdicom alone from ``sources`` (file order) and ``mask[i]`` on ``sources[i]``, its empty
    frames left out, as most tools write them."""
    datasets = [pydicom.dcmread(p) for p in sources]
    for ds in datasets:
        ds.PatientID = ds.PatientName = ds.PatientBirthDate = ds.PatientSex = ""
        ds.AccessionNumber = ds.StudyID = ds.StudyDate = ds.StudyTime = ""
        ds.SliceThickness = 2.0
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="lesion", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    hd.seg.Segmentation(
        source_images=datasets, pixel_array=mask, segmentation_type="BINARY", segment_descriptions=[description],
        series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="tests", manufacturer_model_name="tests", software_versions="1", device_serial_number="1",
    ).save_as(path)
    return path


def test_seg_of_a_few_slices_is_placed_by_its_geometry_on_the_series_beside_it(tmp_path):
    files = write_series(tmp_path / "ct", stored_values((4, 5, 6)), positions=[(0.0, 0.0, 2.0 * k) for k in
                                                                             (2, 0, 3, 1)])
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[0, 1:3, 2:5] = 1  # on the file at z = 4 mm: the third slice up
    (tmp_path / "seg").mkdir()
    seg = highdicom_seg(files, mask, tmp_path / "seg" / "lesion.dcm")
    assert pydicom.dcmread(seg).NumberOfFrames == 1
    ct = read_volume(tmp_path / "ct")
    labels = read_labels(seg)  # the series is in the folder beside it
    assert labels.shape == ct.shape == (4, 5, 6) and labels.meta["segments"] == {1: "lesion"}
    np.testing.assert_array_equal(np.flatnonzero(labels.data.any(axis=(1, 2))), [2])
    np.testing.assert_array_equal(labels.data[2], mask[0])  # axial, identity orientation: slices as stored
    np.testing.assert_allclose(labels.affine, ct.affine, atol=1e-4)

    alone = tmp_path / "far" / "alone"  # no series in it, under it or beside it
    alone.mkdir(parents=True)
    with pytest.raises(SamedError, match="span 1 of the 4 slices of the series it segments") as err:
        read_labels(shutil.copy(seg, alone / "lesion.dcm"))
    assert "\n" not in str(err.value)

    # The same series UID beside it, shifted by half a pixel: its frames are off that grid.
    uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    shutil.rmtree(tmp_path / "ct")
    write_series(tmp_path / "ct", stored_values((4, 5, 6)), positions=[(0.35, 0.0, 2.0 * k) for k in range(4)],
                 uid=uid)
    with pytest.raises(SamedError, match="do not lie on the grid of the series it segments.*does not resample"):
        read_labels(seg)
    # Its two lowest slices only: the segmented slice is not among them.
    shutil.rmtree(tmp_path / "ct")
    write_series(tmp_path / "ct", stored_values((2, 5, 6)), uid=uid)
    with pytest.raises(SamedError, match="some of its segmented pixels lie beyond the grid of the series"):
        read_labels(seg)


def test_evaluate_against_a_seg_reference(capsys, tmp_path):
    ct = coronal_series(tmp_path / "ct")
    labels = blobs(ct.shape, (1,), seed=2)
    reference = write_labels(labels, tmp_path / "reference.dcm", ct)
    pred = write_labels(labels, tmp_path / "pred.nii.gz", ct)
    code, out, _ = run(capsys, "evaluate", pred, reference)
    assert code == 0 and json.loads(out)["dsc"] == pytest.approx(1.0)
    # A prediction on another series (four slices) than the one the SEG references: their grids differ.
    other = coronal_series(tmp_path / "other", slices=4)
    other_pred = write_labels(blobs(other.shape, (1,)), tmp_path / "other.nii.gz", other)
    refused(capsys, "evaluate", other_pred, reference, message="(8, 4, 10) and GT")


def test_seg_needs_a_dicom_series_and_labels_and_nothing_is_written_otherwise(tmp_path):
    image = Volume(stored_values((4, 5, 6)), spacing=(2.0, 0.5, 0.7))
    labels = (image.data > 50).astype(np.uint8)
    for like in (image, read_volume(write_volume(image.data, tmp_path / "ct.nii.gz", image)),
                 read_volume(write_volume(image.data, tmp_path / "ct.tif", image))):
        with pytest.raises(SamedError, match="a DICOM SEG references the DICOM series its labels were made on"):
            write_labels(labels, tmp_path / "seg.dcm", like)
    ct = coronal_series(tmp_path / "series")
    with pytest.raises(SamedError, match="the label volume is empty; a DICOM SEG needs at least one segment"):
        write_labels(np.zeros(ct.shape, np.uint8), tmp_path / "seg.dcm", ct)
    shutil.rmtree(tmp_path / "series")
    with pytest.raises(SamedError, match="cannot be read now.*reopen the series"):
        write_labels(blobs(ct.shape, (1,)), tmp_path / "seg.dcm", ct)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz", "ct.tif"]


def test_truncated_seg_is_refused_in_one_line(capsys, tmp_path):
    ct = coronal_series(tmp_path / "ct")
    seg = write_labels(blobs(ct.shape, (1, 2)), tmp_path / "seg.dcm", ct)
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 20])
    with pytest.raises(SamedError, match="seg.dcm: truncated or corrupt DICOM SEG") as err:
        read_labels(seg)
    assert "\n" not in str(err.value)
    pred = write_labels(blobs(ct.shape, (1,)), tmp_path / "pred.nii.gz", ct)
    refused(capsys, "evaluate", pred, seg, message="truncated or corrupt DICOM SEG")


def test_segment_refuses_a_seg_of_a_non_dicom_image_before_any_work(capsys, tmp_path):
    image = write_volume(stored_values((4, 5, 6)), tmp_path / "ct.nii.gz", Volume(stored_values((4, 5, 6))))
    refused(capsys, "segment", image, "-o", tmp_path / "seg.dcm", "--box", "1,1,1,3,4",
            message="a DICOM SEG needs a DICOM series as IMAGE")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]
    write_series(tmp_path / "series", stored_values((4, 5, 6)))
    assert output_path(tmp_path / "seg.dcm", tmp_path / "series") == tmp_path / "seg.dcm"


def test_napari_writer_saves_a_result_of_a_dicom_series_as_seg(tmp_path):
    files = write_series(tmp_path / "ct", stored_values((4, 5, 6)), orientation=AXIAL)
    [(data, kwargs, _)] = read_layers(str(files[0]))
    labels = blobs(data.shape, (1, 2), seed=3)
    layer = {"scale": kwargs["scale"], "metadata": {**kwargs["metadata"], METHOD_KEY: "zero-shot"}}
    [out] = write_labels_layer(str(tmp_path / "result.dcm"), labels, layer)
    np.testing.assert_array_equal(read_labels(out).data, labels)
    assert {str(s.SegmentAlgorithmName) for s in seg_dataset(out).SegmentSequence} == {"napari-samed zero-shot"}
    [(back, back_kwargs, kind)] = read_layers(out)
    assert kind == "labels" and tuple(back_kwargs["scale"]) == pytest.approx(kwargs["scale"])
    np.testing.assert_array_equal(back, labels)
    with pytest.raises(ValueError, match="cannot place this Labels layer .* in a DICOM SEG"):
        write_labels_layer(str(tmp_path / "drawn.dcm"), labels, {"scale": kwargs["scale"], "metadata": {}})
    assert not (tmp_path / "drawn.dcm").exists()

"""DICOM SEG (highdicom): label volumes written as binary segmentations of the DICOM series they were made on, and
segmentations read back as label volumes on the grid of the series they reference.

A SEG stores one frame per slice and segment, each placed in patient space by its own position, orientation and
pixel spacing. Reading puts the frames on the grid that `dicom.read_series` gives the referenced series (found in
the SEG's folder, a subfolder or a folder beside it), or on the SEG's own grid when its frames span every slice it
references; label value = segment number. Writing keeps every frame (empty ones too), so that a SEG napari-samed
wrote reads back without its series.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.pixels.utils import get_expected_length
from pydicom.sr.codedict import codes

from ..errors import SamedError, SamedWarning
from .atomic import atomic_path
from .dicom import LPS_TO_RAS, find_series, one_line, scanner_image, series_headers

#: Patient and study attributes highdicom copies from the source images; a series may lack them (type 2 in DICOM:
#: present, possibly empty), and they are then written empty.
_COPIED = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
           "StudyTime", "ReferringPhysicianName")
#: The (slice, row, column) grid of highdicom from the (column, row, slice) grid of `dicom.read_series`, and back.
_SWAP = [2, 1, 0, 3]


def read_seg(path: str | os.PathLike) -> tuple[nib.Nifti1Image, dict]:
    """The segmentation at ``path`` as a label image in patient space (as `dicom.read_series` makes images), and
    what it is: the referenced series' UID, its segments' labels by number and the series' files when found.

    `SamedError` for a damaged file, a fractional segmentation, or frames that cannot be placed: off the series'
    grid or beyond it, or spanning fewer slices than the series has when the series is not beside the SEG.
    """
    path = Path(path)
    seg = _open(path)
    names = {n: str(seg.get_segment_description(n).segment_label) for n in seg.segment_numbers}
    if seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL:
        raise SamedError(f"{path}: a fractional DICOM SEG (probabilities or occupancy); napari-samed reads binary "
                         f"and label-map segmentations")
    if str(seg.get("SegmentsOverlap", "")) == "YES":
        warnings.warn(SamedWarning(f"{path.name}: its segments overlap; each overlapping voxel takes the highest "
                                   f"segment number"), stacklevel=2)
    try:
        volume = seg.get_volume(combine_segments=True, skip_overlap_checks=True)
    except Exception as exc:  # highdicom: ValueError/RuntimeError for frames that make no regular volume
        raise SamedError(f"{path}: its frames do not make one regular volume ({one_line(exc)})") from exc
    referenced = _referenced(seg)
    series = next(iter(referenced), "")
    files = find_series(list(referenced), path.parent) if referenced else []
    if files:
        slices, affine = series_headers(files)
        series, sources = slices[0][1].SeriesInstanceUID, tuple(p for p, _ in slices)
        shape = (len(slices), int(slices[0][1].Rows), int(slices[0][1].Columns))
        grid = hd.VolumeGeometry((LPS_TO_RAS @ affine)[:, _SWAP], shape, "PATIENT")
        where = f"the grid of the series it segments, in {files[0].parent}"
        labelled = np.count_nonzero(volume.array)
        try:
            volume = volume.match_geometry(grid)
        except RuntimeError as exc:
            raise SamedError(f"{path}: its frames do not lie on {where} ({one_line(exc)}); napari-samed does not "
                             f"resample") from None
        if np.count_nonzero(volume.array) < labelled:
            raise SamedError(f"{path}: some of its segmented pixels lie beyond {where}")
    else:
        spanned, slices = volume.spatial_shape[0], sum(referenced.values())
        if spanned < slices:
            raise SamedError(f"{path}: its frames span {spanned} of the {slices} slices of the series it segments "
                             f"({', '.join(referenced)}), and that series is not in its folder, a subfolder or a "
                             f"folder beside it; put the series' files there to place them")
        if volume.affine[:3, 0] @ np.cross(volume.affine[:3, 2], volume.affine[:3, 1]) < 0:
            volume = volume.flip_spatial(0)  # slices along the normal, as `dicom.read_series` stacks them
        affine, sources = LPS_TO_RAS @ volume.affine[:, _SWAP], ()
    return scanner_image(volume.array.transpose(2, 1, 0), affine), {
        "series": series, "segments": names, "sources": sources, "description": str(seg.get("SeriesDescription", ""))}


def _open(path: Path) -> hd.seg.Segmentation:
    """The SEG at ``path``, its (uncompressed) pixel data checked to hold every frame."""
    try:
        seg = hd.seg.segread(path)
        found, expected = len(seg.PixelData), get_expected_length(seg, "bytes")
    except Exception as exc:  # pydicom/highdicom raise many types for damaged files
        raise SamedError(f"{path}: truncated or corrupt DICOM SEG ({one_line(exc)})") from exc
    if found < expected and not seg.file_meta.TransferSyntaxUID.is_encapsulated:
        raise SamedError(f"{path}: truncated or corrupt DICOM SEG (its pixel data holds {found} of the {expected} "
                         f"bytes of its frames)")
    return seg


def _referenced(seg: hd.seg.Segmentation) -> dict[str, int]:
    """The series the SEG references, with the number of their instances it names."""
    counts: dict[str, int] = {}
    for item in seg.get("ReferencedSeriesSequence", []):
        counts[item.SeriesInstanceUID] = counts.get(item.SeriesInstanceUID, 0) + len(
            item.get("ReferencedInstanceSequence", []))
    return counts


def write_seg(labels: np.ndarray, path: str | os.PathLike, sources: Sequence[Path], series: str,
              names: dict[int, str], method: str | None, mark: str) -> Path:
    """Write ``labels`` (slice, row, column, in the order of ``sources``: the files of series ``series``) as a
    binary DICOM SEG referencing them, atomically: one segment per label value present, named by ``names`` (else
    "label N"), made by napari-samed's ``method``, with ``mark`` as its ContentDescription (`seg_mark`).

    DICOM numbers segments 1, 2, ... without gaps: label values with gaps become consecutive segment numbers (a
    `SamedWarning` says so; their names keep the values). `SamedError` for an empty label volume or source files
    that are gone or changed; nothing is written then.
    """
    path = Path(path)
    values = np.unique(labels)
    values = values[values != 0]
    if not values.size:
        raise SamedError(f"{path}: the label volume is empty; a DICOM SEG needs at least one segment (nothing "
                         f"written)")
    if not np.array_equal(values, np.arange(1, values.size + 1)):
        warnings.warn(SamedWarning(f"{path.name}: label values {', '.join(map(str, values))} are written as DICOM "
                                   f"segments 1 to {values.size} (DICOM numbers segments without gaps)"), stacklevel=2)
    datasets = _source_headers(sources, series, labels.shape)
    number = np.zeros(int(values.max()) + 1, dtype=np.uint16)
    number[values] = np.arange(1, values.size + 1)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"napari-samed {method}" if method else "napari-samed", family=codes.cid7162.ArtificialIntelligence,
        version=version("napari-samed"), source="napari-samed")
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i, segment_label=names.get(int(value)) or f"label {value}",
        segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
        for i, value in enumerate(values, start=1)]
    try:
        with warnings.catch_warnings():
            # the source's names are copied as they are: highdicom's doubts about their format are not the user's
            warnings.filterwarnings("ignore", message=".* unlikely to represent the intended person name")
            seg = hd.seg.Segmentation(
                source_images=datasets, pixel_array=number[labels], segmentation_type="BINARY",
                segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=1,
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer="napari-samed",
                manufacturer_model_name="napari-samed", software_versions=version("napari-samed"),
                device_serial_number="0", content_description=mark, series_description="napari-samed labels",
                omit_empty_frames=False)
    except (ValueError, AttributeError) as exc:  # highdicom's checks of the sources and segments
        raise SamedError(f"{path}: cannot make a DICOM SEG of series {series} ({one_line(exc)})") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return path


def seg_mark(path: str | os.PathLike) -> str:
    """The ContentDescription of the SEG at ``path`` (where napari-samed marks the files it writes)."""
    return str(pydicom.dcmread(path, stop_before_pixels=True).get("ContentDescription", ""))


def _source_headers(sources: Sequence[Path], series: str, shape: tuple[int, ...]) -> list[pydicom.Dataset]:
    """The source files' headers, checked to be the series the labels were made on (its slices, in order, and their
    size), with what highdicom copies from them filled in where absent: empty patient and study attributes, and the
    distance between slices as the SEG's slice spacing and thickness."""
    try:
        slices, affine = series_headers(list(sources))
    except SamedError as exc:
        raise SamedError(f"the series {series} the labels were made on cannot be read now ({exc}); a DICOM SEG "
                         f"references its files: reopen the series") from None
    first = slices[0][1]
    if ([path for path, _ in slices] != list(sources) or any(ds.SeriesInstanceUID != series for _, ds in slices)
            or (len(slices), int(first.Rows), int(first.Columns)) != tuple(shape)):
        raise SamedError(f"the files of series {series} changed since it was read (in {Path(sources[0]).parent}); "
                         f"reopen the series before writing a DICOM SEG of it")
    step = float(np.linalg.norm(affine[:3, 2]))
    for _, ds in slices:
        for keyword in _COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
        for keyword in ("SliceThickness", "SpacingBetweenSlices"):
            if not ds.get(keyword):
                setattr(ds, keyword, step)
        if not ds.get("SpecificCharacterSet"):  # empty: the default repertoire, which highdicom wants unsaid
            ds.pop("SpecificCharacterSet", None)
    return [ds for _, ds in slices]

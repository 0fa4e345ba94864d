"""DICOM series, read with pydicom into an in-memory NIfTI image, as a DICOM-to-NIfTI converter would write it.

DICOM puts pixel (row r, column c) of a slice at ImagePositionPatient + c·Δc·X + r·Δr·Y in the patient's L, P, S
coordinates, where X and Y are the row and column directions of ImageOrientationPatient and (Δr, Δc) the
PixelSpacing; the slices stack along the normal X × Y. The image made here stores that grid as (c, r, slice) with
the affine turned to NIfTI's R, A, S, so `readers` shows it in the same (z, y, x) view as the converted NIfTI file
and writes label volumes as NIfTI that overlay the series. Segmentation objects (DICOM SEG, `dicom_seg`) are told
apart from images here and left out of the series; `find_series` and `series_headers` give them the grid of the
series they reference.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.misc import is_dicom
from pydicom.pixels import apply_modality_lut
from pydicom.uid import MediaStorageDirectoryStorage, SegmentationStorage

from ..errors import SamedError

DICOM_SUFFIXES = (".dcm",)
#: DICOM patient coordinates (L, P, S) to NIfTI's (R, A, S), and back: the matrix is its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SCANNER = 1  # NIfTI qform/sform code: scanner-based anatomical coordinates
#: Tolerances on the slice positions: a gap may differ from the mean gap by this fraction of it, and a position may
#: lie off the normal through the first one by this many mm plus this fraction of its distance along the normal.
_GAP_FRACTION, _DRIFT_MM, _DRIFT_FRACTION = 0.01, 0.01, 1e-3
_NEEDED = ("Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient")
#: SOP classes of segmentation objects: binary or fractional Segmentation Storage and Label Map Segmentation Storage.
SEG_CLASSES = (SegmentationStorage, "1.2.840.10008.5.1.4.1.1.66.7")


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named ``*.dcm`` or is a file that starts with the DICOM preamble."""
    path = Path(path)
    return path.name.lower().endswith(DICOM_SUFFIXES) or _has_preamble(path)


def is_dicom_seg(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file holding a segmentation object (SOP class `SEG_CLASSES`)."""
    path = Path(path)
    if not _has_preamble(path):
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # damaged: not recognisably a SEG, and the series reader says what is wrong with it
        return False
    return _is_seg(ds)


def _is_seg(ds: pydicom.Dataset) -> bool:
    return (ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")) in SEG_CLASSES


def holds_dicom(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a DICOM file (its subfolders are not searched); False for a folder it cannot list."""
    try:
        return any(_has_preamble(p) for p in Path(folder).iterdir() if not p.name.startswith("."))
    except OSError:
        return False


def _has_preamble(path: Path) -> bool:
    try:
        # 132 bytes: the preamble and "DICM"; pseudo-files (/proc) report no size, and some block when read
        return path.is_file() and path.stat().st_size >= 132 and is_dicom(path)
    except OSError:
        return False


def read_series(path: str | os.PathLike) -> tuple[nib.Nifti1Image, dict]:
    """The DICOM series at ``path`` as a NIfTI image in patient space, and what it is (series UID, modality, ...).

    ``path`` is a folder holding one series, or one file of a series (its folder's files of the same
    SeriesInstanceUID make the series). Stored values go through the modality LUT or RescaleSlope/Intercept
    (CT: Hounsfield units); whole-valued results are kept as integers. `SamedError` for anything that would not
    make one regular grid: several series, missing or duplicate slices, gantry tilt, mixed slice sizes.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    headers = _headers(folder)
    series = _image_series(headers)
    if path.is_dir():
        if not series:
            segs = [p.name for p, ds in headers.items() if _is_seg(ds)]
            raise SamedError(f"{folder} holds no DICOM images" + (
                f", only segmentations (DICOM SEG: {', '.join(segs[:3])}); open the series they segment, or a SEG "
                f"file as labels" if segs else " (subfolders are not searched; open the folder that holds the "
                                               "series' files)"))
        if len(series) > 1:
            found = "; ".join(f"{uid} ({_describe(headers[files[0]])}, {len(files)} files, e.g. {files[0].name})"
                              for uid, files in series.items())
            raise SamedError(f"{folder} holds {len(series)} DICOM series: {found}. Open one file of the wanted "
                             f"series instead of the folder")
        files = next(iter(series.values()))
    elif path not in headers:
        raise SamedError(f"{path} is not a DICOM file")
    else:
        files = series.get(headers[path].SeriesInstanceUID)
        if files is None:
            raise SamedError(f"{path} holds no image ({_describe(headers[path])})")
    return _volume_image([(f, headers[f]) for f in files])


def _headers(folder: Path) -> dict[Path, pydicom.Dataset]:
    """The DICOM files in ``folder`` (not DICOMDIR indexes) by path, read up to their pixel data."""
    headers = {}
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".") and _has_preamble(p)):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types for damaged files
            raise SamedError(f"{path}: truncated or corrupt DICOM file ({one_line(exc)})") from exc
        if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            continue
        if "SeriesInstanceUID" not in ds:
            raise SamedError(f"{path}: truncated or corrupt DICOM file (no SeriesInstanceUID)")
        headers[path] = ds
    if not headers:
        raise SamedError(f"{folder} holds no DICOM files (subfolders are not searched; open the folder that holds "
                         f"the series' files, or one of its files)")
    return headers


def _image_series(headers: dict[Path, pydicom.Dataset]) -> dict[str, list[Path]]:
    """The files of each series that holds images (not segmentations, structured reports, RT structures and other
    objects)."""
    series: dict[str, list[Path]] = {}
    for path, ds in headers.items():
        if not _is_seg(ds):
            series.setdefault(ds.SeriesInstanceUID, []).append(path)
    return {uid: files for uid, files in series.items() if any("Rows" in headers[f] for f in files)}


def find_series(uids: list[str], near: Path) -> list[Path]:
    """The image files of the first series of ``uids`` found in folder ``near``, or in a folder under it or beside
    it (not deeper) whose first DICOM image is of that series; an empty list when none is. Folders beside one at
    the filesystem's root are not searched; unreadable files are passed over."""
    beside = _subfolders(near.parent) if near.parent != near.parent.parent else []
    for folder in [near, *_subfolders(near), *(f for f in beside if f != near)]:
        found: dict[str, list[Path]] = {}
        for path in sorted(p for p in _files(folder) if _has_preamble(p)):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID", "SOPClassUID"])
            except Exception:  # damaged, or not an image: another object's file
                continue
            if _is_seg(ds):
                continue
            if folder != near and not found and ds.get("SeriesInstanceUID") not in uids:
                break  # another series' folder: its other files are not read
            found.setdefault(ds.get("SeriesInstanceUID"), []).append(path)
        for uid in uids:
            if uid in found:
                return found[uid]
    return []


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return []


def series_headers(files: list[Path]) -> tuple[list[tuple[Path, pydicom.Dataset]], np.ndarray]:
    """The files of a series with their headers, checked and sorted along the slice normal, and the NIfTI affine
    that `read_series` gives their (column, row, slice) grid; from the headers alone."""
    slices = []
    for path in files:
        try:
            slices.append((path, pydicom.dcmread(path, stop_before_pixels=True)))
        except Exception as exc:  # pydicom raises many types for damaged files
            raise SamedError(f"{path}: truncated or corrupt DICOM file ({one_line(exc)})") from exc
    return _grid(slices)


def _describe(ds: pydicom.Dataset) -> str:
    description = str(ds.get("SeriesDescription", "")).strip()
    return f"{ds.get('Modality', 'unknown modality')}" + (f" '{description}'" if description else "")


def one_line(exc: Exception) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _volume_image(slices: list[tuple[Path, pydicom.Dataset]]) -> tuple[nib.Nifti1Image, dict]:
    slices, affine = _grid(slices)
    data = np.stack([_slice_values(path) for path, _ in slices])
    if data.dtype.kind == "i" and data.min() >= np.iinfo(np.int16).min and data.max() <= np.iinfo(np.int16).max:
        data = data.astype(np.int16)
    img = scanner_image(data.transpose(2, 1, 0), affine)
    first = slices[0][1]
    return img, {"series": first.SeriesInstanceUID, "modality": str(first.get("Modality", "")),
                 "description": str(first.get("SeriesDescription", "")),
                 "sources": tuple(path for path, _ in slices)}


def scanner_image(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image of ``data`` (column, row, slice) at ``affine``, in scanner coordinates."""
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_qform(affine, code=_SCANNER)
    img.set_sform(affine, code=_SCANNER)
    return img


def _grid(slices: list[tuple[Path, pydicom.Dataset]]) -> tuple[list[tuple[Path, pydicom.Dataset]], np.ndarray]:
    """The slices, checked and sorted along their normal, and the NIfTI affine of their (column, row, slice)
    grid in R, A, S."""
    _check_slices(slices)
    first = slices[0][1]
    orientation = np.array(first.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([ds.ImagePositionPatient for _, ds in slices], dtype=float)
    order = np.argsort(positions @ normal, kind="stable")
    slices, positions = [slices[i] for i in order], positions[order]
    step = _slice_step(slices, positions, normal)
    row_spacing, col_spacing = (float(s) for s in first.PixelSpacing)
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([row_dir * col_spacing, col_dir * row_spacing, normal * step])
    lps[:3, 3] = positions[0]
    return slices, LPS_TO_RAS @ lps


def _check_slices(slices: list[tuple[Path, pydicom.Dataset]]) -> None:
    """`SamedError` unless every slice is a single grey-level frame of the same size, orientation and spacing."""
    for path, ds in slices:
        if int(ds.get("NumberOfFrames") or 1) > 1:
            raise SamedError(f"{path}: a multi-frame DICOM object ({_describe(ds)}); napari-samed reads series of "
                             f"single-frame slices (convert it to NIfTI first, e.g. with dcm2niix)")
        missing = [tag for tag in _NEEDED if tag not in ds]
        if missing:
            raise SamedError(f"{path}: no {', '.join(missing)} (a truncated file, or not a cross-sectional image)")
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            raise SamedError(f"{path}: a colour image ({ds.SamplesPerPixel} samples per pixel); expected grey levels")
    sizes = Counter((int(ds.Rows), int(ds.Columns)) for _, ds in slices)
    if len(sizes) > 1:
        found = ", ".join(f"{r}×{c} ({n} file{'s' * (n > 1)})" for (r, c), n in sizes.most_common())
        raise SamedError(f"the series in {slices[0][0].parent} mixes slice sizes (rows×columns: {found})")
    for tag in ("ImageOrientationPatient", "PixelSpacing"):
        values = np.array([ds[tag].value for _, ds in slices], dtype=float)
        odd = np.flatnonzero(np.any(~np.isclose(values, values[0], atol=1e-4), axis=1))
        if odd.size:
            raise SamedError(f"the series in {slices[0][0].parent} mixes {tag} values: {values[0].tolist()} in "
                             f"{slices[0][0].name}, {values[odd[0]].tolist()} in {slices[odd[0]][0].name}")


def _slice_step(slices: list[tuple[Path, pydicom.Dataset]], positions: np.ndarray, normal: np.ndarray) -> float:
    """The distance between slices along the normal, from their sorted positions; `SamedError` unless regular."""
    folder = slices[0][0].parent
    if len(slices) == 1:
        ds = slices[0][1]
        return abs(float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0))
    offsets = positions - positions[0]
    along = offsets @ normal
    drift = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    worst = int(np.argmax(drift - _DRIFT_FRACTION * along))
    if drift[worst] > _DRIFT_MM + _DRIFT_FRACTION * along[worst]:
        angle = np.degrees(np.arctan2(drift[worst], along[worst]))
        raise SamedError(f"the slices in {folder} are not stacked along their normal ({angle:.1f}° off, e.g. "
                         f"{slices[worst][0].name}): gantry tilt or a non-orthogonal stack, which napari-samed does "
                         f"not resample; reslice it first (e.g. dcm2niix corrects gantry tilt)")
    gaps = np.diff(along)
    if np.any(gaps < _GAP_FRACTION * np.abs(gaps).max()):
        i = int(np.argmin(gaps))
        raise SamedError(f"{slices[i][0].name} and {slices[i + 1][0].name} in {folder} lie at the same position: "
                         f"the series holds several volumes (echoes, phases or repeats); separate them first")
    step = along[-1] / (len(slices) - 1)
    if np.abs(gaps - step).max() > _GAP_FRACTION * step:
        i = int(np.argmax(np.abs(gaps - step)))
        raise SamedError(f"uneven slice spacing in {folder}: {gaps.min():.3g} to {gaps.max():.3g} mm between "
                         f"positions ({gaps[i]:.3g} mm between {slices[i][0].name} and {slices[i + 1][0].name}); "
                         f"a slice is missing")
    return float(step)


def _slice_values(path: Path) -> np.ndarray:
    """One slice's pixels through its modality LUT or rescale; whole-valued rescales give integers."""
    try:
        ds = pydicom.dcmread(path)
        values = apply_modality_lut(ds.pixel_array, ds)
    except Exception as exc:  # pydicom raises many types for damaged files and undecodable pixel data
        raise SamedError(f"{path}: truncated or corrupt DICOM file ({one_line(exc)})") from exc
    whole = all(float(ds.get(tag, 0)).is_integer() for tag in ("RescaleSlope", "RescaleIntercept"))
    return values.astype(np.int32) if values.dtype.kind == "f" and whole else values

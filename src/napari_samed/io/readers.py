"""NIfTI, TIFF, DICOM series and DICOM SEG readers, and label writers (NIfTI, TIFF, DICOM SEG).

NIfTI volumes (and DICOM series and SEG, made into NIfTI images by `dicom.read_series` and `dicom_seg.read_seg`)
are shown in the radiological display convention: reoriented by the affine to axis codes L, P, S, then the axes
reversed to (z, y, x), so each z slice has anterior at the top and the patient's right on the left. Writing undoes
both steps and reuses the source affine and header; a DICOM SEG references the source series' files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from ..errors import SamedError
from ..masks import label_dtype
from .atomic import atomic_path
from .dicom import DICOM_SUFFIXES, is_dicom_file, is_dicom_seg, read_series
from .dicom_seg import read_seg, seg_mark, write_seg
from .volume import Geometry, Volume, check_volume, label_array

NIFTI_SUFFIXES = (".nii", ".nii.gz")
TIFF_SUFFIXES = (".tif", ".tiff")
#: A label volume's file stem ends so (``case01_label.nii.gz``): the convention that pairs it with its image.
LABEL_SUFFIX = re.compile(r"_labels?$", re.IGNORECASE)
_VIEW_AXCODES = ("L", "P", "S")
#: What napari-samed writes into the files it makes (NIfTI ``descrip``, TIFF ``Software``), so that a later run
#: knows which files it may replace (`written_by`).
LABELS_MARK = "napari-samed labels"
VOLUME_MARK = "napari-samed volume"


def volume_format(path: str | os.PathLike) -> str:
    """``"nifti"`` or ``"tiff"`` from the file name, ``"seg"`` for a DICOM segmentation file, ``"dicom"`` for a
    folder or another DICOM file (or a ``.dcm`` name yet to be written); else `SamedError`."""
    name = str(path).lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(TIFF_SUFFIXES):
        return "tiff"
    if Path(path).is_dir() or is_dicom_file(path):
        return "seg" if is_dicom_seg(path) else "dicom"
    raise SamedError(f"{path}: unsupported file type; expected one of {', '.join(NIFTI_SUFFIXES + TIFF_SUFFIXES)}, "
                     f"or a DICOM series (its folder, or one of its files)")


def file_stem(path: str | os.PathLike) -> str:
    """The file name without its volume suffix (``case.nii.gz`` -> ``case``)."""
    name = Path(path).name
    suffix = next((x for x in NIFTI_SUFFIXES + TIFF_SUFFIXES + DICOM_SUFFIXES if name.lower().endswith(x)), "")
    return name[: len(name) - len(suffix)]


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a NIfTI or TIFF file, a DICOM series (its folder or one of its files; segmentations in the folder are
    passed over) or a DICOM SEG (labels on its series' grid), as a `Volume` in the (z, y, x) view."""
    path = Path(path)
    fmt = volume_format(path)
    if not (path.is_file() or fmt == "dicom" and path.is_dir()):
        raise SamedError(f"no such file: {path}")
    try:
        return {"nifti": _read_nifti, "tiff": _read_tiff, "dicom": _read_dicom, "seg": _read_seg}[fmt](path)
    except SamedError as exc:  # DICOM messages name the folder, or the file in it at fault
        named = str(path.parent if fmt == "dicom" else path)
        raise (exc if named in str(exc) else SamedError(f"{path}: {exc}")) from None
    except Exception as exc:  # nibabel/tifffile/pydicom raise many types for corrupt files
        raise SamedError(f"could not read {path} as {'DICOM SEG' if fmt == 'seg' else fmt.upper()}: {exc}") from exc


def read_labels(path: str | os.PathLike) -> Volume:
    """Read a label volume: `read_volume`, with integer, non-negative values checked (`label_array`)."""
    volume = read_volume(path)
    data = label_array(volume.data, f"the label file {Path(path).name}")
    return Volume(data, volume.spacing, volume.affine, volume.meta)


def _to_view(img: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """The orientation transform from the file's storage order to L, P, S."""
    return ornt_transform(io_orientation(img.affine), axcodes2ornt(_VIEW_AXCODES))


def _read_nifti(path: Path) -> Volume:
    return _view_volume(nib.load(str(path)), {"format": "nifti"})


def _read_dicom(path: Path) -> Volume:
    img, series = read_series(path)
    return _view_volume(img, {"format": "dicom", **series})


def _read_seg(path: Path) -> Volume:
    img, seg = read_seg(path)
    return _view_volume(img, {"format": "seg", **seg})


def _view_volume(img: nib.Nifti1Image, meta: dict) -> Volume:
    """The image in the (z, y, x) view, with its affine and header (in ``meta``) for writing labels back."""
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        check_volume(data)
    ornt = _to_view(img)
    view = apply_orientation(data, ornt).transpose(2, 1, 0)
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    spacing = zooms[ornt[:, 0].argsort()][::-1]  # spacing of the L, P, S axes, reversed to (z, y, x)
    return Volume(
        np.ascontiguousarray(view),
        spacing=tuple(spacing),
        affine=img.affine,
        meta={**meta, "header": img.header.copy()},
    )


def _read_tiff(path: Path) -> Volume:
    with tifffile.TiffFile(str(path)) as tif:
        data = tif.asarray()
        spacing = _tiff_spacing(tif)
    data = np.squeeze(data) if data.ndim > 3 else data
    return Volume(data, spacing=spacing, meta={"format": "tiff"})


def _tiff_spacing(tif: tifffile.TiffFile) -> tuple[float, float, float]:
    """(z, y, x) spacing from ImageJ metadata and the X/Y resolution tags; 1.0 where absent."""
    z = float((tif.imagej_metadata or {}).get("spacing", 1.0))
    page = tif.pages[0]
    y = x = 1.0
    for tag_name, axis in (("YResolution", "y"), ("XResolution", "x")):
        tag = page.tags.get(tag_name)
        if tag is not None:
            num, den = tag.value
            if num:
                if axis == "y":
                    y = den / num
                else:
                    x = den / num
    return (z, y, x)


def written_by(path: str | os.PathLike) -> str | None:
    """The napari-samed mark of a volume file (`LABELS_MARK`, `VOLUME_MARK`), or None for any other file."""
    try:
        fmt = volume_format(path)
        if fmt == "nifti":
            mark = nib.load(str(path)).header["descrip"].item().decode(errors="replace")
        elif fmt == "seg":
            mark = seg_mark(path)
        else:
            with tifffile.TiffFile(str(path)) as tif:
                mark = tif.pages[0].software or ""
    except Exception:  # unreadable, or not a volume file at all
        return None
    return mark if mark.startswith("napari-samed") else None


def write_labels(labels: np.ndarray, path: str | os.PathLike, like: Volume | Geometry,
                 method: str | None = None) -> Path:
    """Write a label volume in the (z, y, x) view of ``like`` to ``path`` (uint8, or uint16 past 255 labels).

    A ``.dcm`` name writes a DICOM SEG of ``like``'s DICOM series (`dicom_seg.write_seg`): its segments are named
    as in the SEG ``like`` was read from, if it was, and made by napari-samed's ``method``.
    """
    labels = np.asarray(labels)
    labels = labels.astype(label_dtype(int(labels.max(initial=0))))
    if volume_format(path) not in ("dicom", "seg"):
        return write_volume(labels, path, like, LABELS_MARK)
    if labels.shape != like.shape:
        raise SamedError(f"label volume shape {labels.shape} does not match the image shape {like.shape}")
    if not like.meta.get("sources"):
        source = {"nifti": "a NIfTI file", "tiff": "a TIFF file", "seg": "a DICOM SEG without its series beside it"}
        raise SamedError(f"{path}: a DICOM SEG references the DICOM series its labels were made on, and this image "
                         f"is {source.get(like.meta.get('format'), 'not a DICOM series')}; give a .nii.gz or .tif "
                         f"name (nothing written)")
    stored = _stored(labels, like).transpose(2, 1, 0)  # (slice, row, column), as the series' files
    return write_seg(np.ascontiguousarray(stored), path, like.meta["sources"], like.meta["series"],
                     like.meta.get("segments", {}), method, LABELS_MARK)


def write_volume(data: np.ndarray, path: str | os.PathLike, like: Volume | Geometry,
                 mark: str = VOLUME_MARK) -> Path:
    """Write an array in the (z, y, x) view of ``like`` to ``path``, in the source's geometry, marked ``mark``.

    NIfTI output reuses the source affine and header and its storage order, so it aligns voxel for voxel with
    the source file. The file is written atomically (temporary file, then rename).
    """
    path = Path(path)
    data = np.asarray(data)
    if data.shape != like.shape:
        raise SamedError(f"volume shape {data.shape} does not match the image shape {like.shape}")
    fmt = volume_format(path)
    if fmt in ("dicom", "seg"):
        raise SamedError(f"{path}: napari-samed writes DICOM only as segmentations (DICOM SEG) of label volumes; give "
                         f"a .nii.gz (keeps the geometry) or .tif name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix="".join(path.suffixes[-2:])) as tmp:
        if fmt == "nifti":
            img = _nifti_image(data, like)
            img.header["descrip"] = mark.encode()
            img.to_filename(str(tmp))
        else:
            sz, sy, sx = like.spacing
            tifffile.imwrite(str(tmp), data, imagej=True, resolution=(1 / sx, 1 / sy), software=mark,
                             metadata={"spacing": sz, "unit": "mm", "axes": "ZYX"})
    return path


def _stored(data: np.ndarray, like: Volume | Geometry) -> np.ndarray:
    """The (z, y, x) view ``data`` in the storage order of ``like``'s file (a DICOM series: column, row, slice)."""
    back = ornt_transform(axcodes2ornt(_VIEW_AXCODES), io_orientation(like.affine))
    return apply_orientation(data.transpose(2, 1, 0), back)


def _nifti_image(data: np.ndarray, like: Volume | Geometry) -> nib.Nifti1Image:
    header = like.meta["header"].copy() if "header" in like.meta else None
    img = nib.Nifti1Image(np.ascontiguousarray(_stored(data, like)), like.affine, header=header)
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1, 0)
    return img

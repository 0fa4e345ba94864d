"""Session files: saved after each change, restored when the image is opened again (real napari, LiteMedSAM)."""

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from conftest import SAMPLE, draw_box, open_with_segment, wait_idle

from napari_samed.errors import SamedError
from napari_samed.io.session import VERSION, SavedSession, load_session, save_session
from napari_samed.masks import mask_bbox as bbox
from napari_samed.phantom import LESION, make_phantom
from napari_samed.widgets.objects import LOCK

Z = 32


def test_a_session_survives_closing_napari(qtbot, make_napari_viewer, cache_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("NAPARI_SAMED_SESSIONS")  # the file goes beside the image
    path = tmp_path / "case.nii.gz"
    shutil.copy(SAMPLE, path)
    _, labels = make_phantom(0)
    viewer, widget, image = open_with_segment(make_napari_viewer, path, cache_dir, Z)
    widget.in3d.value = False
    widget.window.value = "ct"
    draw_box(widget, image, Z, bbox(labels[Z] == LESION))
    wait_idle(qtbot, widget)
    widget.new_object()
    draw_box(widget, image, Z, bbox(labels[Z] > 0))
    wait_idle(qtbot, widget)
    widget.prompt_layers(image)[0].add([[Z, 100, 100]])  # a point that waits for a result
    wait_idle(qtbot, widget)
    widget.objects.tick(1, LOCK, True)
    widget.files.autosave.flush()
    result = widget.result_layer(image).data.copy()
    points, boxes = (layer.data for layer in widget.prompt_layers(image))
    features = [layer.features.copy() for layer in widget.prompt_layers(image)]
    assert (tmp_path / "case.nii.gz.samed-session.npz").is_file() and {1, 2} <= set(np.unique(result))
    viewer.close()

    viewer, widget, image = open_with_segment(make_napari_viewer, path, cache_dir, Z)
    assert "restored" in widget.status.value
    np.testing.assert_array_equal(widget.result_layer(image).data, result)
    restored = widget.prompt_layers(image)
    np.testing.assert_array_equal(restored[0].data, points)
    np.testing.assert_array_equal(np.array(restored[1].data), np.array(boxes))
    for layer, saved in zip(restored, features, strict=True):
        assert layer.features.equals(saved)
    session = widget.sessions[image]
    assert session.locked == {1} and session.current_label == 2 and widget.window.value == "ct"
    assert not widget.in3d.value and widget.objects.labels == [1, 2]
    assert widget._settings(image)["trained"] is None and widget._settings(image)["checkpoint"] is None


def test_a_session_file_of_another_image_is_set_aside(qtbot, make_napari_viewer, cache_dir, tmp_path, errors,
                                                      monkeypatch):
    monkeypatch.delenv("NAPARI_SAMED_SESSIONS")
    path = tmp_path / "case.nii.gz"
    shutil.copy(SAMPLE, path)
    saved = tmp_path / "case.nii.gz.samed-session.npz"
    save_session(saved, SavedSession(np.ones((3, 4, 4), np.uint16)))
    _, widget, image = open_with_segment(make_napari_viewer, path, cache_dir, Z)
    assert "another image" in errors[-1] and not saved.exists()
    assert (tmp_path / "case.nii.gz.samed-session.npz.unused").is_file()  # the user's file is kept
    assert not widget.sessions[image].labels.any()


SHAPE = (3, 4, 5)
BOX = np.array([[[1, 0, 0], [1, 0, 3], [1, 3, 3], [1, 3, 0]]], float)


def _good() -> SavedSession:
    labels = np.zeros(SHAPE, np.uint16)
    labels[1, 1:3, 1:3] = 2
    return SavedSession(labels, points=np.array([[1, 2, 2], [1, -3, 9]], float),  # the second beside the image
                        point_positive=np.array([True, False]), point_label=np.array([2, 2]), boxes=BOX,
                        box_label=np.array([2]), current=2, locked=[2], hidden=[1],
                        settings={"model": "lite-medsam", "in3d": False, "checkpoint": "", "x": None})


def _rewrite(path, drop=(), **entries) -> None:
    """Replace entries of the session file at ``path`` (``meta``: an array, or what to write as JSON) and drop
    those in ``drop``."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files if key not in drop}
    if "meta" in entries and not isinstance(entries["meta"], np.ndarray):
        entries["meta"] = np.array(json.dumps(entries["meta"]))
    np.savez(path, **{**arrays, **entries})


def _meta(path, **changes) -> dict:
    """The meta of the file at ``path`` with ``changes`` (a value ``...``: the key dropped)."""
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
    return {key: value for key, value in {**meta, **changes}.items() if value is not ...}


def _header_only(path, name: str, shape: tuple, descr: str = "<u2") -> None:
    """Replace array ``name`` of the zip at ``path`` by a .npy header claiming ``shape``, without its data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path) as old:
        entries = {info.filename: old.read(info) for info in old.infolist()}
    with zipfile.ZipFile(path, "w") as new:
        for entry, data in {**entries, f"{name}.npy": header.getvalue()}.items():
            new.writestr(entry, data)


def _garbled(data: bytes) -> bytes:
    """``data`` with bytes in its middle inverted (a compressed entry's stream, its directory intact)."""
    middle = len(data) // 2
    return data[:middle] + bytes(255 - b for b in data[middle:middle + 16]) + data[middle + 16:]


def _labels(dtype, value) -> np.ndarray:
    labels = np.zeros(SHAPE, dtype)
    labels[0, 0, 0] = value
    return labels


#: Damaged files, each made from a good one: (what it damages, field its message names).
BAD = {
    "empty": (lambda p: p.write_bytes(b""), "cannot be read"),
    "not a zip": (lambda p: p.write_bytes(b"not a zip"), "cannot be read"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-200]), "cannot be read"),
    "garbled": (lambda p: p.write_bytes(_garbled(p.read_bytes())), "cannot be read"),
    "labels header of 10**15 voxels": (lambda p: _header_only(p, "labels", (10**5,) * 3), "another image"),
    "points header of 10**15 points": (lambda p: _header_only(p, "points", (10**15, 3), "<f8"), "points"),
    "meta header of 10**7 characters": (lambda p: _header_only(p, "meta", (), "<U10000000"), "meta"),
    "missing point_label": (lambda p: _rewrite(p, drop=["point_label"]), "point_label"),
    "pickled points": (lambda p: _rewrite(p, points=np.array([None, 1], object)), "points"),
    "meta not JSON": (lambda p: _rewrite(p, meta=np.array("{")), "cannot be read"),
    "meta a number": (lambda p: _rewrite(p, meta=np.array(5)), "meta"),
    "meta a list": (lambda p: _rewrite(p, meta=[1]), "meta"),
    "current text": (lambda p: _rewrite(p, meta=_meta(p, current="abc")), "current"),
    "current 0": (lambda p: _rewrite(p, meta=_meta(p, current=0)), "current"),
    "current true": (lambda p: _rewrite(p, meta=_meta(p, current=True)), "current"),
    "locked a number": (lambda p: _rewrite(p, meta=_meta(p, locked=5)), "locked"),
    "hidden text": (lambda p: _rewrite(p, meta=_meta(p, hidden=["a"])), "hidden"),
    "hidden -1": (lambda p: _rewrite(p, meta=_meta(p, hidden=[-1])), "hidden"),
    "hidden a float": (lambda p: _rewrite(p, meta=_meta(p, hidden=[1.5])), "hidden"),
    "settings a list": (lambda p: _rewrite(p, meta=_meta(p, settings=["ct"])), "settings"),
    "settings nested": (lambda p: _rewrite(p, meta=_meta(p, settings={"window": [0, 1]})), "settings"),
    "no settings": (lambda p: _rewrite(p, meta=_meta(p, settings=...)), "settings"),
    "no version": (lambda p: _rewrite(p, meta=_meta(p, version=...)), "version"),
    "version text": (lambda p: _rewrite(p, meta=_meta(p, version="1")), "version"),
    "newer version": (lambda p: _rewrite(p, meta=_meta(p, version=VERSION + 1)), "newer"),
    "labels text": (lambda p: _rewrite(p, labels=np.full(SHAPE, "a")), "labels"),
    "labels NaN": (lambda p: _rewrite(p, labels=_labels(float, np.nan)), "labels"),
    "labels negative": (lambda p: _rewrite(p, labels=_labels(np.int16, -1)), "labels"),
    "labels over uint16": (lambda p: _rewrite(p, labels=_labels(np.int32, 70_000)), "labels"),
    "labels of another shape": (lambda p: _rewrite(p, labels=np.zeros((3, 4, 4), np.uint16)), "another image"),
    "points 2 columns": (lambda p: _rewrite(p, points=np.zeros((2, 2))), "points"),
    "points NaN": (lambda p: _rewrite(p, points=np.array([[1, np.nan, 2], [1, 0, 0]])), "points"),
    "points inf": (lambda p: _rewrite(p, points=np.array([[1, np.inf, 2], [1, 0, 0]])), "points"),
    "points far away": (lambda p: _rewrite(p, points=np.array([[1, 1e300, 2], [1, 0, 0]])), "points"),
    "points text": (lambda p: _rewrite(p, points=np.array([["1", "2", "3"], ["1", "0", "0"]])), "points"),
    "point_positive 2": (lambda p: _rewrite(p, point_positive=np.array([1, 2])), "point_positive"),
    "point_positive float": (lambda p: _rewrite(p, point_positive=np.array([0.5, 1.0])), "point_positive"),
    "fewer polarities": (lambda p: _rewrite(p, point_positive=np.array([True])), "point_positive"),
    "more point labels": (lambda p: _rewrite(p, point_label=np.array([2, 2, 2])), "point_label"),
    "no box labels": (lambda p: _rewrite(p, box_label=np.zeros(0, int)), "box_label"),
    "boxes of 3 corners": (lambda p: _rewrite(p, boxes=np.zeros((1, 3, 3))), "boxes"),
    "boxes 2D corners": (lambda p: _rewrite(p, boxes=np.zeros((1, 4, 2))), "boxes"),
    "boxes NaN": (lambda p: _rewrite(p, boxes=np.where(BOX == 3, np.nan, BOX)), "boxes"),
    "point_label -3": (lambda p: _rewrite(p, point_label=np.array([-3, 2])), "point_label holds -3"),
    "point_label float": (lambda p: _rewrite(p, point_label=np.array([1.5, 2.0])), "point_label"),
    "box_label 0": (lambda p: _rewrite(p, box_label=np.array([0])), "box_label holds 0"),
    "box_label over uint16": (lambda p: _rewrite(p, box_label=np.array([70_000])), "box_label"),
}


@pytest.mark.parametrize("damage, field", BAD.values(), ids=BAD.keys())
def test_a_damaged_session_file_is_one_clear_error(tmp_path, damage, field):
    path = tmp_path / "x.samed-session.npz"
    save_session(path, _good())
    damage(path)
    with pytest.raises(SamedError) as raised:
        load_session(path, SHAPE)
    message = str(raised.value)
    assert str(path) in message and field in message and "\n" not in message


def test_a_session_file_round_trips(tmp_path):
    path, good = tmp_path / "x.samed-session.npz", _good()
    save_session(path, good)
    for saved in (load_session(path, SHAPE), _loaded_after(path, labels=good.labels.astype(np.int64),
                                                           point_positive=np.array([1, 0]))):  # tolerated types
        for name in ("labels", "points", "point_positive", "point_label", "boxes", "box_label"):
            np.testing.assert_array_equal(getattr(saved, name), getattr(good, name))
        assert saved.labels.dtype == np.uint16 and saved.point_positive.dtype == bool
        assert (saved.current, saved.locked, saved.hidden, saved.settings) == (2, [2], [1], good.settings)


def _loaded_after(path, **entries) -> SavedSession:
    _rewrite(path, **entries)
    return load_session(path, SHAPE)


def test_an_image_without_a_file_keys_its_session_by_its_voxels(tmp_path, monkeypatch):
    from napari_samed.io.session import session_path

    monkeypatch.delenv("NAPARI_SAMED_SESSIONS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    a, b = np.zeros((4, 8, 8), np.int16), np.ones((4, 8, 8), np.int16)
    assert session_path(None, "image", a) == session_path(None, "image", a.copy())
    assert session_path(None, "image", a) != session_path(None, "image", b)  # same name, another array
    assert session_path(None, "image", a).is_relative_to(tmp_path)
    assert session_path(tmp_path / "ct.nii.gz", "ct", a) == tmp_path / "ct.nii.gz.samed-session.npz"
    monkeypatch.setenv("NAPARI_SAMED_SESSIONS", str(tmp_path / "all"))  # every session in one folder
    assert session_path(tmp_path / "ct.nii.gz", "ct", a).parent == tmp_path / "all"

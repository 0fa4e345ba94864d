"""Session files: saved after each change, restored when the image is opened again (real napari, LiteMedSAM)."""

import shutil

import numpy as np
import pytest
from conftest import SAMPLE, draw_box, open_with_segment, wait_idle

from napari_samed.errors import SamedError
from napari_samed.io.session import SavedSession, load_session, save_session
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
    widget.autosave.flush()
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


def test_a_corrupt_session_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.samed-session.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(SamedError, match="cannot be read"):
        load_session(path, (3, 4, 4))


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

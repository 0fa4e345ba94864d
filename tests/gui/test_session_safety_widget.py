"""A session file beside an image, opened with the Segment widget (real napari): a damaged one gives one error, is
set aside and leaves a new session that works; a good one is restored as no undo step."""

import shutil

import numpy as np
import pytest
from conftest import SAMPLE, open_with_segment
from test_session_file import BAD

from napari_samed.io.readers import read_volume
from napari_samed.io.session import SavedSession, load_session, save_session
from napari_samed.widgets import segment

Z = 32
SHAPE = read_volume(SAMPLE).data.shape
KINDS = ["empty", "points header of 10**15 points", "current text", "settings nested", "labels text",
         "points 2 columns", "points NaN", "no box labels", "newer version"]


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The sample as an image file and where its session file goes (beside it), holding a good session."""
    monkeypatch.delenv("NAPARI_SAMED_SESSIONS")
    path = tmp_path / "case.nii.gz"
    shutil.copy(SAMPLE, path)
    labels = np.zeros(SHAPE, np.uint16)
    labels[Z, 100:120, 100:120] = 2
    saved = tmp_path / "case.nii.gz.samed-session.npz"
    save_session(saved, SavedSession(
        labels, points=[[Z, 110, 110]], point_positive=[True], point_label=[2],
        boxes=[[[Z, 95, 95], [Z, 95, 125], [Z, 125, 125], [Z, 125, 95]]], box_label=[2], current=2, locked=[2],
        settings={"window": "ct", "in3d": False, "model": "no-such-model", "checkpoint": 5}))
    return path, saved


def _set_aside_and_new(widget, image, saved, errors, says: str) -> None:
    """One error naming the file, the file renamed, and a new session that saves anew."""
    assert len(errors) == 1 and str(saved) in errors[0] and says in errors[0] and "\n" not in errors[0]
    assert not saved.exists() and saved.with_name(saved.name + ".unused").is_file()
    session, (points, boxes) = widget.sessions[image], widget.prompt_layers(image)
    assert not session.labels.any() and not widget.result_layer(image).data.any() and not len(session.history)
    assert session.current_label == 1 and not session.locked and not len(points.data) and not len(boxes.data)
    assert widget.window.value == "auto" and widget.in3d.value  # the form as it was
    widget.auto.value = False
    points.add([[Z, 50, 60]])
    widget.files.autosave.flush()
    assert load_session(saved, SHAPE).points.tolist() == [[Z, 50, 60]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_session_file_is_set_aside(qtbot, make_napari_viewer, cache_dir, files, errors, kind):
    path, saved = files
    damage, field = BAD[kind]
    damage(saved)
    _, widget, image = open_with_segment(make_napari_viewer, path, cache_dir, Z)
    _set_aside_and_new(widget, image, saved, errors, field)


def test_a_session_napari_refuses_restores_nothing(qtbot, make_napari_viewer, cache_dir, files, errors, monkeypatch):
    path, saved = files
    show, calls = segment.SegmentWidget._show, []

    def refuse_once(widget, image):  # the labels, prompts and form applied: a half-restored state to undo
        calls.append(image)
        if len(calls) == 1:
            raise ValueError("napari refuses to draw it")
        show(widget, image)

    monkeypatch.setattr(segment.SegmentWidget, "_show", refuse_once)
    _, widget, image = open_with_segment(make_napari_viewer, path, cache_dir, Z)
    _set_aside_and_new(widget, image, saved, errors, "napari refuses to draw it")


def test_a_good_session_file_is_restored_as_no_undo_step(qtbot, make_napari_viewer, cache_dir, files, errors):
    path, saved = files
    _, widget, image = open_with_segment(make_napari_viewer, path, cache_dir, Z)
    session, (points, boxes) = widget.sessions[image], widget.prompt_layers(image)
    assert not errors and "restored" in widget.status.value and saved.is_file()
    assert (widget.result_layer(image).data == 2).sum() == 400 and not len(session.history)
    assert session.current_label == 2 and session.locked == {2} and len(points.data) == len(boxes.data) == 1
    assert widget.window.value == "ct" and not widget.in3d.value
    assert widget.model.value != "no-such-model" and widget._settings(image)["checkpoint"] is None  # not offered

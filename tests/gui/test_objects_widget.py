"""The Segment widget's object list and keys, as a user meets them (real napari viewer, real LiteMedSAM)."""

import numpy as np
import pytest
from conftest import SAMPLE, draw_box, open_with_segment, wait_idle

from napari_samed.masks import dice
from napari_samed.masks import mask_bbox as bbox
from napari_samed.phantom import LESION, make_phantom
from napari_samed.widgets.objects import LOCK, SHOW

Z = 32


@pytest.fixture
def setup(make_napari_viewer, cache_dir):
    viewer, widget, image = open_with_segment(make_napari_viewer, SAMPLE, cache_dir, Z)
    widget.in3d.value = False  # single slices: fast
    _, labels = make_phantom(0)
    return viewer, widget, image, labels[Z] > 0, labels[Z] == LESION


def _box(widget, image, box):
    draw_box(widget, image, Z, box)


def _press(viewer, key):
    viewer.window._qt_viewer.canvas._key_map_handler.press_key(key)
    viewer.window._qt_viewer.canvas._key_map_handler.release_key(key)


def test_two_objects_edit_the_first_lock_and_delete(qtbot, setup):
    viewer, widget, image, organ, lesion = setup
    _box(widget, image, bbox(lesion))  # auto: segmented as object 1
    wait_idle(qtbot, widget)
    widget.new_object()
    _box(widget, image, bbox(organ))  # object 2
    wait_idle(qtbot, widget)
    result = widget.result_layer(image)
    assert dice(result.data[Z] == 1, lesion) > 0.9 and dice(result.data[Z] > 0, organ) > 0.9
    table = widget.objects
    assert table.labels == [1, 2] and table.item(0, 1).text() == f"{Z}-{Z} (1)"
    boxes = widget.prompt_layers(image)[1]
    assert boxes.features["label"].tolist() == [1, 2]  # each prompt stays its object's

    table.selectRow(0)  # edit object 1: a loose box around the lesion
    assert widget.sessions[image].current_label == 1 and result.selected_label == 1
    second = result.data == 2
    y0, x0, y1, x1 = bbox(lesion)
    boxes.selected_data = {0}
    boxes.remove_selected()
    _box(widget, image, (y0 - 3, x0 - 3, y1 + 3, x1 + 3))
    wait_idle(qtbot, widget)
    np.testing.assert_array_equal(result.data == 2, second)  # only object 1 was segmented again
    assert dice(result.data[Z] == 1, lesion) > 0.85

    table.tick(1, LOCK, True)  # lock object 1: the next prompts make object 3
    assert widget.sessions[image].locked == {1} and widget.sessions[image].current_label == 3
    first = result.data == 1
    table.selectRow(1)  # object 2 again, with a box over both
    _box(widget, image, (y0 - 20, x0 - 20, y1 + 20, x1 + 20))
    wait_idle(qtbot, widget)
    np.testing.assert_array_equal(result.data == 1, first)  # the locked object is untouched
    assert (result.data[Z] == 2).any()

    table.tick(2, SHOW, False)  # hidden: its labels and boxes are not drawn
    assert not result.colormap.map(np.array([2]))[0][3] and result.colormap.map(np.array([1]))[0][3]
    assert boxes.edge_color[list(boxes.features["label"]).index(2)][3] == 0
    table.tick(2, SHOW, True)

    table.selectRow(1)
    widget.delete_button.clicked.emit()
    assert not (result.data == 2).any() and 2 not in boxes.features["label"].tolist()
    widget.undo_button.clicked.emit()
    assert (result.data == 2).any()


def test_picking_a_label_in_the_result_layer_selects_that_object(qtbot, setup):
    _, widget, image, organ, lesion = setup
    _box(widget, image, bbox(organ))
    wait_idle(qtbot, widget)
    widget.new_object()
    result = widget.result_layer(image)
    assert result.selected_label == 2
    result.selected_label = 1  # the user picks label 1 in the layer controls
    assert widget.sessions[image].current_label == 1 and widget.objects.selectedIndexes()[0].row() == 0
    _box(widget, image, bbox(lesion))
    wait_idle(qtbot, widget)
    assert widget.prompt_layers(image)[1].features["label"].tolist() == [1, 1]
    assert set(np.unique(result.data)) == {0, 1}  # the next box became object 1, not 2


def test_keys_work_with_any_layer_selected_and_are_in_the_preferences(qtbot, setup):
    viewer, widget, image, organ, _ = setup
    _box(widget, image, bbox(organ))
    wait_idle(qtbot, widget)
    result = widget.result_layer(image)
    viewer.layers.selection.active = result  # napari's habit after a result: the keys must still work
    _press(viewer, "Shift-N")
    assert widget.sessions[image].current_label == 2
    viewer.layers.selection.active = image  # the image: the viewer's own key bindings
    _press(viewer, "Shift-U")
    assert not result.data.any()
    _press(viewer, "Shift-S")  # object 2 has no prompt on this slice: a message, no result
    wait_idle(qtbot, widget)
    assert not result.data.any()

    from napari._qt.widgets.qt_keyboard_settings import ShortcutEditor

    editor = ShortcutEditor()  # napari's preferences, Keyboard shortcuts
    qtbot.addWidget(editor)
    listed = editor.key_bindings_strs[editor.VIEWER_KEYBINDINGS]
    assert {"napari-samed:segment", "napari-samed:propagate", "napari-samed:undo"} <= set(listed)
    assert "Shift-S" in widget.segment_button.tooltip


def test_painting_in_the_result_layer_updates_the_object_list(qtbot, setup):
    _, widget, image, organ, _ = setup
    _box(widget, image, bbox(organ))
    wait_idle(qtbot, widget)
    result = widget.result_layer(image)
    result.paint((Z, 5, 5), 7)  # the user paints label 7 with napari's brush, away from the organ
    assert (result.data[Z] == 7).any()
    qtbot.waitUntil(lambda: widget.objects.labels == [1, 7])
    assert widget.objects.item(1, 1).text() == f"{Z}-{Z} (1)"

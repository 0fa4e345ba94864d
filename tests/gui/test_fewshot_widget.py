"""The Few-shot workbench end to end in napari, with the real LiteMedSAM."""

import numpy as np
import pytest
from conftest import SAMPLE
from napari.utils.theme import get_theme

from napari_samed.masks import dice
from napari_samed.phantom import make_phantom
from napari_samed.widgets.fewshot import FewShotWidget

SHOTS = [16, 24, 32, 40, 48]


def _finish(qtbot, widget, timeout=300_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


@pytest.mark.slow
def test_paint_train_cancel_suggest_retrain_segment_save_reload(make_napari_viewer, qtbot, cache_dir, tmp_path, errors):
    viewer = make_napari_viewer()
    [image] = viewer.open(str(SAMPLE), plugin="napari-samed")
    painted = viewer.add_labels(np.zeros(image.data.shape, np.uint8), name="my labels", scale=image.scale)
    widget = FewShotWidget(viewer, cache_dir=str(cache_dir))
    viewer.window.add_dock_widget(widget)
    widget.image.value, widget.labels.value = image, painted
    _, reference = make_phantom(0)
    organ = reference > 0
    for z in SHOTS:  # the user paints five slices
        painted.data[z][organ[z]] = 1
    painted.refresh()
    widget.update_found()
    assert widget.found.value.startswith("slices 16, 24, 32, 40, 48") and "labels 1" in widget.found.value

    progress = []
    widget.train()
    widget.worker.yielded.connect(lambda step: progress.append(widget.tasks.progress.value()))
    _finish(qtbot, widget)
    first = widget.method
    assert first is not None and first.stopped and not errors and not first.continued
    steps = len(widget.plot.losses)  # it stopped by itself: the curve shows every step, its checks and the stop
    assert steps == len(widget.plot.line.get_xdata()) and list(widget.plot.fit_line.get_xdata()) == \
        [s for s, _ in first.checks] and widget.plot.stop_line.get_xdata()[0] == steps
    assert widget.plot.axes.get_title() == first.stopped and "started from the pretrained decoder" in \
        widget.tasks.status.value
    assert progress == sorted(progress) and widget.tasks.progress.value() == widget.tasks.progress.maximum()

    widget.iterations.value = 500
    widget.train()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 3, timeout=60_000)
    widget.tasks.cancel()
    _finish(qtbot, widget, timeout=60_000)
    assert 3 <= len(widget.plot.losses) < 500 and widget.method is first and not errors

    widget.suggest()  # the viewer goes to the slice to label next
    _finish(qtbot, widget)
    z = viewer.dims.current_step[0]
    assert z not in SHOTS and organ[z].any() and widget.tasks.status.value.startswith(f"label slice {z} next: ")
    painted.data[z][organ[z]] = 1
    painted.refresh()
    widget.iterations.value = 20
    widget.train()  # goes on from the last model
    _finish(qtbot, widget)
    assert widget.method.continued and len(widget.plot.losses) == 20 and not errors
    assert "went on from the last model" in widget.tasks.status.value

    widget.segment_volume()
    _finish(qtbot, widget)
    result = viewer.layers["sample_ct fewshot"].data
    assert result.shape == image.data.shape and painted.data[SHOTS].any()
    assert dice(result[30] > 0, organ[30]) > 0.8  # volume accuracy is tested headless (test_fewshot.py)

    widget.save_model(str(tmp_path / "organ.ckpt"))
    widget.method = None
    widget.load_model(str(tmp_path / "organ.ckpt"))
    _finish(qtbot, widget)
    widget.segment_volume()
    _finish(qtbot, widget)
    np.testing.assert_array_equal(viewer.layers["sample_ct fewshot"].data, result)
    assert not errors


def test_a_slice_marked_empty_is_labelled_with_nothing_until_painted(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((6, 8, 8), np.float32), name="ct")
    painted = viewer.add_labels(np.zeros((6, 8, 8), np.uint8), name="my labels")
    widget = FewShotWidget(viewer)
    widget.image.value, widget.labels.value = image, painted
    painted.data[1, 2:4, 2:4] = 1
    viewer.dims.set_current_step(0, 4)
    widget.mark_empty()
    assert widget.labelled_slices() == [1, 4] and widget.found.value.endswith("empty 4")
    annotations = widget.annotations()
    assert list(annotations) == [1, 4] and not annotations[4].any() and annotations[1].sum() == 4
    viewer.dims.set_current_step(0, 1)
    widget.mark_empty()  # a painted slice is not marked
    assert "erase them" in widget.tasks.status.value and widget.empty_slices() == [4]
    painted.data[4, 0, 0] = 1  # painting a marked slice: its labels count, the mark no longer does
    assert widget.empty_slices() == [] and widget.labelled_slices() == [1, 4]
    painted.data[4, 0, 0] = 0
    viewer.dims.set_current_step(0, 4)
    widget.mark_empty()  # pressed again: taken back
    assert widget.labelled_slices() == [1] and widget.tasks.status.value == "slice 4 no longer marked empty"


def test_bad_input_is_reported(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    widget = FewShotWidget(viewer)
    widget.train()
    assert "choose an image layer" in errors[-1]
    image = viewer.add_image(np.zeros((4, 16, 16)), name="ct")
    widget.image.value = image
    widget.train()
    assert "choose the Labels layer" in errors[-1]
    widget.labels.value = viewer.add_labels(np.zeros((4, 16, 16), np.uint8), name="empty")
    widget.train()
    assert "nothing painted in 'empty'" in errors[-1]
    widget.labels.value = viewer.add_labels(np.ones((3, 16, 16), np.uint8), name="short")
    widget.train()
    assert "does not match the image" in errors[-1]
    widget.segment_volume()
    assert "no few-shot model" in errors[-1]
    widget.save_model("x.ckpt")
    assert "no trained model to save" in errors[-1]
    assert widget.worker is None


def test_the_embeddings_go_with_their_image(make_napari_viewer, qtbot, cache_dir, errors):
    volume, reference = make_phantom(3, shape=(8, 32, 32), spacing=(4.0, 4.0, 4.0))
    viewer = make_napari_viewer()
    image = viewer.add_image(volume.data, scale=volume.spacing, name="small")
    painted = np.zeros(reference.shape, np.uint8)
    painted[4] = reference[4] > 0
    widget = FewShotWidget(viewer, cache_dir=str(cache_dir))
    widget.image.value = image
    widget.labels.value = viewer.add_labels(painted, name="my labels", scale=volume.spacing)
    widget.iterations.value = 1
    widget.train()
    _finish(qtbot, widget)
    assert image in widget.embeddings and widget.method is not None and not errors
    viewer.layers.remove(image)
    assert not widget.embeddings and widget.method is not None  # the trained model stays


def test_a_training_set_trains_on_the_labelled_slices_of_several_images(make_napari_viewer, qtbot, cache_dir, errors):
    viewer = make_napari_viewer()
    widget = FewShotWidget(viewer, cache_dir=str(cache_dir))
    widget.iterations.value = 2
    layers = []
    for seed, slices in ((3, [2, 5]), (4, [4])):
        volume, reference = make_phantom(seed, shape=(8, 32, 32), spacing=(4.0, 4.0, 4.0))
        painted = np.zeros(reference.shape, np.uint8)
        painted[slices] = reference[slices] > 0
        layers.append((viewer.add_image(volume.data, scale=volume.spacing, name=f"scan {seed}"),
                       viewer.add_labels(painted, name=f"labels {seed}", scale=volume.spacing)))
    (first, first_labels), (second, second_labels) = layers
    widget.image.value = first
    widget.labels.value = viewer.add_labels(np.zeros((8, 32, 32), np.uint8), name="unpainted")
    widget.add_to_set()
    assert "nothing painted in 'unpainted'" in errors[-1] and not widget.training_set
    widget.labels.value = first_labels
    widget.add_to_set()
    assert widget.set_label.value == "set: scan 3 (2 slices)"
    widget.image.value, widget.labels.value = second, second_labels
    widget.train()
    _finish(qtbot, widget)
    method = widget.method
    assert sorted(method.sources.values()) == [[2, 5], [4]] and widget.tasks.status.value.startswith(
        "trained on 2 images") and {first, second} <= set(widget.embeddings) and len(errors) == 1
    viewer.layers.remove(first_labels)  # a removed layer leaves the set
    assert not widget.training_set and widget.set_label.value == ""


def test_save_without_a_model_says_so_before_any_file_dialog(make_napari_viewer, monkeypatch, errors):
    from napari_samed.widgets import fewshot

    def dialog(*_args):
        raise AssertionError("a file dialog opened")

    monkeypatch.setattr(fewshot.QFileDialog, "getSaveFileName", dialog)
    widget = FewShotWidget(make_napari_viewer())
    widget.save_button.clicked.emit()
    assert errors == ["no trained model to save: train one first"]


def test_plots_follow_the_theme(make_napari_viewer):
    from matplotlib.colors import to_hex

    viewer = make_napari_viewer()
    plot = FewShotWidget(viewer).plot
    for theme in ("dark", "light"):
        viewer.theme = theme
        assert to_hex(plot.figure.get_facecolor()) == get_theme(theme).background.as_hex()


def test_only_the_chosen_labels_layer_is_watched(make_napari_viewer, qtbot):
    """Painting counts the painted slices a while after the stroke; a layer no longer chosen is not listened to."""
    viewer = make_napari_viewer()
    widget = FewShotWidget(viewer)
    first = viewer.add_labels(np.zeros((4, 16, 16), np.uint8), name="first")
    second = viewer.add_labels(np.zeros((4, 16, 16), np.uint8), name="second")
    widget.labels.value = first
    first.data = np.pad(np.ones((1, 4, 4), np.uint8), ((2, 1), (6, 6), (6, 6)))  # a data event
    assert widget._recount.isActive()
    qtbot.waitUntil(lambda: widget.found.value.startswith("slices 2"), timeout=2_000)
    widget.labels.value = second
    assert widget.found.value == "no labelled slices"
    first.data = np.ones((4, 16, 16), np.uint8)
    assert not widget._recount.isActive() and widget.found.value == "no labelled slices"

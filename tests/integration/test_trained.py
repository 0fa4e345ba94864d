"""Trained models through `open_trained`: one way to open them, and the images they see are windowed as in their
training wherever they run (CLI, benchmark, Compare widget, Segment widget's session), whatever window the user
picked."""

import csv

import numpy as np
import pytest

from napari_samed import SamedWarning, Volume, read_volume, write_labels
from napari_samed.cli import main
from napari_samed.errors import SamedError
from napari_samed.interactive import InteractiveSession
from napari_samed.io import write_volume
from napari_samed.masks import dice
from napari_samed.methods import CoTrain, FewShot, Promise, open_trained, run_task, trained_class
from napari_samed.models import VolumeEmbeddings
from napari_samed.training import Structure
from napari_samed.widgets.compare import CompareWidget


@pytest.fixture(scope="module")
def slab(phantom):
    volume, labels = phantom
    return Volume(volume.data[28:34], spacing=volume.spacing), labels[28:34]


@pytest.fixture(scope="module")
def ct_model(slab, lite, cache_dir, tmp_path_factory):
    """A few-shot model trained on the slab under the CT window, and its labels of the slab under that window."""
    volume, reference = slab
    method = FewShot(lite)
    run_task(method.fit(VolumeEmbeddings(volume, lite, "ct", cache_dir),
                        {z: (reference[z] > 0).astype(np.uint8) for z in (0, 2, 5)}, iterations=30))
    path = method.save(tmp_path_factory.mktemp("trained") / "fewshot.ckpt")
    opened = open_trained(path, backbone=lite)
    own = run_task(opened.segment(opened.embeddings(volume, cache_dir)))
    other = run_task(opened.segment(VolumeEmbeddings(volume, lite, "mr", cache_dir)))
    assert opened.window == "ct" and own.any() and not np.array_equal(own, other)  # the window matters here
    return path, own


def test_open_trained_finds_the_method_of_any_checkpoint(ct_model, lite, tmp_path):
    path, _ = ct_model
    assert trained_class(path) is FewShot and isinstance(open_trained(path, backbone=lite), FewShot)
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(SamedError, match="truncated or not a checkpoint"):
        open_trained(tmp_path / "junk.ckpt")
    with pytest.raises(SamedError, match="not a napari-samed ProMISe checkpoint but a few-shot one"):
        Promise.open(path, backbone=lite)


def test_cli_and_benchmark_use_the_trained_window(ct_model, slab, cache_dir, tmp_path, capsys):
    path, own = ct_model
    volume, reference = slab
    data = tmp_path / "data"
    write_volume(volume.data, data / "slab_img.nii.gz", volume)
    write_labels(reference, data / "slab_label.nii.gz", volume)
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(data / "slab_img.nii.gz"), "--trained", str(path), "--window", "mr", "-o", str(out),
                 "--cache", str(cache_dir)]) == 0
    assert "fewshot uses the window it was trained with, ct" in capsys.readouterr().err
    np.testing.assert_array_equal(read_volume(out).data, own)

    report = tmp_path / "report"
    assert main(["benchmark", "--data", str(data), "-o", str(report), "--methods", f"fewshot:{path}", "--window",
                 "mr", "--cache", str(cache_dir)]) == 0
    assert "fewshot uses the window it was trained with, ct" in (report / "report.md").read_text()
    with open(report / "results.csv") as fh:
        [row] = [r for r in csv.DictReader(fh) if r["method"] == "slab_img: fewshot"]
    assert float(row["dsc"]) == pytest.approx(dice(own > 0, reference > 0), abs=1e-5)


def test_compare_widget_uses_the_trained_window(make_napari_viewer, qtbot, ct_model, slab, cache_dir, errors):
    path, own = ct_model
    volume, _ = slab
    viewer = make_napari_viewer()
    image = viewer.add_image(volume.data, name="ct", scale=volume.spacing)
    widget = CompareWidget(viewer, cache_dir=str(cache_dir))
    widget.image.value = image
    zero_shot, _, fewshot, _ = widget.slots
    zero_shot.use.value = False
    fewshot.use.value, fewshot.checkpoint.value = True, str(path)
    widget.window.value = "mr"
    widget.compare()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert not errors and "done" in fewshot.status.value
    assert "fewshot uses the window it was trained with, ct" in fewshot.status.value
    np.testing.assert_array_equal(viewer.layers["fewshot"].data, own)


def test_the_segment_session_uses_the_trained_window(ct_model, slab, lite, tmp_path, cache_dir):
    volume, _ = slab
    cotrain = CoTrain(lite, [Structure("organ", (1,))])
    cotrain.window = "ct"
    path = cotrain.save(tmp_path / "cotrain.ckpt")
    session = InteractiveSession(volume.data, cache_dir=cache_dir)
    with pytest.warns(SamedWarning, match="cotrain uses the window it was trained with, ct"):
        embeddings = session.configure(window="mr", trained=path, device=str(lite.device))
    assert embeddings.window_rule == "ct" and embeddings.backbone is session.trained.backbone
    with pytest.raises(SamedError, match="segments without prompts"):
        session.configure(trained=ct_model[0], device=str(lite.device))

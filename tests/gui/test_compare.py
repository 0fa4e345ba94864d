"""Comparing methods: the headless core, the CLI report and the Compare widget, with the real LiteMedSAM on a few
slices of the sample volume."""

import csv
import json

import numpy as np
import pytest

from napari_samed import Volume, write_labels
from napari_samed.cli import main
from napari_samed.errors import SamedError
from napari_samed.evaluation.compare import MethodSlot, simulate_prompts, with_prompts
from napari_samed.evaluation.report import find_cases
from napari_samed.io import write_volume
from napari_samed.masks import dice
from napari_samed.masks import mask_bbox as bbox
from napari_samed.methods import BoxPrompt3D, FewShot, ObjectPrompt3D, run_task
from napari_samed.models import VolumeEmbeddings
from napari_samed.widgets.compare import CompareWidget
from napari_samed.widgets.segment import SegmentWidget

SLAB = slice(28, 34)


@pytest.fixture(scope="module")
def slab(phantom):
    """Six slices of the sample volume through the organ and its lesion, with their reference labels."""
    volume, labels = phantom
    return Volume(volume.data[SLAB], spacing=volume.spacing), labels[SLAB]


@pytest.fixture(scope="module")
def fewshot_ckpt(slab, lite, cache_dir, tmp_path_factory):
    volume, reference = slab
    method = FewShot(lite)
    embeddings = VolumeEmbeddings(volume, lite, "auto", cache_dir)
    run_task(method.fit(embeddings, {z: (reference[z] > 0).astype(np.uint8) for z in (0, 2, 5)}, iterations=30))
    return method.save(tmp_path_factory.mktemp("fewshot") / "fewshot.ckpt")


def test_simulated_prompts_and_prompt_kinds(slab):
    volume, reference = slab
    prompts = simulate_prompts(reference, volume.spacing)
    mask = reference > 0
    assert [p.box for p in prompts["box"]] == [bbox(mask[z]) for z in range(len(mask))]
    [box3d] = prompts["box3d"]
    assert isinstance(box3d, BoxPrompt3D) and box3d.box == (0, *bbox(mask.any(0))[:2], 5, *bbox(mask.any(0))[2:])
    [click] = prompts["click"]
    y, x = click.points[0]
    assert mask[click.z, int(y), int(x)] and click.point_labels == [1]
    [click3d], [onebox3d] = prompts["click3d"], prompts["onebox3d"]
    assert click3d.slices == [click] and isinstance(onebox3d, ObjectPrompt3D)
    [largest] = onebox3d.slices
    assert largest.box == bbox(mask[largest.z]) and mask[largest.z].sum() == mask.sum(axis=(1, 2)).max()
    slots = with_prompts([MethodSlot("zero-shot"), MethodSlot("promise", checkpoint="p"),
                          MethodSlot("fewshot", checkpoint="f"), MethodSlot("cotrain", checkpoint="c")],
                         ["box", "box3d", "click"], kinds=["box", "click"])
    assert [s.name for s in slots] == ["zero-shot lite-medsam (box)", "zero-shot lite-medsam (click)",
                                       "promise (click)", "fewshot", "cotrain (box)"]
    with pytest.raises(SamedError, match="empty"):
        simulate_prompts(np.zeros_like(reference), volume.spacing)


def test_find_cases_pairs_and_notes(tmp_path, slab):
    volume, reference = slab
    write_volume(volume.data, tmp_path / "CT_a_img.nii.gz", volume)
    write_labels(reference, tmp_path / "CT_a_label.nii.gz", volume)
    write_volume(volume.data, tmp_path / "a_HU.nii.gz", volume)  # no label of its own, same shape
    write_volume(volume.data[:3], tmp_path / "b_HU.nii.gz", Volume(volume.data[:3], spacing=volume.spacing))
    write_labels(reference, tmp_path / "CT_b_label.nii.gz", volume)
    write_volume(volume.data, tmp_path / "lonely.nii.gz", volume)
    cases, notes = find_cases(tmp_path)
    assert {(c.image.name, c.label.name) for c in cases} == {("CT_a_img.nii.gz", "CT_a_label.nii.gz"),
                                                             ("a_HU.nii.gz", "CT_a_label.nii.gz")}
    assert any("paired with CT_a_label" in n for n in notes) and any("b_HU.nii.gz: shape" in n for n in notes)
    assert any("lonely.nii.gz: no label" in n for n in notes)


def test_benchmark_report(tmp_path, slab, fewshot_ckpt, cache_dir, capsys):
    volume, reference = slab
    data = tmp_path / "data"
    write_volume(volume.data, data / "slab_img.nii.gz", volume)
    write_labels(reference, data / "slab_label.nii.gz", volume)
    out = tmp_path / "report"
    code = main(["benchmark", "--data", str(data), "-o", str(out), "--cache", str(cache_dir), "--device", "cpu",
                 "--methods", f"zero-shot:lite-medsam,fewshot:{fewshot_ckpt},promise:{tmp_path / 'none.ckpt'}",
                 "--prompts", "box,box3d"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "promise takes click prompts; --prompts box,box3d gives it none of them: it gets click" in err
    report = (out / "report.md").read_text()
    assert "zero-shot lite-medsam (box3d)" in report and "ProMISe checkpoint not found" in report
    assert (out / "slab_img.png").stat().st_size > 10_000
    with open(out / "results.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert float(rows["slab_img: zero-shot lite-medsam (box)"]["dsc"]) > 0.9
    assert float(rows["slab_img: fewshot"]["dsc"]) > 0.5
    assert rows["slab_img: promise (click)"]["error"] and not rows["slab_img: promise (click)"]["dsc"]


def _evaluate(capsys, tmp_path, labels, reference, volume, tolerance):
    write_labels(labels, tmp_path / "pred.nii.gz", volume)
    write_labels(reference, tmp_path / "gt.nii.gz", volume)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "gt.nii.gz"),
                 "--tolerance", str(tolerance)]) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_widget(make_napari_viewer, qtbot, slab, fewshot_ckpt, cache_dir, tmp_path, capsys, errors):
    volume, reference = slab
    viewer = make_napari_viewer()
    image = viewer.add_image(volume.data, name="ct", scale=volume.spacing)
    ref_layer = viewer.add_labels(reference, name="ct reference", scale=volume.spacing)
    segment = SegmentWidget(viewer, cache_dir=str(cache_dir))
    segment.auto.value = False
    segment.image.value = image
    _, boxes = segment.prompt_layers(image)
    for z in range(len(reference)):
        y0, x0, y1, x1 = bbox(reference[z] > 0)
        boxes.add_rectangles(np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float))

    widget = CompareWidget(viewer, cache_dir=str(cache_dir))
    viewer.window.add_dock_widget(widget)
    widget.image.value, widget.reference.value = image, ref_layer
    assert widget.boxes.value is boxes and widget.points.value is viewer.layers["ct points"]
    zero_shot, cotrain, fewshot, promise = widget.slots
    cotrain.use.value = True  # no checkpoint: an error in its row, the others still run
    fewshot.use.value, fewshot.checkpoint.value = True, str(fewshot_ckpt)
    widget.compare()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert not errors
    assert "needs its trained checkpoint" in cotrain.status.value
    assert "done" in zero_shot.status.value and "done" in fewshot.status.value
    names = ["zero-shot lite-medsam (box)", "fewshot"]
    results = [viewer.layers[n] for n in names]
    assert all(layer.data.shape == reference.shape for layer in results)

    def settled():  # the volume rescored and the current slice scored, each in its thread
        return widget.worker is None and not widget.slice_scores.busy

    viewer.dims.set_point(0, image.data_to_world([2, 0, 0])[0])
    qtbot.waitUntil(settled, timeout=60_000)
    for tolerance in (1.0, 2.0):
        if tolerance != widget.tolerance.value:
            widget.tolerance.value = tolerance  # rescored in a worker
            qtbot.waitUntil(settled, timeout=60_000)
        for name, layer in zip(names, results, strict=True):
            expected = _evaluate(capsys, tmp_path, layer.data, reference, volume, tolerance)
            [row] = [r for r in widget.rows if r["method"] == name and r["scope"] == "volume"]
            assert {k: row[k] for k in expected} == pytest.approx(expected, rel=1e-6)
            i = widget.rows.index(row)
            assert widget.table.item(i, 2).text() == f"{expected['dsc']:.4f}"
    assert {r["scope"] for r in widget.rows} == {"volume", "slice 2"}
    assert widget.rows[[r["method"] for r in widget.rows].index("fewshot", 3)]["dsc"] == pytest.approx(
        dice(results[1].data[2] > 0, reference[2] > 0), rel=1e-6)
    assert len(widget.plot.axes.lines) == 3  # two methods and the slice marker
    assert widget.rows[0]["dsc"] > 0.9

    widget.grid.value = True
    grid = viewer.canvas.grid
    assert grid.enabled and grid.stride == 2
    visible = [layer for layer in viewer.layers if layer.visible]
    assert len(visible) == 6  # the reference and two results, each over its own view of the image
    cells = {}
    for layer in visible:
        cells.setdefault(grid.position(list(viewer.layers).index(layer), viewer.layers), []).append(layer)
    assert len(cells) == 3 and all(cell[0].data is image.data and cell[1] in [ref_layer, *results]
                                   for cell in cells.values())
    assert grid.shape == (1, 3) and all(cell[1].name_overlay.visible for cell in cells.values())  # titled
    viewer.layers.remove(results[1])  # a layer of the grid removed: the grid ends, its views go
    assert not widget.grid.value and not grid.enabled and len(viewer.layers) == 6
    assert not results[0].name_overlay.visible
    results[1] = viewer.add_labels(widget.results[results[1].name].labels, name=results[1].name)
    widget.layers[results[1].name] = results[1]
    widget.grid.value = True
    widget.grid.value = False
    assert not grid.enabled and len(viewer.layers) == 7  # ct, reference, segmentation, points, boxes, 2 results
    assert list(viewer.layers).index(image) == 0 and all(layer.visible for layer in results)

    path = widget.export_csv(tmp_path / "metrics.csv")
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and float(rows[0]["dsc"]) == pytest.approx(widget.rows[0]["dsc"])
    assert "needs its trained checkpoint" in rows[1]["error"]
    assert not errors


def test_compare_widget_bad_input(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    widget = CompareWidget(viewer)
    widget.compare()
    assert "choose an image layer" in errors[-1]
    widget.image.value = viewer.add_image(np.zeros((4, 16, 16)), name="ct")
    widget.reference.value = viewer.add_labels(np.zeros((3, 16, 16), np.uint8), name="short")
    widget.compare()
    assert "reference has shape (3, 16, 16)" in errors[-1]
    widget.reference.value = viewer.add_labels(np.zeros((4, 16, 16), np.uint8), name="empty")
    widget.compare()
    assert "reference label is empty" in errors[-1]
    widget.grid.value = True
    assert "compare methods first" in errors[-1] and not widget.grid.value and widget.worker is None


def test_compare_fits_beside_the_segment_widget_on_a_1000_pixel_screen(make_napari_viewer):
    viewer = make_napari_viewer()
    compare, segment = CompareWidget(viewer), SegmentWidget(viewer)
    # the issue measured 956 px for Compare alone; napari's own window takes about 150 px of the 1000
    assert compare.minimumSizeHint().height() + segment.minimumSizeHint().height() < 850
    assert all(row.use.text == "use" and row.model.tooltip for row in compare.slots)

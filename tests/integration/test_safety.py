"""Nothing the user made is overwritten or misplaced, and every bad input ends in one line with exit status 2."""

import json
import os
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import refused, run

from napari_samed import SamedWarning, read_volume, write_labels
from napari_samed.io.atomic import atomic_path
from napari_samed.masks import mask_bbox as bbox
from napari_samed.methods import FewShot, ZeroShot, group_prompts, run_task
from napari_samed.methods import zero_shot as zero_shot_module
from napari_samed.models import VolumeEmbeddings


def unwritable_folder(tmp_path):
    """A folder this process cannot write to (root writes through permissions: /sys refuses even root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    return "/sys"


# -- nothing the user made is overwritten ---------------------------------------------------------------------
@pytest.mark.parametrize("target", ["image", "reference"])
def test_segment_never_writes_over_an_input_or_a_file_it_did_not_make(capsys, tmp_path, case, target):
    image, reference, box = case
    path = {"image": image, "reference": reference}[target]
    before = path.read_bytes()
    message = "is an input of this command" if target == "image" else "is not a napari-samed label volume"
    refused(capsys, "segment", image, "-o", path, "--box", box, "--cache", tmp_path, message=message)
    assert path.read_bytes() == before
    assert not list(tmp_path.iterdir())  # refused before any embedding was computed


def test_segment_replaces_its_own_output_and_others_only_with_overwrite(capsys, tmp_path, case, cache_dir):
    image, reference, box = case
    out = tmp_path / "seg.nii.gz"
    assert run(capsys, "segment", image, "-o", out, "--box", box, "--cache", cache_dir)[0] == 0
    assert run(capsys, "segment", image, "-o", out, "--box", box, "--cache", cache_dir)[0] == 0  # its own output
    foreign = tmp_path / "foreign.nii.gz"
    foreign.write_bytes(reference.read_bytes())
    refused(capsys, "segment", image, "-o", foreign, "--box", box, "--cache", cache_dir, message="--overwrite")
    assert run(capsys, "segment", image, "-o", foreign, "--box", box, "--cache", cache_dir, "--overwrite")[0] == 0
    np.testing.assert_array_equal(read_volume(foreign).data, read_volume(out).data)


def test_training_never_writes_its_checkpoint_over_the_image(capsys, tmp_path, case):
    image, reference, _ = case
    before = image.read_bytes()
    refused(capsys, "train", "fewshot", image, reference, "-o", image, "--slices", "2", "--cache", tmp_path,
            message="is an input of this command")
    assert image.read_bytes() == before


def test_outputs_that_cannot_be_written_are_refused_before_the_work(capsys, tmp_path, case):
    image, reference, box = case
    folder = unwritable_folder(tmp_path)
    cache = tmp_path / "cache"
    refused(capsys, "segment", image, "-o", f"{folder}/seg.nii.gz", "--box", box, "--cache", cache,
            message="cannot write to folder")
    refused(capsys, "train", "fewshot", image, reference, "-o", f"{folder}/m.ckpt", "--slices", "2", "--cache",
            cache, message="cannot write to folder")
    assert not cache.exists()  # nothing was embedded


# -- the napari writer places a user's Labels layer on its image -------------------------------------------------
def test_writer_places_a_labels_layer_drawn_in_napari_on_its_source_image(make_napari_viewer, tmp_path):
    from napari_samed.napari_io import read_layers, write_labels_layer

    stored = np.random.default_rng(0).integers(0, 100, (6, 5, 4)).astype(np.int16)  # P, L, I like DeepLesion
    affine = np.array([[0, -0.9, 0, 10], [-0.9, 0, 0, 20], [0, 0, -5.0, 30], [0, 0, 0, 1]])
    source = tmp_path / "pli.nii.gz"
    nib.Nifti1Image(stored, affine).to_filename(str(source))
    viewer = make_napari_viewer()
    data, kwargs, _ = read_layers(str(source))[0]
    viewer.add_image(data, **kwargs)
    drawn = viewer.add_labels(np.zeros(data.shape, np.uint8), scale=kwargs["scale"])  # napari's "new labels"
    drawn.data[2, 1:3, 2] = 1
    out = tmp_path / "drawn.nii.gz"
    write_labels_layer(str(out), drawn.data, {"scale": drawn.scale, "metadata": drawn.metadata})
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, affine)
    assert img.shape == stored.shape
    np.testing.assert_array_equal(read_volume(out).data, drawn.data)

    viewer.layers.remove(viewer.layers[0])  # its image is gone: NIfTI cannot place it, TIFF can
    with pytest.raises(ValueError, match="Open its source image"):
        write_labels_layer(str(tmp_path / "lost.nii.gz"), drawn.data, {"scale": drawn.scale, "metadata": {}})
    assert not (tmp_path / "lost.nii.gz").exists()
    write_labels_layer(str(tmp_path / "drawn.tif"), drawn.data, {"scale": drawn.scale, "metadata": {}})
    np.testing.assert_array_equal(read_volume(tmp_path / "drawn.tif").data, drawn.data)


# -- damaged caches, extreme values, crashed writes, many boxes ------------------------------------------------
@pytest.mark.parametrize("damage", ["empty", "short", "content"])
def test_a_damaged_cache_slice_is_recomputed_with_a_warning(tiny_backbone, tmp_path, damage):
    volume = np.random.default_rng(0).normal(0, 100, (4, 40, 48)).astype(np.float32)
    expected = VolumeEmbeddings(volume, tiny_backbone, "ct", False).get(2).half().float()
    emb = VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path)
    list(emb.compute())
    path = emb.dir / "z00002.emb"
    raw = bytearray(path.read_bytes())
    raw = {"empty": b"", "short": raw[: len(raw) // 2], "content": raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]}
    path.write_bytes(bytes(raw[damage]))
    before = tiny_backbone.encoded
    with pytest.warns(SamedWarning, match="damaged embedding cache entry .*z00002.emb"):
        again = VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path).get(2)
    assert tiny_backbone.encoded == before + 1
    torch.testing.assert_close(again, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VolumeEmbeddings(volume, tiny_backbone, "ct", tmp_path).get(2)  # replaced: read without a warning
    assert tiny_backbone.encoded == before + 1


def test_the_command_recomputes_a_damaged_slice_and_gives_the_clean_result(capsys, tmp_path, case, cache_dir):
    image, _, box = case
    assert run(capsys, "segment", image, "-o", tmp_path / "clean.nii.gz", "--box", box, "--cache", cache_dir)[0] == 0
    cache = tmp_path / "cache"
    code, out, _ = run(capsys, "embed", image, "--cache", cache)
    assert code == 0
    (cache / out.strip().split("/")[-1] / "z00002.emb").write_bytes(b"")  # a crash during the write
    code, _, err = run(capsys, "segment", image, "-o", tmp_path / "seg.nii.gz", "--box", box, "--cache", cache)
    assert code == 0
    warned = [line for line in err.splitlines() if "warning" in line]
    assert len(warned) == 1 and "damaged embedding cache entry" in warned[0], err
    np.testing.assert_array_equal(read_volume(tmp_path / "seg.nii.gz").data,
                                  read_volume(tmp_path / "clean.nii.gz").data)


@pytest.mark.parametrize("factor", [1e300, 1e-300])
def test_float64_values_beyond_float32_are_windowed_like_the_same_image_in_range(tiny_backbone, phantom, factor):
    data = phantom[0].data[30:32].astype(np.float64)
    data = data - data.min()  # positive (MR-like), so the automatic window is the percentile one
    box = [(0, *bbox(phantom[1][30] > 0))]
    plain = run_task(ZeroShot(tiny_backbone).segment(VolumeEmbeddings(data, tiny_backbone, "auto", False),
                                                     group_prompts(boxes=box)))
    scaled = run_task(ZeroShot(tiny_backbone).segment(VolumeEmbeddings(data * factor, tiny_backbone, "auto", False),
                                                      group_prompts(boxes=box)))
    assert plain.any()
    np.testing.assert_array_equal(scaled, plain)


def test_temporaries_of_killed_writers_are_removed_on_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".seg.nii.gz.{dead.pid}.tmp.nii.gz"
    stale.write_bytes(b"half a file")
    live = tmp_path / f".other.ckpt.{os.getpid()}.tmp"  # a write under way in this process
    live.write_bytes(b"")
    with atomic_path(tmp_path / "new.txt") as tmp:
        tmp.write_text("done")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "new.txt").read_text() == "done"


def test_many_boxes_on_a_slice_are_decoded_in_bounded_batches(tiny_backbone, monkeypatch):
    volume = np.random.default_rng(0).normal(0, 100, (2, 40, 48)).astype(np.float32)
    rng = np.random.default_rng(1)
    boxes = [(int(z), y, x, y + 8, x + 8) for z, y, x in zip(rng.integers(0, 2, 100), rng.integers(0, 30, 100),
                                                              rng.integers(0, 38, 100), strict=True)]
    emb = VolumeEmbeddings(volume, tiny_backbone, "ct", False)
    whole = run_task(ZeroShot(tiny_backbone).segment(emb, group_prompts(boxes=boxes)))
    sizes = []
    decode = tiny_backbone.decode
    monkeypatch.setattr(tiny_backbone, "decode", lambda *a, **k: sizes.append(len(k["boxes"])) or decode(*a, **k))
    monkeypatch.setattr(zero_shot_module, "BOX_CHUNK", 8)
    chunked = run_task(ZeroShot(tiny_backbone).segment(emb, group_prompts(boxes=boxes)))
    assert max(sizes) == 8 and sum(sizes) == 100
    np.testing.assert_array_equal(chunked, whole)


# -- every bad input: one line, exit status 2 ------------------------------------------------------------------
def test_bad_numbers_and_folders_are_one_line_errors(capsys, tmp_path, case):
    image, reference, box = case
    fs = ["train", "fewshot", image, reference, "-o", tmp_path / "m.ckpt", "--slices", "2"]
    for value in ("0", "-3"):
        refused(capsys, *fs, "--iterations", value, message="--iterations must be a positive whole number")
        refused(capsys, "train", "cotrain", tmp_path, "-o", tmp_path / "c.ckpt", "--structures", "organ=1",
                "--epochs", value, message="--epochs must be a positive whole number")
    refused(capsys, "train", "cotrain", tmp_path, "-o", tmp_path / "c.ckpt", "--structures", "organ=1", "--batch", "0",
            message="--batch must be a positive whole number")
    for value in ("-1", "nan"):
        refused(capsys, "evaluate", reference, reference, "--tolerance", value, message="--tolerance is a distance")
        refused(capsys, *fs, "--budget", value, message="--budget must be a finite number above 0")
    refused(capsys, *fs, "--budget", "5", "--iterations", "3", message="not allowed with argument --budget")
    refused(capsys, *fs, "--init", reference, message="truncated or not a checkpoint")
    refused(capsys, "segment", image, "-o", tmp_path, "--box", box, message="is a folder")
    refused(capsys, *fs[:5], tmp_path, *fs[6:], message="is a folder")
    refused(capsys, "sample", "-o", image, message="is a file, not a folder")
    assert not list(tmp_path.iterdir())


def test_cache_folders_that_cannot_be_used_are_one_line_errors(capsys, tmp_path, case, monkeypatch):
    image, _, box = case
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    seg = ["segment", image, "-o", tmp_path / "seg.nii.gz", "--box", box]
    refused(capsys, *seg, "--cache", a_file, message="the embedding cache folder")
    refused(capsys, *seg, "--cache", f"{unwritable_folder(tmp_path)}/cache",
            message="--cache DIR or NAPARI_SAMED_CACHE")
    monkeypatch.setenv("NAPARI_SAMED_CACHE", str(a_file))
    refused(capsys, *seg, message="is a file, not a folder; choose another with --cache DIR or NAPARI_SAMED_CACHE")
    assert a_file.read_text() == "not a folder" and not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.parametrize(("meta", "message"), [
    ([{"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz"}], "holds a JSON list"),
    ({"labels": {"1": "organ"}, "training": [{"image": "imagesTr/a.nii.gz"}]}, "must list image/label pairs"),
    ({"labels": {"1": "organ"}, "training": "imagesTr"}, "must list image/label pairs"),
    ({"labels": ["organ"], "training": []}, "must map label values to names"),
])
def test_malformed_dataset_json_is_a_one_line_error(capsys, tmp_path, meta, message):
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    refused(capsys, "train", "cotrain", tmp_path, "-o", tmp_path / "c.ckpt", "--structures", "organ=1",
            message=message)


@pytest.mark.parametrize("entry", ["decoder", "backbone"])
def test_a_checkpoint_missing_an_entry_is_a_one_line_error(capsys, tmp_path, case, lite, entry):
    image, reference, _ = case
    method = FewShot(lite)
    method.labels, method.targets, method.decoder = [1], [torch.zeros(1, 256)], torch.nn.Linear(1, 1)
    path = method.save(tmp_path / "fs.ckpt")
    state = torch.load(path, weights_only=True)
    del state[entry]
    torch.save(state, path)
    refused(capsys, "segment", image, "--trained", path, "-o", tmp_path / "o.nii.gz",
            message=f"lacks its {entry} entry")


def test_complex_images_are_refused(capsys, tmp_path):
    path = tmp_path / "complex.nii.gz"
    nib.Nifti1Image(np.ones((8, 8, 3), np.complex64), np.eye(4)).to_filename(str(path))
    refused(capsys, "segment", path, "-o", tmp_path / "o.nii.gz", "--box", "0,1,1,4,4", message="complex numbers")


def test_labels_written_by_the_plugin_are_marked_as_its_own(tmp_path, phantom):
    from napari_samed.io.readers import LABELS_MARK, written_by

    volume, labels = phantom
    for name in ("l.nii.gz", "l.tif"):
        assert written_by(write_labels(labels, tmp_path / name, volume)) == LABELS_MARK
    nib.Nifti1Image(labels, np.eye(4)).to_filename(str(tmp_path / "other.nii.gz"))
    assert written_by(tmp_path / "other.nii.gz") is None


def test_an_image_given_as_labels_is_refused(capsys, tmp_path, case):
    image, reference, _ = case
    refused(capsys, "train", "fewshot", image, image, "-o", tmp_path / "m.ckpt", "--slices", "2",
            message="looks like an image, not a label volume")
    refused(capsys, "evaluate", image, reference, message="looks like an image, not a label volume")


def test_prompts_outside_the_volume_are_refused_before_any_progress_bar(capsys, tmp_path, case):
    image, _, _ = case
    refused(capsys, "segment", image, "-o", tmp_path / "o.nii.gz", "--box", "9,1,1,5,5",
            message="slice 9 is outside the volume (0..4)")
    refused(capsys, "segment", image, "-o", tmp_path / "o.nii.gz", "--point", "2,1,999",
            message="lies outside the volume")


def _snapshot(folder):
    """Every file under ``folder`` with its content."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _foreign_nifti(path):
    nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)).to_filename(str(path))


@pytest.mark.parametrize("command, name", [
    (["sample"], "sample_ct.nii.gz"),  # another tool's image under the sample's name
    (["sample"], "marked/sample_ct.nii.gz"),  # a volume napari-samed wrote elsewhere, put there by the user
    (["sample"], "sample_ct_labels.nii.gz"),  # a text file under the labels' name
    (["sample", "--cases", "2"], "dataset.json"),
    (["sample", "--cases", "2"], "imagesTr/mine.nii.gz"),
    (["demo", "--headless"], "sample_ct.nii.gz"),
    (["demo", "--headless"], "report.md"),
    (["demo", "--headless"], "fewshot.ckpt"),  # any other file under the checkpoint's name
    (["benchmark", "--data", "{data}"], "report.md"),
    (["benchmark", "--data", "{data}"], "results.csv"),
    (["benchmark", "--data", "{data}"], "ct.png"),
    (["benchmark", "cotrain", "{data}", "--structures", "organ=1"], "table1.csv"),
    (["benchmark", "cotrain", "{data}", "--structures", "organ=1"], "cotrain.ckpt"),
    (["benchmark", "cotrain", "{data}", "--structures", "organ=1"], "single.ckpt"),
    (["benchmark", "cotrain", "{data}", "--structures", "organ=1"], "overlays/mine.png"),
])
def test_an_output_folder_keeps_a_file_napari_samed_did_not_write(capsys, tmp_path, case, command, name):
    image, reference, _ = case
    data = tmp_path / "data"
    data.mkdir()
    (data / "ct.nii.gz").write_bytes(image.read_bytes())
    (data / "ct_label.nii.gz").write_bytes(reference.read_bytes())
    out = tmp_path / "out"
    marked = name.startswith("marked/")
    name = name.removeprefix("marked/")
    (out / name).parent.mkdir(parents=True)
    if marked:
        (out / name).write_bytes(image.read_bytes())
    elif name.endswith(".nii.gz") and "labels" not in name:
        _foreign_nifti(out / name)
    else:
        (out / name).write_text("the user's own file\n")
    (out / "notes.txt").write_text("mine\n")
    before = _snapshot(out)
    args = [str(a).replace("{data}", str(data)) for a in command]
    refused(capsys, *args, "-o", out, message=f"{out / name} is in the way")
    assert _snapshot(out) == before  # nothing written, nothing replaced


def test_a_command_replaces_its_own_outputs_and_others_only_with_overwrite(capsys, tmp_path):
    out = tmp_path / "out"
    code, first, _ = run(capsys, "sample", "-o", out)
    assert code == 0 and (out / ".napari-samed-outputs.json").is_file()
    code, second, _ = run(capsys, "sample", "-o", out)  # its own files: replaced
    assert code == 0 and second == first
    _foreign_nifti(out / "sample_ct.nii.gz")  # the user replaced one of them: no longer the command's
    refused(capsys, "sample", "-o", out, message="sample_ct.nii.gz is in the way")
    code, _, _ = run(capsys, "sample", "-o", out, "--overwrite")
    assert code == 0 and read_volume(out / "sample_ct.nii.gz").shape == (64, 256, 256)
    code, _, _ = run(capsys, "sample", "-o", out)  # and replaced with --overwrite, it is the command's again
    assert code == 0


def test_the_demo_without_a_display_says_to_run_it_headless(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    refused(capsys, "demo", message="run napari-samed demo --headless -o OUT")


def test_a_file_kept_beside_outputs_with_overwrite_is_not_recorded_as_the_commands(capsys, tmp_path):
    out = tmp_path / "out"
    (out / "labelsTr").mkdir(parents=True)
    (out / "labelsTr" / "notes.txt").write_text("mine\n")
    code, _, _ = run(capsys, "sample", "--cases", "1", "-o", out, "--overwrite")
    recorded = json.loads((out / ".napari-samed-outputs.json").read_text())["files"]
    assert code == 0 and "labelsTr/notes.txt" not in recorded and "dataset.json" in recorded
    assert (out / "labelsTr" / "notes.txt").read_text() == "mine\n"

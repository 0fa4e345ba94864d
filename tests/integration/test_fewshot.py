import numpy as np
import pytest
import torch

from napari_samed import SamedError
from napari_samed.cli import main
from napari_samed.masks import dice, mask_bbox
from napari_samed.methods import FewShot, run_task
from napari_samed.methods.fewshot import MAX_STEPS, FewShotDecoder, target_embeddings
from napari_samed.models import VolumeEmbeddings
from napari_samed.models.cache import content_hash

SHOTS = [16, 24, 32, 40, 48]


@pytest.fixture(scope="module")
def trained(phantom, lite, cache_dir):
    volume, labels = phantom
    organ = (labels > 0).astype(np.uint8)
    emb = VolumeEmbeddings(volume, lite, "ct", cache_dir)
    method = FewShot(lite)
    steps = []
    losses = run_task(method.fit(emb, {z: organ[z] for z in SHOTS}), steps.append)
    return method, emb, organ, losses, steps


@pytest.mark.slow
def test_five_labelled_slices_segment_the_rest_of_the_organ(trained, tmp_path):
    method, emb, organ, losses, steps = trained
    assert len(losses) <= MAX_STEPS and np.mean(losses[-5:]) < 0.5 * losses[0]  # it stopped by itself
    assert [s.loss for s in steps if s.loss is not None] == losses and method.stopped.startswith("stopped at step")
    assert [s.score for s in steps if s.score is not None] == [score for _, score in method.checks]
    assert method.checks[-1][0] == len(losses) and steps[-1].done == steps[-1].total
    pred = run_task(method.segment(emb))
    others = [z for z in range(organ.shape[0]) if z not in SHOTS]
    assert dice(pred[others] > 0, organ[others] > 0) >= 0.90
    again = FewShot.open(method.save(tmp_path / "organ.ckpt"), backbone=emb.backbone)
    np.testing.assert_array_equal(run_task(again.segment(emb)), pred)
    assert again.window == "ct" and again.labels == [1] and again.boxes == method.boxes


def test_regions_are_redrawn_from_boxes_when_that_matches_the_labelled_slices_better(trained, monkeypatch):
    method, emb, organ, _, _ = trained
    shots = {z: organ[z] for z in SHOTS}
    monkeypatch.setattr(method, "redraw", lambda embeddings, z, plane: np.zeros_like(plane))
    assert not method.prefers_boxes([(emb, shots)])
    monkeypatch.setattr(method, "redraw", lambda embeddings, z, plane: organ[z].astype(plane.dtype))  # a perfect redraw
    assert method.prefers_boxes([(emb, shots)])
    monkeypatch.undo()
    z = SHOTS[0] + 3
    plane = method.predict_slice(emb.get(z), emb.slice_shape)
    redrawn = method.redraw(emb, z, plane)  # the pretrained decoder's mask from the region's box
    y0, x0, y1, x1 = mask_bbox(plane > 0)
    assert redrawn.any() and not redrawn[:, : max(x0 - 20, 0)].any() and not redrawn[: max(y0 - 20, 0)].any()
    assert dice(redrawn > 0, plane > 0) > 0.8


def test_parts_far_from_the_labelled_slices_are_dropped_on_the_labelled_image_only(trained, monkeypatch, tmp_path):
    method, emb, organ, _, _ = trained
    assert method.extent == {content_hash(emb.data): [(SHOTS[0], SHOTS[-1])]}
    assert method.sources == {content_hash(emb.data): SHOTS}
    again = FewShot.open(method.save(tmp_path / "organ.ckpt"), backbone=emb.backbone)
    assert method.tapers == {content_hash(emb.data): [(True, True)]}  # the organ shrinks toward both ends
    assert again.extent == method.extent and again.sources == method.sources and again.tapers == method.tapers
    label_plane = method.label_plane
    look_alike = np.zeros(emb.slice_shape, np.uint8)
    look_alike[10:30, 10:30] = 1  # on slices 2 and 3, far below the organ (slices 14-50) and apart from it

    asked = []

    def get(z, get=emb.get):
        asked.append(z)
        return get(z)

    monkeypatch.setattr(emb, "get", get)
    monkeypatch.setattr(method, "label_plane", lambda prob, embedding: look_alike if asked[-1] in (2, 3)
                        else label_plane(prob, embedding))
    monkeypatch.setattr(method, "boxes", False)
    pred = run_task(method.segment(emb))
    assert not pred[:4].any() and dice(pred > 0, organ > 0) > 0.85
    monkeypatch.setattr(method, "extent", {"another image": [(SHOTS[0], SHOTS[-1])]})
    assert run_task(method.segment(emb))[2:4].sum() == 2 * look_alike.sum()  # another image: nothing dropped


def test_target_embedding_is_the_masked_mean():
    emb = torch.zeros(1, 256, 64, 64)
    emb[0, :, :32] = 1.0  # top half of the embedding grid
    mask = np.zeros((1, 128, 128), bool)
    mask[0, :64] = True  # top half of the slice
    np.testing.assert_allclose(target_embeddings(emb, mask).numpy(), 1.0, atol=1e-6)
    mask[0] = False
    mask[0, 64:] = True
    np.testing.assert_allclose(target_embeddings(emb, mask).numpy(), 0.0, atol=1e-6)


def test_decoder_shapes_and_pretrained_start(tiny_backbone):
    decoder = FewShotDecoder(tiny_backbone, num_labels=2)
    out = decoder(torch.randn(3, 256, 64, 64), [torch.randn(5, 256), torch.randn(2, 256)])
    assert out.shape == (3, 2, 2, 256, 256)
    torch.testing.assert_close(out[:, :, 0], -out[:, :, 1])  # background starts as the negated foreground
    trainable = {n.split(".")[0] for n, p in decoder.named_parameters() if p.requires_grad}
    assert trainable == {"transformer", "hypernetworks", "queries"}


@pytest.mark.parametrize(
    ("annotations", "labels", "message"),
    [
        ({}, None, "no labelled slice"),
        ({1: np.zeros((20, 20), np.uint8)}, None, "hold no label"),
        ({1: np.ones((20, 20), np.uint8)}, [2], "label 2 appears on none of the labelled slices"),
        ({9: np.ones((20, 20), np.uint8)}, None, "slice 9 is outside the volume"),
        ({1: np.ones((20, 21), np.uint8)}, None, "labels of slice 1 have shape"),
    ],
)
def test_bad_training_input(tiny_backbone, annotations, labels, message):
    emb = VolumeEmbeddings(np.zeros((5, 20, 20), np.float32), tiny_backbone, "0,1", cache_dir=False)
    with pytest.raises(SamedError, match=message):
        run_task(FewShot(tiny_backbone).fit(emb, annotations, labels))
    assert tiny_backbone.encoded == 0


def test_checkpoint_of_another_backbone_is_refused(tiny_backbone, lite, tmp_path):
    emb = VolumeEmbeddings(np.random.default_rng(0).random((3, 20, 20), np.float32), tiny_backbone, "0,1", False)
    method = FewShot(tiny_backbone)
    plane = np.zeros((20, 20), np.uint8)
    plane[5:15, 5:15] = 1
    run_task(method.fit(emb, {1: plane}, iterations=2))
    path = method.save(tmp_path / "tiny.ckpt")
    with pytest.raises(SamedError, match="was trained on tiny-test .* not on the loaded lite-medsam"):
        FewShot.open(path, backbone=lite)
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(SamedError, match="truncated or not a checkpoint"):
        FewShot.open(tmp_path / "junk.ckpt", backbone=lite)


def test_cli_train_and_segment(capsys, tmp_path, phantom, cache_dir):
    from napari_samed import Volume, read_volume, write_labels
    from napari_samed.io import write_volume

    volume, labels = phantom
    small = Volume(volume.data[28:36], spacing=volume.spacing)
    write_volume(small.data, tmp_path / "ct.nii.gz", small)
    write_labels(labels[28:36], tmp_path / "labels.nii.gz", small)
    ckpt = tmp_path / "fs.ckpt"
    args = ["train", "fewshot", tmp_path / "ct.nii.gz", tmp_path / "labels.nii.gz", "-o", ckpt,
            "--slices", "2,5", "--labels", "1,2", "--iterations", "3", "--window", "ct", "--cache", cache_dir]
    assert main([str(a) for a in args]) == 0
    assert "3 steps done" in capsys.readouterr().err
    again = [*args[:5], tmp_path / "more.ckpt", args[6], "2,4,5", *args[8:], "--init", ckpt, "--suggest", "2"]
    assert main([str(a) for a in again]) == 0
    out, err = capsys.readouterr()
    path, *picks = out.splitlines()
    assert path == str(tmp_path / "more.ckpt") and f"went on from {ckpt}" in err
    assert picks and all(p.startswith("slice ") and int(p.split(":")[0][6:]) not in (2, 4, 5) for p in picks)
    # where three steps draw nothing, the one slice between the labelled ones is all there is, and it says so
    assert len(picks) == 2 or (len(picks) == 1 and "1 slice(s) to suggest" in err)
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "--trained", str(ckpt), "-o", str(out), "--cache",
                 str(cache_dir)]) == 0
    assert read_volume(out).shape == small.shape
    capsys.readouterr()
    # the spelling README documented before --trained still works, with a deprecation warning
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "--method", "fewshot", "--checkpoint", str(ckpt),
                 "-o", str(out), "--cache", str(cache_dir)]) == 0
    assert "--checkpoint for a trained model is deprecated; use --trained" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "--method", "fewshot", "-o", str(out)]) == 2
    assert "needs its trained model: --trained CKPT" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "--method", "cotrain", "--trained", str(ckpt),
                 "-o", str(out)]) == 2
    assert "is a few-shot model (method fewshot), not a cotrain one" in capsys.readouterr().err
    bad = ["train", "fewshot", str(tmp_path / "ct.nii.gz"), str(tmp_path / "labels.nii.gz"), "-o", str(ckpt),
           "--slices", "2,99"]
    assert main(bad) == 2
    assert "slice 99 is outside the volume" in capsys.readouterr().err


def test_slices_of_two_images_train_one_model_that_segments_a_third(capsys, tmp_path, cache_dir):
    from napari_samed import read_volume, write_labels
    from napari_samed.io import write_volume
    from napari_samed.phantom import make_phantom

    files, organs = [], []
    for seed in (1, 2, 3):
        volume, labels = make_phantom(seed, (12, 256, 256), (5.0, 1.0, 1.0))
        organs.append(labels > 0)
        files.append((write_volume(volume.data, tmp_path / f"ct{seed}.nii.gz", volume),
                      write_labels(organs[-1].astype(np.uint8), tmp_path / f"labels{seed}.nii.gz", volume)))
    slices = [np.flatnonzero(organ.any(axis=(1, 2)))[[1, 4, -2]].tolist() for organ in organs[:2]]
    ckpt = tmp_path / "two.ckpt"
    args = ["train", "fewshot", *files[0], "--slices", ",".join(map(str, slices[0])), "--also", *files[1],
            ",".join(map(str, slices[1])), "-o", ckpt, "--iterations", "60", "--cache", cache_dir]
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    method = FewShot.open(ckpt)
    hashes = [content_hash(read_volume(image).data) for image, _ in files]
    assert method.sources == {hashes[0]: slices[0], hashes[1]: slices[1]} and set(method.extent) == set(hashes[:2])
    out = tmp_path / "third.nii.gz"
    assert main(["segment", str(files[2][0]), "--trained", str(ckpt), "-o", str(out), "--cache",
                 str(cache_dir)]) == 0
    assert dice(read_volume(out).data > 0, organs[2]) > 0.8  # an image it never saw
    bad = [*args[:-6], "-o", tmp_path / "bad.ckpt"]
    bad[bad.index("--also") + 3] = "1,99"
    assert main([str(a) for a in bad]) == 2
    assert "slice 99 is outside the volume (0..11) of" in capsys.readouterr().err


def test_presence_threshold_follows_how_much_the_shots_differ():
    from napari_samed.methods.fewshot import PRESENCE, calibrate_presence

    alike = torch.tensor([[1.0, 0.0], [1.0, 0.05], [1.0, 0.02]])
    assert calibrate_presence([alike]) == PRESENCE  # capped
    varied = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cosine 0.707
    assert calibrate_presence([alike, varied]) == pytest.approx(0.707 - 0.1, abs=1e-3)
    assert calibrate_presence([torch.tensor([[1.0, 0.0]])]) == PRESENCE  # one shot: nothing to compare

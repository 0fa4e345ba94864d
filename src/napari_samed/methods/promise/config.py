"""ProMISe sizes: the paper's configuration (SAM ViT-B on a GPU) and a CPU configuration (LiteMedSAM)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ...errors import SamedError

#: The smallest crop side on the crop grid.
MIN_CROP = 8


@dataclass(frozen=True)
class PromiseConfig:
    """Sizes and training constants of one ProMISe model.

    ``crop`` is the crop's side on the crop grid: voxels at ``spacing`` for a SAM ViT; for LiteMedSAM, whose
    encoder sees whole slices, slices at the z ``spacing`` and pixels of the half-resolution model grid (two
    pixels per cached 64×64 embedding cell). ``upsample`` (SAM ViT) enlarges the crop before the 2D patch
    embedding; ``window`` is the 3D attention window in tokens; ``depth_stride`` (LiteMedSAM) is the number of
    slices merged into one token along depth.
    """

    backbone: str
    crop: int
    spacing: tuple[float, float, float]
    upsample: int = 4
    window: int = 8
    depth_stride: int = 2
    adapter_ratio: float = 0.5
    neck_channels: int = 256
    prompt_heads: int = 8
    prompt_mlp: int = 2048
    prompt_layers: int = 2
    global_queries: int = 10
    cnn_channels: int = 128
    decoder_channels: int = 128
    fg_points: int = 10
    random_points: int = 20
    boundary_weight: float = 10.0
    lr: float = 4e-4
    warmup: int = 50  # optimiser steps of linear learning-rate warm-up before the polynomial decay
    clip: float = 1.0  # largest gradient norm per step

    def __post_init__(self):
        """`SamedError` for a value no model can have: sizes are whole numbers of at least 1 (`crop` at least
        `MIN_CROP`, `warmup` 0 or more), the other constants finite and positive, voxels three positive sizes."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                low = {"crop": MIN_CROP, "warmup": 0}.get(f.name, 1)
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
            elif f.type == "float":
                ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
                    and value > 0
            elif f.name == "spacing":
                ok = isinstance(value, tuple) and len(value) == 3 and all(
                    isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in value)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise SamedError(f"ProMISe configuration: {f.name} cannot be {value!r}")

    @property
    def lite(self) -> bool:
        return self.backbone == "lite-medsam"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PromiseConfig:
        """The configuration ``to_dict`` gave; `SamedError` for anything else."""
        if not isinstance(values, dict):
            raise SamedError(f"a ProMISe configuration is a mapping, not {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(values) - known, key=str), sorted(known - set(values))
        if unknown or missing:
            raise SamedError(f"ProMISe configuration with {'unknown' if unknown else 'missing'} fields "
                             f"{', '.join(map(str, unknown or missing))}")
        spacing = values["spacing"]
        return cls(**{**values, "spacing": tuple(spacing) if isinstance(spacing, list | tuple) else spacing})

    def describe(self) -> str:
        return f"{self.backbone}, crop {self.crop}, voxel {'x'.join(f'{s:g}' for s in self.spacing)} mm"


#: The paper: SAM ViT-B, 128³ crops at 1 mm upsampled ×4 to 512³ (32³ tokens, 8³ windows). Needs a GPU.
PAPER = PromiseConfig("sam-vit-b", crop=128, spacing=(1.0, 1.0, 1.0))
#: CPU: LiteMedSAM's cached slice embeddings, 32-slice crops at 2 mm (16³ tokens), narrow adapters, necks and
#: decoder (one training step about 1 s on one core), and a higher learning rate for a run of a few hundred steps.
CPU = PromiseConfig("lite-medsam", crop=32, spacing=(2.0, 2.0, 2.0), adapter_ratio=0.25, neck_channels=32,
                    prompt_heads=4, prompt_mlp=128, cnn_channels=8, decoder_channels=8, lr=2e-3)


def default_config(backbone: str) -> PromiseConfig:
    """`CPU` for LiteMedSAM, else `PAPER` on the named SAM ViT."""
    if backbone == CPU.backbone:
        return CPU
    if backbone.startswith("sam-vit") or backbone == "medsam" or backbone == "tiny-test":
        return replace(PAPER, backbone=backbone)
    raise SamedError(f"ProMISe needs lite-medsam or a SAM ViT backbone; got {backbone}")

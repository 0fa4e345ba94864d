"""`Backbone`: a loaded SAM-family model split as in segment-anything's predictor: encode once, decode often."""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import SamedError
from ..io.atomic import file_sha256
from .encoder import DTYPES, InferenceEncoder, resolve_precision
from .preprocess import SliceTransform, to_model_input
from .registry import BackboneSpec, get_spec, load_weights, read_state_dict


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SamedError(f"unknown device {device!r}; use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SamedError("device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")
    return dev


@dataclass
class Decoded:
    """Decoder output for N prompts: ``logits`` (N, C, H, W) at slice size and ``iou`` (N, C) predictions."""

    logits: torch.Tensor
    iou: torch.Tensor

    def masks(self) -> np.ndarray:
        return (self.logits > 0).cpu().numpy()


class Backbone:
    """A SAM-family model on a device: ``encode`` slices to embeddings, ``decode`` prompts against one.

    ``weights_id`` identifies the weights (SHA-256 of the checkpoint file) for embedding caches and checkpoints;
    ``weights_path`` is the file they came from, when known. ``precision`` is the encoder's arithmetic
    (`models.encoder.resolve_precision`: ``auto`` is fp16 on CUDA, bf16 on a CPU with native bf16, else fp32),
    and `decode`'s (under autocast); training through `low_res_logits` runs in float32.
    Coordinates in and out are slice pixels, boxes ``(y0, x0, y1, x1)``, points ``(y, x)``.
    """

    def __init__(self, spec: BackboneSpec, model: nn.Module, weights_id: str, device: str = "auto",
                 weights_path: str | None = None, mask_decoder: nn.Module | None = None,
                 precision: str = "auto", encoder: InferenceEncoder | None = None):
        self.spec = spec
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.weights_id = weights_id
        self.weights_path = weights_path
        self._mask_decoder = None if mask_decoder is None else mask_decoder.to(self.device).eval()
        self._encoder = encoder or InferenceEncoder(self.model.image_encoder, self.device, self.precision)

    def with_decoder(self, mask_decoder: nn.Module) -> Backbone:
        """This backbone with another mask decoder (a fine-tuned copy); encoder, prompt encoder and the embedding
        cache (keyed by ``weights_id`` and ``precision``) are shared."""
        return Backbone(self.spec, self.model, self.weights_id, self.device, self.weights_path, mask_decoder,
                        self.precision, self._encoder)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def image_encoder(self) -> nn.Module:
        return self.model.image_encoder

    @property
    def prompt_encoder(self) -> nn.Module:
        return self.model.prompt_encoder

    @property
    def mask_decoder(self) -> nn.Module:
        return self.model.mask_decoder if self._mask_decoder is None else self._mask_decoder

    @property
    def batch_size(self) -> int:
        """Slices per encoder call when embedding a volume (1 on the CPU, 8 on CUDA)."""
        return self._encoder.batch_size

    def encode(self, slices: np.ndarray, window: tuple[float, float]) -> torch.Tensor:
        """(B, H, W) slices -> (B, 256, 64, 64) float32 image embeddings on the CPU, at ``precision``."""
        return self._encoder(to_model_input(slices, window, self.spec.image_size, self.spec.normalize)).cpu()

    def transform(self, height: int, width: int) -> SliceTransform:
        return SliceTransform(height, width, self.spec.image_size)

    def low_res_logits(self, embedding: torch.Tensor, shape: tuple[int, int], boxes: np.ndarray | None = None,
                       points: np.ndarray | None = None, point_labels: np.ndarray | None = None,
                       multimask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's raw output for N prompts against one slice embedding (256, 64, 64), with gradients
        through the mask decoder (the prompt encoder is frozen): logits (N, C, 256, 256) over the padded model
        input and IoU predictions (N, C). Prompts as in `decode`."""
        tf = self.transform(*shape)
        dev = self.device
        with torch.no_grad():
            box_t = None if boxes is None else torch.as_tensor(tf.boxes_to_model(boxes), device=dev)
            pts = None
            if points is not None:
                coords = torch.as_tensor(tf.points_to_model(points), device=dev).reshape(-1, np.shape(points)[1], 2)
                pts = (coords, torch.as_tensor(point_labels, dtype=torch.int64, device=dev).reshape(coords.shape[:2]))
            sparse, dense = self.prompt_encoder(points=pts, boxes=box_t, masks=None)
            image_pe = self.prompt_encoder.get_dense_pe()
        return self.mask_decoder(
            image_embeddings=embedding.to(dev, torch.float32)[None],
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )

    @torch.inference_mode()
    def decode(self, embedding: torch.Tensor, shape: tuple[int, int], boxes: np.ndarray | None = None,
               points: np.ndarray | None = None, point_labels: np.ndarray | None = None,
               multimask: bool = False) -> Decoded:
        """Decode N prompts against one slice embedding (256, 64, 64); logits at slice size.

        ``boxes`` (N, 4); ``points`` (N, P, 2) with ``point_labels`` (N, P), 1 positive and 0 negative. The N
        prompts go through the decoder as one batch (SAM's decoder repeats the embedding N times), at the
        encoder's precision (1.5x faster in bf16 on this CPU; training through `low_res_logits` stays float32).
        """
        half = self.precision != "fp32"
        with torch.autocast(self.device.type, DTYPES.get(self.precision, torch.float32), enabled=half):
            low_res, iou = self.low_res_logits(embedding, shape, boxes, points, point_labels, multimask)
        return Decoded(self.transform(*shape).logits_to_slice(low_res.float()).cpu(), iou.float().cpu())


#: Backbones in use, by (model, weights digest, device, precision); an entry goes when its backbone is no longer used.
_LOADED: weakref.WeakValueDictionary[tuple[str, str, str, str], Backbone] = weakref.WeakValueDictionary()


def load_backbone(name: str = "lite-medsam", checkpoint: str | os.PathLike | None = None,
                  device: str = "auto", precision: str = "auto") -> Backbone:
    """A registered backbone with its weights (the bundled file for LiteMedSAM) on ``device`` at ``precision``.

    Backbones are shared within a process: while one is in use, loading the same weights (by content) on the
    same device returns it, or, at another precision, a backbone on the same model. So the Segment, Few-shot and
    Compare widgets, the demo and the comparison hold one model. Nothing in a backbone changes after loading
    (trained methods copy the decoder), so sharing it is safe.
    """
    spec = get_spec(name)
    if checkpoint is None:
        if spec.default_checkpoint is None:
            raise SamedError(f"model {name} needs a checkpoint file: {spec.checkpoint_hint} (--checkpoint PATH)")
        checkpoint = spec.default_checkpoint()
    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    if Path(checkpoint).is_file():
        key = (spec.name, file_sha256(checkpoint), str(dev), precision)
        if (backbone := _LOADED.get(key)) is not None:
            return backbone
        same = next((b for k, b in list(_LOADED.items()) if k[:3] == key[:3]), None)
        if same is not None:
            backbone = Backbone(spec, same.model, same.weights_id, dev, same.weights_path, precision=precision)
            _LOADED[key] = backbone
            return backbone
    state = read_state_dict(checkpoint, spec)
    model = spec.build()
    load_weights(model, state, checkpoint, spec)
    backbone = Backbone(spec, model, file_sha256(checkpoint), dev, str(Path(checkpoint).resolve()), precision=precision)
    _LOADED[(spec.name, backbone.weights_id, str(dev), precision)] = backbone
    return backbone

"""`Promise`: the registered method: training on (volume, mask) cases, one-click inference, checkpoints."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ...errors import SamedError, SamedWarning
from ...io.volume import Volume
from ...masks import deepest_point, dice, label_dtype
from ...models.backbone import Backbone
from ...models.cache import VolumeEmbeddings
from ...models.preprocess import resolve_window, shared_rule, window_rule
from ...tasks import Progress, Task
from ...training.loop import BestState, Stepper, train_steps, warmup_poly
from .. import checkpoint_checks as checks
from ..base import register
from ..prompts import BoxPrompt3D, ObjectPrompt3D, Prompt, check_prompts
from ..trained import TrainedMethod, load_weights
from .config import PromiseConfig, default_config
from .follow import MAX_CROPS, agrees, clicked_parts, next_crop
from .grid import GridVolume, crop_embeddings, crop_start, paste, take
from .loss import BoundaryAwareLoss
from .model import ProMISeNet, build_model
from .prompt import normalise_points
from .training import align, augmentations, sample_clicks, sample_crop


def _config_problem(value) -> str | None:
    try:
        PromiseConfig.from_dict(value)
    except SamedError as exc:
        return f"is not a ProMISe configuration ({exc})"
    return None


@register
class Promise(TrainedMethod):
    """ProMISe (seed 001): a 3D crop around one click (or a few) -> the object's 3D mask."""

    name = "promise"
    kind = "napari-samed promise"
    what = "ProMISe"
    state_keys = ("config", "model", "epoch", "losses", "optimiser")
    schema = {"config": _config_problem, "model": checks.WEIGHTS, "epoch": checks.whole(0),
              "losses": checks.list_of(checks.number(finite=False)),
              "optimiser": checks.optional(checks.mapping(checks.anything)),
              "history": checks.list_of(checks.mapping(checks.anything)),
              "target": checks.optional(checks.list_of(checks.whole(1), 1, unique=True))}
    interactive = "click3d"
    prompts = ("click",)

    def __init__(self, backbone: Backbone, config: PromiseConfig | None = None,
                 target: Sequence[int] | None = None):
        """``target``: the label values whose union the training masks are (recorded, and checked on resuming)."""
        self.backbone = backbone
        self.target = sorted(map(int, target)) if target else None
        self.config = config or default_config(backbone.name)
        if self.config.backbone != backbone.name:
            raise SamedError(f"ProMISe configuration for {self.config.backbone} given the backbone {backbone.name}")
        self.model: ProMISeNet = build_model(backbone, self.config).to(backbone.device).eval()
        self.window: str | tuple = "auto"
        self.epoch = 0
        self.losses: list[float] = []
        self.history: list[dict] = []  # per epoch: mean loss, highest foreground probability, validation DSC
        self._optimiser_state: dict | None = None

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, cases: Sequence[tuple[Volume, np.ndarray]], epochs: int, checkpoint: str | os.PathLike | None = None,
            window: str | tuple = "auto", crops_per_case: int = 1, cache_dir=False, seed: int = 0,
            validation: Sequence[tuple[Volume, np.ndarray]] = ()) -> Task[list[float]]:
        """Task: train on (volume, binary mask) cases; returns the loss of every step.

        An epoch draws ``crops_per_case`` crops from every case (batch 1). The learning rate warms up linearly over
        ``config.warmup`` steps, then decays polynomially; gradients are clipped to norm ``config.clip``. After
        each epoch the model and the optimiser are written to ``checkpoint``; if that file already holds a
        checkpoint of this configuration, training resumes after its last epoch. With ``validation`` cases, each
        epoch ends with their one-click DSC (`one_click_dsc`) and the model keeps the best epoch's weights. An
        epoch whose foreground probability never passed 0.5 on a crop holding foreground has collapsed: its
        progress says so, and a `SamedWarning` when the kept model is such an epoch's. Embeddings (LiteMedSAM) go
        to ``cache_dir`` (False: memory).
        """
        if not cases:
            raise SamedError("no training cases: give at least one (volume, mask) pair")
        if checkpoint is not None and Path(checkpoint).is_file():
            self._resume(checkpoint)
        if self.epoch == 0:
            self.window = shared_rule(window, [window_rule(window, volume.data) for volume, _ in cases])
        grids = []
        for i, (volume, mask) in enumerate([*cases, *validation]):
            if mask.shape != volume.shape:
                raise SamedError(f"case {i}: mask shape {mask.shape} differs from image shape {volume.shape}")
            grid = GridVolume.build(volume.data, volume.spacing, resolve_window(self.window, volume.data),
                                    self.config, self.backbone, cache_dir, mask=mask > 0)
            if grid.embeddings is not None:
                for done, total in grid.embeddings.compute():
                    yield Progress(0, 1, f"volume {i + 1}/{len(cases) + len(validation)}: embedding slice "
                                         f"{done}/{total}")
            grids.append(grid)
        checks = [(grid, mask > 0, deepest_point(mask > 0, volume.spacing))  # the click of each held-out case
                  for grid, (volume, mask) in zip(grids[len(cases):], validation, strict=True)]
        grids = grids[:len(cases)]
        dev = self.backbone.device
        params = [p for p in self.model.parameters() if p.requires_grad]
        rank, net = distributed(self.model, dev)
        optimiser = torch.optim.AdamW(params, lr=self.config.lr)
        if self._optimiser_state is not None:
            optimiser.load_state_dict(self._optimiser_state["optimiser"])
        loss_fn = BoundaryAwareLoss(self.config.boundary_weight)
        augment = augmentations(self.config.lite)
        steps = len(grids) * crops_per_case
        total = epochs * steps
        stepper = Stepper(optimiser, clip=self.config.clip, lr=self.config.lr,
                          schedule=lambda step: warmup_poly(step, total, self.config.warmup))
        scored = [h for h in self.history if h.get("val_dsc") is not None]
        # resumed: the weights in hand are the last epoch's, so an earlier best epoch cannot be returned to
        best = scored[-1] if scored and scored[-1]["val_dsc"] >= max(h["val_dsc"] for h in scored) else None
        keeper = BestState(self.model, best["val_dsc"] if best is not None else None)
        fg_max = [0.0]  # the highest foreground probability on a crop holding the target, this epoch

        def crop_loss(grid: GridVolume, rng: np.random.Generator) -> torch.Tensor:
            crop = augment(sample_crop(grid, self.config, rng))
            points, labels = sample_clicks(torch.as_tensor(crop["label"]), self.config, rng)
            emb = torch.as_tensor(crop["embeddings"])[None].to(dev) if self.config.lite else None
            logits = net(torch.as_tensor(crop["image"])[None].float().to(dev), points.to(dev), labels.to(dev), emb)
            target = (torch.as_tensor(crop["label"])[None] > 0.5).long().to(dev)
            if target.any():
                fg = torch.softmax(logits.detach().float(), 1)[:, 1][target[:, 0] > 0].max()
                fg_max[0] = max(fg_max[0], float(fg))
            return loss_fn(logits, target)

        for epoch in range(self.epoch, epochs):
            rng = np.random.default_rng([seed, epoch, rank])
            augment.set_random_state(seed=int(rng.integers(2**31)))
            torch.manual_seed(int(rng.integers(2**31)))
            self.model.train()
            fg_max[0] = 0.0
            order = np.repeat(rng.permutation(len(grids)), crops_per_case)
            losses = yield from train_steps(stepper, (partial(crop_loss, grids[case], rng) for case in order),
                                            epoch * steps, total,
                                            lambda _, loss, n=epoch + 1: f"epoch {n}/{epochs}, loss {loss:.4f}")
            self.losses += losses
            self.epoch = epoch + 1
            record = {"epoch": self.epoch, "loss": float(np.mean(losses)), "fg_max": fg_max[0], "val_dsc": None}
            if checks:
                record["val_dsc"] = float(np.mean([self.one_click_dsc(grid, mask, click)
                                                   for grid, mask, click in checks]))
                if keeper.offer(record["val_dsc"]):
                    best = record
            self.history.append(record)
            self._optimiser_state = {"optimiser": optimiser.state_dict()}
            if checkpoint is not None and rank == 0:
                self.save(checkpoint)
            yield Progress(self.epoch * steps, total, describe_epoch(record, epochs))
        if keeper.state is not None and best is not self.history[-1]:
            keeper.restore()
            if checkpoint is not None and rank == 0:
                self.save(checkpoint)
        self.model.eval()
        kept = best or (self.history[-1] if self.history else None)
        if kept is not None and kept["fg_max"] <= 0.5:
            warnings.warn(f"ProMISe training collapsed: in epoch {kept['epoch']} (the model kept) the foreground "
                          f"probability never passed 0.5 on a crop holding the target, so it segments nothing; "
                          f"train again with another --seed or a lower learning rate", SamedWarning, stacklevel=2)
        return self.losses

    def _resume(self, path: str | os.PathLike) -> None:
        state = self.read(path)
        self.check_backbone(state, self.backbone, path)
        config = PromiseConfig.from_dict(state["config"])
        if config != self.config:
            raise SamedError(f"checkpoint {path} was trained with another configuration ({config.describe()}) than "
                             f"this training ({self.config.describe()}); name a new checkpoint file")
        recorded = state.get("target")
        if self.target and recorded and recorded != self.target:
            raise SamedError(f"checkpoint {path} was trained on label {'+'.join(map(str, recorded))}, not "
                             f"{'+'.join(map(str, self.target))}; name a new checkpoint file for another target")
        if self.target and not recorded:
            warnings.warn(f"checkpoint {path} does not record its target label (an earlier napari-samed wrote it): "
                          f"resuming on label {'+'.join(map(str, self.target))} unchecked", SamedWarning, stacklevel=2)
        self._load_state(state, path)

    def one_click_dsc(self, grid: GridVolume, mask: np.ndarray, click: tuple[int, int, int],
                      follow: bool = True) -> float:
        """DSC of the object ``mask`` (on the volume of ``grid``) segmented from one positive ``click`` (z, y, x),
        e.g. at its deepest voxel (`masks.deepest_point`); ``follow``: see `predict`."""
        self.model.eval()
        pred = grid.to_volume(self.predict(grid, grid.to_grid(np.array([click], float)), np.ones(1, np.int64),
                                           follow))
        return dice(pred, mask)

    # -- inference -----------------------------------------------------------------------------------------
    def segment(self, embeddings: VolumeEmbeddings, prompts: list[Prompt], spacing: tuple[float, float, float] | None
                = None) -> Task[np.ndarray]:
        """Task: one 3D crop per object, centred on its first positive click; the label volume (z, y, x).

        An object is a slice's clicks or a 3D object's clicks on all its slices (`object_clicks`): more clicks,
        positive or negative, refine the mask within the crop. ``spacing`` is the volume's voxel size (default:
        the embeddings' volume's, else the configured one).
        """
        for obj in prompts:
            steps = obj.slices if isinstance(obj, ObjectPrompt3D) else [obj]
            if any(isinstance(s, BoxPrompt3D) or s.box is not None for s in steps):
                raise SamedError("ProMISe takes clicks (points), not boxes: click inside the object instead")
        check_prompts(prompts, embeddings.data.shape)
        if (embeddings.backbone.name, embeddings.backbone.weights_id) != (self.backbone.name, self.backbone.weights_id):
            raise SamedError(f"the embeddings come from {embeddings.backbone.name}; this ProMISe model uses "
                             f"{self.backbone.name}")
        spacing = spacing or embeddings.spacing or self.config.spacing
        grid = GridVolume.build(embeddings.data, spacing, embeddings.window, self.config,
                                self.backbone, False if embeddings.dir is None else embeddings.dir.parent,
                                embeddings=embeddings)
        out = np.zeros(embeddings.data.shape, label_dtype(max(p.label for p in prompts)))
        for i, obj in enumerate(prompts):
            clicks, polarity = object_clicks(obj)
            probability = self.predict(grid, grid.to_grid(clicks), polarity)
            out[grid.to_volume(probability)] = obj.label
            yield Progress(i + 1, len(prompts), f"object {obj.label}")
        return out

    @torch.inference_mode()
    def predict(self, grid: GridVolume, clicks: np.ndarray, labels: np.ndarray, follow: bool = True) -> torch.Tensor:
        """Foreground probability on the whole grid: the crop centred on the first positive click, then, with
        ``follow``, crops where the object (the mask's parts holding a positive click) goes on beyond it
        (`follow.next_crop`, up to `follow.MAX_CROPS`), each kept when it agrees with the crops so far where they
        overlap (`follow.agrees`). Each crop gets the clicks inside it; a crop after the first also a positive
        click inside what was found."""
        shape, size = tuple(grid.image.shape), self.config.crop
        probability, covered = torch.zeros(shape), np.zeros(shape, bool)
        starts = [crop_start(clicks[labels > 0][0], size, align(self.config))]
        extra = np.empty((0, 3))
        while True:
            start = starts[-1]
            crop = self._crop(grid, start, np.concatenate([clicks, extra]),
                              np.concatenate([labels, np.ones(len(extra), labels.dtype)]))
            region = paste(torch.ones(crop.shape, dtype=torch.bool), start, shape).numpy()
            full, new = paste(crop, start, shape), region & ~covered
            if len(starts) == 1 or agrees(full.numpy() > 0.5, (probability > 0.5).numpy(), region & covered):
                probability[torch.from_numpy(new)] = full[torch.from_numpy(new)]
            covered |= new
            positives = np.concatenate([clicks[labels > 0], extra])
            step = None if not follow or len(starts) == MAX_CROPS else next_crop(
                clicked_parts((probability > 0.5).numpy(), positives), covered, starts, size, align(self.config))
            if step is None:
                return probability
            starts.append(step[0])
            extra = step[1][None]

    def _crop(self, grid: GridVolume, start: np.ndarray, clicks: np.ndarray, labels: np.ndarray) -> torch.Tensor:
        """Foreground probability (S, S, S) of the crop at ``start``, from the clicks inside it."""
        size = (self.config.crop,) * 3
        inside = np.all((clicks >= start) & (clicks < start + self.config.crop), axis=1)
        clicks, labels = clicks[inside], labels[inside]
        dev = self.backbone.device
        image = take(grid.image, start, size)[None, None].float().to(dev)
        points = normalise_points(torch.from_numpy(clicks - start).float(), size)[None].to(dev)
        emb = crop_embeddings(grid.embeddings, start, self.config.crop)[None].to(dev) if self.config.lite else None
        logits = self.model(image, points, torch.from_numpy(labels)[None].to(dev), emb)
        return torch.softmax(logits.float(), dim=1)[0, 1].cpu()

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The configuration, the trained weights (not the frozen pretrained ones) and the training state."""
        frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        return {"config": self.config.to_dict(), "target": self.target,
                "model": {k: v.cpu() for k, v in self.model.state_dict().items() if k not in frozen},
                "epoch": self.epoch, "losses": self.losses, "optimiser": self._optimiser_state, "history": self.history,
                "saved": time.time()}

    @classmethod
    def from_state(cls, state: dict, backbone: Backbone, path: str | os.PathLike) -> Promise:
        method = cls(backbone, PromiseConfig.from_dict(state["config"]), state.get("target"))
        method._load_state(state, path)
        return method

    def _load_state(self, state: dict, path: str | os.PathLike) -> None:
        frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        own = set(self.model.state_dict())
        odd = sorted((own - set(state["model"]) - frozen) | (set(state["model"]) - own))
        if odd:
            raise SamedError(f"ProMISe checkpoint {path} does not fit a {self.config.describe()} model "
                             f"(e.g. {', '.join(odd[:3])})")
        load_weights(self.model, state["model"], f"ProMISe checkpoint {path}", strict=False)
        self.window, self.epoch = state["window"], int(state["epoch"])
        self.losses = list(state["losses"])
        self.history = list(state.get("history", []))
        self._optimiser_state = state["optimiser"]
        self.model.eval()


def object_clicks(obj: Prompt) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) clicks (z, y, x) and their (N,) polarity (1 positive, 0 negative) of a slice prompt, or of a 3D
    object's steps in order (the last step of a slice holds all its clicks)."""
    steps = {s.z: s for s in obj.slices} if isinstance(obj, ObjectPrompt3D) else {obj.z: obj}
    clicks = [[z, y, x] for z, step in steps.items() for y, x in step.points]
    polarity = [int(p) for step in steps.values() for p in step.point_labels]
    return np.array(clicks, float).reshape(-1, 3), np.array(polarity, np.int64)


def describe_epoch(record: dict, epochs: int) -> str:
    text = f"epoch {record['epoch']}/{epochs}: mean loss {record['loss']:.4f}"
    if record["val_dsc"] is not None:
        text += f", validation one-click DSC {record['val_dsc']:.3f}"
    if record["fg_max"] <= 0.5:
        text += " (warning: collapsed, no foreground probability above 0.5)"
    return text


def distributed(model: torch.nn.Module, device: torch.device) -> tuple[int, torch.nn.Module]:
    """This process's rank and the module to train: under ``torchrun`` (an initialised process group) the model
    wrapped in `DistributedDataParallel`, which averages the gradients of all processes, else the model itself."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 0, model
    ids = [device.index] if device.type == "cuda" else None
    return torch.distributed.get_rank(), torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


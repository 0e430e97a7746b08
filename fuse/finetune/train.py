"""The fine-tuning loop: AdamW with differential learning rates, class-weighted CE or focal loss, an optional
class-balanced sampler, mixup, on-device augmentation, AMP on CUDA, ReduceLROnPlateau, early stopping on an inner
split grouped by trial, and a safetensors checkpoint after every epoch that a re-run resumes from.

Resuming restores weights, optimiser, scheduler, early-stopping counters and every RNG, so on the CPU an interrupted
and resumed run ends with the same weights as one that ran straight through.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fuse.finetune.augment import mixup, to_pixels
from fuse.finetune.backbones import FinetuneNet
from fuse.finetune.checkpoint import (
    epoch_file,
    load_checkpoint,
    load_weights,
    read_state,
    save_checkpoint,
    save_weights,
)
from fuse.finetune.config import FinetuneConfig
from fuse.finetune.losses import balanced_order, classification_loss
from fuse.train import class_weights, inner_split

log = logging.getLogger(__name__)


class TrainingInterrupted(RuntimeError):
    """Raised by the ``stop_after_epoch`` hook after that epoch's checkpoint is committed (tests a killed run)."""


class CheckpointMismatch(RuntimeError):
    """A checkpoint folder was made by a run with other training settings."""


@dataclass
class FitReport:
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    n_train: int
    n_val: int
    resumed_from: int  # the epoch the run continued after (0 = a fresh start)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class CropFeeder:
    """Batches of crops onto the device: rows by index, uint8 through pinned memory on CUDA, then ``to_pixels``."""

    def __init__(self, crops: np.ndarray, net: FinetuneNet, device: torch.device) -> None:
        self.crops = torch.from_numpy(crops)
        self.device = device
        self.size, self.mean, self.std = net.backbone.image_size, net.backbone.mean, net.backbone.std

    def pixels(self, idx: np.ndarray, *, augment: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        batch = self.crops[torch.as_tensor(idx)]
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        return to_pixels(batch, self.size, self.mean, self.std, augment=augment, generator=generator)


def _rng_tensors(rng: np.random.Generator, gen: torch.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state(), "augment": gen.get_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return tensors, rng.bit_generator.state


def _restore_rngs(rng: np.random.Generator, gen: torch.Generator, tensors: dict[str, torch.Tensor],
                  np_state: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    gen.set_state(tensors["augment"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    rng.bit_generator.state = np_state


@dataclass
class _Loop:
    """What one training carries through its epochs: net, data on the device, optimiser, scheduler, AMP, RNGs."""

    net: FinetuneNet
    feeder: CropFeeder
    y_dev: torch.Tensor
    weight: torch.Tensor | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    use_amp: bool
    amp_dtype: torch.dtype
    rng: np.random.Generator
    gen: torch.Generator
    device: torch.device


@dataclass
class _Progress:
    """Where a training stands: the last epoch run, the best validation loss so far and its weights file."""

    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    stale: int = 0
    best_file: str | None = None


def _setup(net: FinetuneNet, crops: np.ndarray, y: np.ndarray, tr: np.ndarray, n_classes: int,
           cfg: FinetuneConfig, device: torch.device, seed: int, rng: np.random.Generator) -> _Loop:
    """The net on ``device`` with its optimiser (differential learning rates), scheduler, AMP scaler and RNGs."""
    weight = class_weights(y[tr], n_classes).to(device) if cfg.class_weighted else None
    net.to(device)
    feeder = CropFeeder(crops, net, device)
    optimizer = torch.optim.AdamW(net.param_groups(cfg.lr_backbone, cfg.lr_head, cfg.weight_decay))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.lr_factor,
                                                           patience=cfg.lr_patience)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    y_dev = torch.as_tensor(y, device=device)
    return _Loop(net=net, feeder=feeder, y_dev=y_dev, weight=weight, optimizer=optimizer, scheduler=scheduler,
                 scaler=scaler, use_amp=use_amp, amp_dtype=amp_dtype, rng=rng, gen=gen, device=device)


def _resume(ckpt_dir: Path, cfg: FinetuneConfig, loop: _Loop, state: dict) -> _Progress:
    """Weights, optimiser, scheduler, scaler, RNGs and counters from the committed checkpoint in ``ckpt_dir``."""
    if state.get("training_fingerprint") != cfg.training_fingerprint():
        raise CheckpointMismatch(f"{ckpt_dir}: checkpoint of a run with other training settings; use another "
                                 "--out / checkpoint_dir or delete it")
    state, tensors = load_checkpoint(ckpt_dir, loop.net, loop.optimizer)
    loop.scheduler.load_state_dict(state["scheduler"])
    loop.scaler.load_state_dict(state["scaler"]) if state.get("scaler") else None
    _restore_rngs(loop.rng, loop.gen, tensors, state["numpy_rng"])
    log.info("%s: resuming after epoch %d", ckpt_dir, state["epoch"])
    return _Progress(epoch=state["epoch"], best_loss=state["best_loss"], best_epoch=state["best_epoch"],
                     stale=state["stale"], best_file=state["files"]["best"])


def _train_epoch(loop: _Loop, y: np.ndarray, tr: np.ndarray, cfg: FinetuneConfig) -> None:
    """One pass over the training rows (class-balanced order with ``cfg.sampler`` weighted), mixup and AMP."""
    loop.net.train()
    order = balanced_order(y, tr, loop.rng) if cfg.sampler == "weighted" else loop.rng.permutation(tr)
    for s in range(0, len(order), cfg.batch_size):
        idx = order[s: s + cfg.batch_size]
        if len(idx) < 2:
            continue  # a batch of one breaks batch-norm statistics
        x = loop.feeder.pixels(idx, augment=cfg.augment, generator=loop.gen)
        yb = loop.y_dev[torch.as_tensor(idx, device=loop.device)]
        x, perm, lam = mixup(x, cfg.mixup_alpha, loop.rng, loop.gen)
        loop.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(loop.device.type, dtype=loop.amp_dtype, enabled=loop.use_amp):
            logits = loop.net(x)
        loss = lam * classification_loss(logits, yb, kind=cfg.loss, gamma=cfg.focal_gamma, weight=loop.weight)
        if lam < 1.0:
            loss = loss + (1 - lam) * classification_loss(logits, yb[perm], kind=cfg.loss,
                                                          gamma=cfg.focal_gamma, weight=loop.weight)
        loop.scaler.scale(loss).backward()
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()


def _end_epoch(ckpt_dir: Path, cfg: FinetuneConfig, loop: _Loop, p: _Progress, val_loss: float) -> bool:
    """Keep the best weights, commit the epoch's checkpoint; whether training is finished (patience, epochs)."""
    if val_loss < p.best_loss - 1e-6:
        p.best_loss, p.best_epoch, p.stale = val_loss, p.epoch, 0
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        p.best_file = epoch_file("best", p.epoch)  # a new file: the committed best stays until state.json moves on
        save_weights(loop.net, ckpt_dir / p.best_file)
    else:
        p.stale += 1
    finished = p.stale >= cfg.patience or p.epoch >= cfg.epochs
    rng_tensors, np_state = _rng_tensors(loop.rng, loop.gen)
    scaler = loop.scaler
    save_checkpoint(ckpt_dir, loop.net, loop.optimizer, {
        "epoch": p.epoch, "best_loss": p.best_loss, "best_epoch": p.best_epoch, "stale": p.stale,
        "finished": finished, "scheduler": loop.scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None, "numpy_rng": np_state,
        "training_fingerprint": cfg.training_fingerprint(), "val_loss": val_loss,
    }, rng_tensors, p.best_file)
    return finished


def fit(net: FinetuneNet, crops: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int,
        cfg: FinetuneConfig, ckpt_dir: Path, *, seed: int = 0,
        stop_after_epoch: int | None = None, on_epoch: Callable[[int, float], None] | None = None) -> FitReport:
    """Train ``net`` in place on ``crops``/``y`` (rows 0..n-1), checkpointing into ``ckpt_dir``; keeps the best
    validation weights. A committed checkpoint there is resumed (refused if made under other settings)."""
    ckpt_dir = Path(ckpt_dir)
    device = resolve_device(cfg.device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.asarray(y, np.int64)
    tr, va = inner_split(np.asarray(groups), cfg.val_fraction, rng)
    loop = _setup(net, crops, y, tr, n_classes, cfg, device, seed, rng)
    state = read_state(ckpt_dir)
    p = _resume(ckpt_dir, cfg, loop, state) if state is not None else _Progress()
    resumed_from = p.epoch
    finished = state is not None and state.get("finished", False)
    while not finished and p.epoch < cfg.epochs:
        p.epoch += 1
        _train_epoch(loop, y, tr, cfg)
        val_loss = evaluate_loss(net, loop.feeder, loop.y_dev, va if len(va) else tr, loop.weight, cfg,
                                 loop.use_amp, loop.amp_dtype)
        loop.scheduler.step(val_loss)
        finished = _end_epoch(ckpt_dir, cfg, loop, p, val_loss)
        log.debug("%s epoch %d: val loss %.4f (best %.4f @ %d)", ckpt_dir.name, p.epoch, val_loss, p.best_loss,
                  p.best_epoch)
        if on_epoch is not None:
            on_epoch(p.epoch, val_loss)
        if stop_after_epoch is not None and p.epoch >= stop_after_epoch and not finished:
            raise TrainingInterrupted(f"stopped after epoch {p.epoch} (checkpoint in {ckpt_dir})")
    if p.best_file is not None:
        load_weights(net, ckpt_dir / p.best_file)
    net.eval()
    return FitReport(epochs_run=p.epoch, best_epoch=p.best_epoch, best_val_loss=float(p.best_loss), n_train=len(tr),
                     n_val=len(va), resumed_from=resumed_from)


@torch.no_grad()
def evaluate_loss(net: FinetuneNet, feeder: CropFeeder, y: torch.Tensor, idx: np.ndarray,
                  weight: torch.Tensor | None, cfg: FinetuneConfig, use_amp: bool, amp_dtype: torch.dtype) -> float:
    """Mean (class-weighted) loss of rows ``idx``, no augmentation."""
    net.eval()
    total, norm = 0.0, 0.0
    for s in range(0, len(idx), cfg.batch_size):
        part = idx[s: s + cfg.batch_size]
        with torch.autocast(feeder.device.type, dtype=amp_dtype, enabled=use_amp):
            logits = net(feeder.pixels(part))
        yb = y[torch.as_tensor(part, device=y.device)]
        w = float(weight[yb].sum()) if weight is not None else float(len(part))
        total += w * float(classification_loss(logits, yb, kind=cfg.loss, gamma=cfg.focal_gamma, weight=weight))
        norm += w
    return total / max(norm, 1e-12)


@torch.no_grad()
def predict_logits(net: FinetuneNet, crops: np.ndarray, cfg: FinetuneConfig) -> np.ndarray:
    """float32 logits ``(n, classes)`` of every crop (no augmentation)."""
    device = resolve_device(cfg.device)
    net.to(device).eval()
    feeder = CropFeeder(crops, net, device)
    use_amp = cfg.amp and device.type == "cuda"
    out = []
    for s in range(0, len(crops), cfg.batch_size):
        with torch.autocast(device.type, enabled=use_amp):
            out.append(net(feeder.pixels(np.arange(s, min(s + cfg.batch_size, len(crops))))).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, net.head.out_features), np.float32)

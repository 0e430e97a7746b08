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
    best_loss, best_epoch, stale, start = math.inf, 0, 0, 0
    best_file: str | None = None

    state = read_state(ckpt_dir)
    if state is not None:
        if state.get("training_fingerprint") != cfg.training_fingerprint():
            raise CheckpointMismatch(f"{ckpt_dir}: checkpoint of a run with other training settings; use another "
                                     "--out / checkpoint_dir or delete it")
        state, tensors = load_checkpoint(ckpt_dir, net, optimizer)
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"]) if state.get("scaler") else None
        _restore_rngs(rng, gen, tensors, state["numpy_rng"])
        best_loss, best_epoch, stale, start = state["best_loss"], state["best_epoch"], state["stale"], state["epoch"]
        best_file = state["files"]["best"]
        log.info("%s: resuming after epoch %d", ckpt_dir, start)
    resumed_from = start
    epoch = start
    finished = state is not None and state.get("finished", False)
    while not finished and epoch < cfg.epochs:
        epoch += 1
        net.train()
        order = balanced_order(y, tr, rng) if cfg.sampler == "weighted" else rng.permutation(tr)
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s: s + cfg.batch_size]
            if len(idx) < 2:
                continue  # a batch of one breaks batch-norm statistics
            x = feeder.pixels(idx, augment=cfg.augment, generator=gen)
            yb = y_dev[torch.as_tensor(idx, device=device)]
            x, perm, lam = mixup(x, cfg.mixup_alpha, rng, gen)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = net(x)
            loss = lam * classification_loss(logits, yb, kind=cfg.loss, gamma=cfg.focal_gamma, weight=weight)
            if lam < 1.0:
                loss = loss + (1 - lam) * classification_loss(logits, yb[perm], kind=cfg.loss,
                                                              gamma=cfg.focal_gamma, weight=weight)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        val_loss = evaluate_loss(net, feeder, y_dev, va if len(va) else tr, weight, cfg, use_amp, amp_dtype)
        scheduler.step(val_loss)
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            best_file = epoch_file("best", epoch)  # a new file: the committed best stays until state.json moves on
            save_weights(net, ckpt_dir / best_file)
        else:
            stale += 1
        finished = stale >= cfg.patience or epoch >= cfg.epochs
        rng_tensors, np_state = _rng_tensors(rng, gen)
        save_checkpoint(ckpt_dir, net, optimizer, {
            "epoch": epoch, "best_loss": best_loss, "best_epoch": best_epoch, "stale": stale, "finished": finished,
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "numpy_rng": np_state, "training_fingerprint": cfg.training_fingerprint(), "val_loss": val_loss,
        }, rng_tensors, best_file)
        log.debug("%s epoch %d: val loss %.4f (best %.4f @ %d)", ckpt_dir.name, epoch, val_loss, best_loss,
                  best_epoch)
        if on_epoch is not None:
            on_epoch(epoch, val_loss)
        if stop_after_epoch is not None and epoch >= stop_after_epoch and not finished:
            raise TrainingInterrupted(f"stopped after epoch {epoch} (checkpoint in {ckpt_dir})")
    if best_file is not None:
        load_weights(net, ckpt_dir / best_file)
    net.eval()
    return FitReport(epochs_run=epoch, best_epoch=best_epoch, best_val_loss=float(best_loss), n_train=len(tr),
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

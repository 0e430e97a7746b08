"""The one training loop of every torch head: AdamW, optional class-weighted cross-entropy, early stopping on an
inner validation split of the training rows grouped by trial, seeded and deterministic on the CPU.

A head is an ``nn.Module`` whose ``forward(batch)`` returns logits and whose optional ``loss(batch, y, weight)``
adds terms of its own (the transformer's subject adversary). Data come in through ``gather(indices) -> batch``,
so a head can read sequences out of a shared feature pool without materialising them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fuse.config import TrainConfig
from fuse.finetune.losses import balanced_order, classification_loss

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


@dataclass
class TrainReport:
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    n_train: int
    n_val: int


def inner_split(groups: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices: ``fraction`` of the groups (trials) held out whole; val empty if < 2 groups."""
    uniq = np.unique(groups)
    n_val = int(round(len(uniq) * fraction))
    if len(uniq) < 2 or n_val < 1 or fraction <= 0:
        return np.arange(len(groups)), np.zeros(0, dtype=np.int64)
    n_val = min(n_val, len(uniq) - 1)
    val_groups = rng.choice(uniq, size=n_val, replace=False)
    is_val = np.isin(groups, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (mean 1 over present classes; absent classes weigh 0)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.divide(counts.sum() / max((counts > 0).sum(), 1), counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.as_tensor(w, dtype=torch.float32)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave as is), restoring the previous count after."""
    previous = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _loss(model: nn.Module, batch: Batch, y: torch.Tensor, weight: torch.Tensor | None,
          kind: str = "ce", gamma: float = 2.0) -> torch.Tensor:
    custom = getattr(model, "loss", None)
    if callable(custom):
        return custom(batch, y, weight, kind=kind, gamma=gamma)
    return classification_loss(model(batch), y, kind=kind, gamma=gamma, weight=weight)


def fit(
    model: nn.Module,
    gather: Callable[[np.ndarray], Batch],
    y: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    cfg: TrainConfig,
    seed: int = 0,
) -> TrainReport:
    """Train ``model`` in place on rows 0..len(y)-1; returns what happened. The best-validation weights are kept."""
    with torch_threads(cfg.threads):
        return _fit(model, gather, y, groups, n_classes, cfg, seed)


def _fit(model: nn.Module, gather: Callable[[np.ndarray], Batch], y: np.ndarray, groups: np.ndarray,
         n_classes: int, cfg: TrainConfig, seed: int) -> TrainReport:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=np.int64)
    tr, va = inner_split(np.asarray(groups), cfg.val_fraction, rng)
    weight = class_weights(y[tr], n_classes) if cfg.class_weighted else None
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y_t = torch.as_tensor(y)
    best_state, best_loss, best_epoch, stale, epoch = None, float("inf"), 0, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        set_progress = getattr(model, "set_progress", None)
        if callable(set_progress):  # e.g. the transformer's DANN schedule of the reversal weight
            set_progress((epoch - 1) / max(cfg.epochs - 1, 1))
        order = balanced_order(y, tr, rng) if cfg.sampler == "weighted" else rng.permutation(tr)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2 and len(order) > 1:
                continue  # a batch of one breaks batch statistics and adds noise
            optimiser.zero_grad(set_to_none=True)
            loss = _loss(model, gather(idx), y_t[idx], weight, cfg.loss, cfg.focal_gamma)
            loss.backward()
            optimiser.step()
        if len(va) == 0:
            continue
        val_loss = evaluate_loss(model, gather, y_t, va, weight, cfg.batch_size)
        if val_loss < best_loss - 1e-6:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    report = TrainReport(epochs_run=epoch, best_epoch=best_epoch or epoch, best_val_loss=best_loss,
                         n_train=len(tr), n_val=len(va))
    log.debug("trained %s: %s", type(model).__name__, report)
    return report


@torch.no_grad()
def evaluate_loss(model: nn.Module, gather: Callable[[np.ndarray], Batch], y: torch.Tensor, idx: np.ndarray,
                  weight: torch.Tensor | None, batch_size: int) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        logits = model(gather(part))
        total += float(nn.functional.cross_entropy(logits, y[part], weight=weight, reduction="sum"))
    return total / max(len(idx), 1)


@torch.no_grad()
def predict_proba(model: nn.Module, gather: Callable[[np.ndarray], Batch], n: int, batch_size: int = 1024,
                  threads: int = 1) -> np.ndarray:
    """Softmax probabilities of rows 0..n-1."""
    model.eval()
    out = []
    with torch_threads(threads):
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            out.append(torch.softmax(model(gather(idx)), dim=-1).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))

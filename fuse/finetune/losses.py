"""Losses and sampling for imbalanced classes: class-weighted cross-entropy, focal loss, a class-balanced order."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``w_y (1 - p_y)^gamma (-log p_y)`` weighted like ``cross_entropy`` (gamma 0 = weighted CE)."""
    logp = F.log_softmax(logits.float(), dim=-1).gather(1, y[:, None]).squeeze(1)
    per_row = -((1.0 - logp.exp()).clamp_min(0.0) ** gamma) * logp
    if weight is None:
        return per_row.mean()
    w = weight.to(per_row.device)[y]
    return (w * per_row).sum() / w.sum().clamp_min(1e-12)


def classification_loss(logits: torch.Tensor, y: torch.Tensor, *, kind: str = "ce", gamma: float = 2.0,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
    """``kind`` "ce" (cross-entropy) or "focal", optionally class-weighted."""
    if kind == "focal":
        return focal_loss(logits, y, gamma, weight)
    if kind != "ce":
        raise ValueError(f"loss {kind!r} is not one of 'ce', 'focal'")
    return F.cross_entropy(logits.float(), y, weight=None if weight is None else weight.to(logits.device))


def balanced_order(y: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``len(rows)`` rows drawn with replacement, each class equally likely (a weighted sampler's epoch)."""
    labels = y[rows]
    counts = np.bincount(labels)
    p = 1.0 / counts[labels]
    return rng.choice(rows, size=len(rows), replace=True, p=p / p.sum())

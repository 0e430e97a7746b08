"""Torch heads: an MLP over feature vectors, and the cross-modal transformer over two window sequences."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class MLPHead(nn.Module):
    """Linear -> GELU -> dropout -> linear. Batch: {"x": (B, d)}."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["x"])


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward; gradient multiplied by -lam backward (domain-adversarial training)."""
    return _GradReverse.apply(x, lam)


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return pe


class _CrossBlock(nn.Module):
    """Queries of one modality attend to the other's keys/values; residual, norm and a feed-forward."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(2 * d_model, d_model))
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_pad: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attn(q, kv, kv, key_padding_mask=kv_pad, need_weights=False)
        h = self.norm1(q + attended)
        return self.norm2(h + self.ff(h))


class CrossModalTransformer(nn.Module):
    """Window sequences of two or more modalities (EEG, face, audio, ...) -> class logits.

    Per-modality linear projections + sinusoidal positions + a learned modality embedding; cross-modal attention
    for every modality (its queries attend to the positions of all the other modalities together: with two, EEG
    attends to face and face to EEG); one self-attention encoder layer over all sequences together (a shared token
    space); masked mean pooling per modality; a learned gate (softmax over the modalities, from all pooled vectors)
    weights them; a linear classifier. With ``n_subjects`` and ``adversary_lambda`` > 0 a subject classifier sits
    behind gradient reversal, pushing the fused vector to forget who the subject is.

    ``dims``: {modality: feature dim}, in the order the batch lists them. Batch: {m: (B, L, d_m), f"{m}_pad":
    (B, L) bool for each modality m, optional "subject": (B,) int}. ``*_pad`` is True where a position is padding
    or the modality is missing.
    """

    def __init__(self, dims: dict[str, int], n_classes: int, *, d_model: int = 64, heads: int = 4,
                 dropout: float = 0.1, max_len: int = 512, n_subjects: int = 0, adversary_lambda: float = 0.0) -> None:
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"the cross-modal transformer needs two or more modalities, got {list(dims)}")
        self.names = list(dims)
        self.proj = nn.ModuleDict({m: nn.Linear(int(d), d_model) for m, d in dims.items()})
        self.modality = nn.ParameterDict({m: nn.Parameter(torch.zeros(d_model)) for m in self.names})
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.cross = nn.ModuleDict({m: _CrossBlock(d_model, heads, dropout) for m in self.names})
        self.encoder = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=dropout,
                                                  batch_first=True, norm_first=True)
        self.gate = nn.Linear(len(self.names) * d_model, len(self.names))
        self.head = nn.Linear(d_model, n_classes)
        self.adversary_lambda = float(adversary_lambda)
        self.adversary = (
            nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, n_subjects))
            if n_subjects > 1 and adversary_lambda > 0 else None
        )
        self.last_gate: torch.Tensor | None = None

    def _embed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        return self.dropout(self.proj[name](x) + self.positions[:length] + self.modality[name])

    @staticmethod
    def _masked_mean(h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return (h * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)

    def fused(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pads = {}
        for m in self.names:
            pad = batch[f"{m}_pad"].clone()
            # a sequence with nothing valid would make attention NaN: let it see its (zeroed) first position
            pad[pad.all(dim=1), 0] = False
            pads[m] = pad
        tokens = {m: self._embed(m, batch[m]) for m in self.names}
        attended = []
        for m in self.names:  # m's queries attend to every other modality's positions
            others = [o for o in self.names if o != m]
            kv = torch.cat([tokens[o] for o in others], dim=1)
            kv_pad = torch.cat([pads[o] for o in others], dim=1)
            attended.append(self.cross[m](tokens[m], kv, kv_pad))
        lengths = [t.shape[1] for t in attended]
        joint = self.encoder(torch.cat(attended, dim=1),
                             src_key_padding_mask=torch.cat([pads[m] for m in self.names], dim=1))
        pooled = [self._masked_mean(part, pads[m])
                  for part, m in zip(torch.split(joint, lengths, dim=1), self.names, strict=True)]
        gate = torch.softmax(self.gate(torch.cat(pooled, dim=-1)), dim=-1)
        self.last_gate = gate.detach()
        return sum(gate[:, i : i + 1] * h for i, h in enumerate(pooled))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.fused(batch))

    def loss(self, batch: dict[str, torch.Tensor], y: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        z = self.fused(batch)
        loss = nn.functional.cross_entropy(self.head(z), y, weight=weight)
        if self.adversary is not None and "subject" in batch:
            logits = self.adversary(grad_reverse(z, self.adversary_lambda))
            loss = loss + nn.functional.cross_entropy(logits, batch["subject"])
        return loss

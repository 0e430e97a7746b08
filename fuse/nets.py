"""Torch heads: an MLP over feature vectors, and the cross-modal transformer over two window sequences."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fuse.finetune.losses import classification_loss


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

        self.last_weights: torch.Tensor | None = None  # (B, Lq, Lkv) head-averaged, when keep_weights is set
        self.keep_weights = False

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_pad: torch.Tensor) -> torch.Tensor:
        attended, weights = self.attn(q, kv, kv, key_padding_mask=kv_pad, need_weights=self.keep_weights)
        self.last_weights = None if weights is None else weights.detach()
        h = self.norm1(q + attended)
        return self.norm2(h + self.ff(h))


def dann_lambda(progress: float, lam: float, gamma: float = 10.0) -> float:
    """DANN's schedule for the gradient-reversal weight: ``lam * (2 / (1 + exp(-gamma * p)) - 1)``, p in [0, 1]."""
    p = min(max(float(progress), 0.0), 1.0)
    return float(lam) * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


class FeatureGate(nn.Module):
    """Per-feature sigmoid importance gate: ``x * sigmoid(W x + b)``; ``last`` keeps the mean gate per feature."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.linear(x))
        self.last = g.detach().mean(dim=tuple(range(g.ndim - 1)))
        return x * g


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

    The reference design's parts are options: ``feature_gate`` (a per-feature sigmoid importance gate on each
    modality's tokens before cross-attention), ``modality_layers`` (a stack of self-attention layers per modality
    before cross-attention), ``head="mlp"`` (Linear -> GELU -> dropout -> Linear), ``adversary_schedule="dann"``
    (the reversal weight ramps up with training progress, see ``dann_lambda``; the loop calls ``set_progress``).
    ``keep_attention`` makes a forward pass keep the cross-attention maps in ``last_attention``.
    """

    def __init__(self, dims: dict[str, int], n_classes: int, *, d_model: int = 64, heads: int = 4,
                 dropout: float = 0.1, max_len: int = 512, n_subjects: int = 0, adversary_lambda: float = 0.0,
                 feature_gate: bool = False, modality_layers: int = 0, head: str = "linear",
                 adversary_schedule: str = "constant") -> None:
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
        self.feature_gates = (nn.ModuleDict({m: FeatureGate(d_model) for m in self.names})
                              if feature_gate else None)
        self.stacks = nn.ModuleDict({
            m: nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model,
                                                                dropout=dropout, batch_first=True, norm_first=True),
                                     num_layers=modality_layers, enable_nested_tensor=False)
            for m in self.names
        }) if modality_layers > 0 else None
        self.gate = nn.Linear(len(self.names) * d_model, len(self.names))
        if head not in ("linear", "mlp"):
            raise ValueError(f"head must be 'linear' or 'mlp', got {head!r}")
        self.head = (nn.Linear(d_model, n_classes) if head == "linear" else
                     nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Dropout(dropout),
                                   nn.Linear(d_model, n_classes)))
        if adversary_schedule not in ("constant", "dann"):
            raise ValueError(f"adversary_schedule must be 'constant' or 'dann', got {adversary_schedule!r}")
        self.adversary_schedule = adversary_schedule
        self.adversary_lambda = float(adversary_lambda)
        self.current_lambda = self.adversary_lambda if adversary_schedule == "constant" else 0.0
        self.adversary = (
            nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, n_subjects))
            if n_subjects > 1 and adversary_lambda > 0 else None
        )
        self.last_gate: torch.Tensor | None = None
        self.last_attention: dict[str, torch.Tensor] = {}

    @property
    def keep_attention(self) -> bool:
        return all(block.keep_weights for block in self.cross.values())

    @keep_attention.setter
    def keep_attention(self, value: bool) -> None:
        for block in self.cross.values():
            block.keep_weights = bool(value)

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1] (called by the training loop each epoch): sets the reversal weight."""
        if self.adversary_schedule == "dann":
            self.current_lambda = dann_lambda(progress, self.adversary_lambda)

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
        if self.feature_gates is not None:
            tokens = {m: self.feature_gates[m](tokens[m]) for m in self.names}
        if self.stacks is not None:
            tokens = {m: self.stacks[m](tokens[m], src_key_padding_mask=pads[m]) for m in self.names}
        attended = []
        for m in self.names:  # m's queries attend to every other modality's positions
            others = [o for o in self.names if o != m]
            kv = torch.cat([tokens[o] for o in others], dim=1)
            kv_pad = torch.cat([pads[o] for o in others], dim=1)
            attended.append(self.cross[m](tokens[m], kv, kv_pad))
        if self.keep_attention:  # with two modalities: eeg_to_face, face_to_eeg
            self.last_attention = {f"{m}_to_{'+'.join(o for o in self.names if o != m)}": self.cross[m].last_weights
                                   for m in self.names}
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

    def loss(self, batch: dict[str, torch.Tensor], y: torch.Tensor, weight: torch.Tensor | None,
             kind: str = "ce", gamma: float = 2.0) -> torch.Tensor:
        """The classification loss (``kind`` ce or focal, class-weighted) plus the subject adversary's, if any."""
        z = self.fused(batch)
        loss = classification_loss(self.head(z), y, kind=kind, gamma=gamma, weight=weight)
        if self.adversary is not None and "subject" in batch:
            logits = self.adversary(grad_reverse(z, self.current_lambda))
            loss = loss + nn.functional.cross_entropy(logits, batch["subject"])
        return loss

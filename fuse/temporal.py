"""Temporal heads over the frame sequence of a clip (DFEW's 16 frames, RAVDESS videos), one prediction per clip:

- ``gru``: a bidirectional GRU over the per-frame embeddings, masked mean of its states, linear classifier;
- ``transformer``: a temporal transformer encoder (sinusoidal positions, padding mask), masked mean, linear;
- ``frames``: the baseline — logistic regression on single frames, its log-probabilities averaged per clip.

Every frame row of the face store (valid faces only) enters; clips are cut to ``max_frames`` evenly spaced
frames. Features are standardised with training-clip statistics. The protocol's splits are made over clips, so
no clip has frames on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fuse import train
from fuse.classifiers import LogReg, Preprocessor
from fuse.config import FuseConfig, TrainConfig, config_to_dict
from fuse.errors import FuseInputError
from fuse.inputs import FuseDataError, ModalityData
from fuse.nets import sinusoidal_positions

if TYPE_CHECKING:
    from fuse.protocols import Split
    from fuse.targets import Target

TEMPORAL_HEADS = ("gru", "transformer", "frames")


@dataclass
class Clips:
    """Clip table (one row per item) and its frames: ``frames`` (N, d) with ``index`` (n, L) into it (-1 = pad)."""

    rows: pd.DataFrame
    frames: np.ndarray
    index: np.ndarray


def clip_sequences(modality: ModalityData, max_frames: int = 16) -> Clips:
    """Group a face store's valid rows into clips (item order kept; frames in row order, evenly subsampled)."""
    valid = modality.valid()
    rows = modality.rows.loc[valid].reset_index(drop=True)
    frames = modality.embeddings[valid]
    if len(rows) == 0:
        raise FuseDataError(f"store {modality.path}: no valid frame rows for a temporal head")
    order = np.lexsort((rows["row"].to_numpy(), pd.factorize(rows["item"])[0]))
    rows, frames = rows.iloc[order].reset_index(drop=True), frames[order]
    codes, uniq = pd.factorize(rows["item"])
    members = np.split(np.arange(len(rows)), np.flatnonzero(np.diff(codes)) + 1)
    length = max(1, min(max_frames, max(len(m) for m in members)))
    index = np.full((len(members), length), -1, dtype=np.int64)
    for i, member in enumerate(members):
        if len(member) > length:
            member = member[np.linspace(0, len(member) - 1, length).round().astype(int)]
        index[i, : len(member)] = member
    first = [m[0] for m in members]
    clip_rows = rows.iloc[first].reset_index(drop=True).copy()
    clip_rows["n_frames"] = [len(m) for m in members]
    assert list(clip_rows["item"]) == list(uniq)
    return Clips(rows=clip_rows, frames=frames, index=index)


class TemporalHead(nn.Module):
    """Per-frame projection -> GRU or transformer over the clip -> masked mean -> logits. Batch {"x", "pad"}."""

    def __init__(self, in_dim: int, n_classes: int, *, kind: str = "gru", d_model: int = 64, heads: int = 4,
                 layers: int = 1, dropout: float = 0.1, max_len: int = 64) -> None:
        super().__init__()
        if kind not in ("gru", "transformer"):
            raise FuseInputError(f"temporal head kind must be gru or transformer, got {kind!r}")
        self.kind = kind
        self.proj = nn.Linear(in_dim, d_model)
        if kind == "gru":
            self.seq = nn.GRU(d_model, d_model // 2, num_layers=layers, batch_first=True, bidirectional=True)
        else:
            layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=dropout,
                                               batch_first=True, norm_first=True)
            self.seq = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
            self.register_buffer("positions", sinusoidal_positions(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pad = batch["pad"]
        h = self.proj(batch["x"])
        if self.kind == "gru":
            h, _ = self.seq(h)
        else:
            h = self.seq(h + self.positions[: h.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)
        return self.head(self.dropout(pooled))


def _batcher(frames: np.ndarray, index: np.ndarray) -> Any:
    pool = torch.as_tensor(np.asarray(frames, dtype=np.float32))

    def gather(rows: np.ndarray) -> dict[str, torch.Tensor]:
        idx = index[rows]
        return {"x": pool[np.where(idx < 0, 0, idx)] * torch.as_tensor(idx >= 0).unsqueeze(-1),
                "pad": torch.as_tensor(idx < 0)}

    return gather


def fit_predict(kind: str, clips: Clips, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                n_classes: int, *, seed: int = 0, train_cfg: TrainConfig | None = None, d_model: int = 64,
                heads: int = 4) -> np.ndarray:
    """Train head ``kind`` on the training clips and return (len(test_idx), C) probabilities of the test clips."""
    if kind not in TEMPORAL_HEADS:
        raise FuseInputError(f"temporal head must be one of {', '.join(TEMPORAL_HEADS)}, got {kind!r}")
    train_cfg = train_cfg or TrainConfig()
    tr_frames = np.unique(clips.index[train_idx][clips.index[train_idx] >= 0])
    prep = Preprocessor(seed=seed).fit(clips.frames[tr_frames])
    frames = prep.transform(clips.frames)
    if kind == "frames":  # per-frame logreg; a clip's score = mean of its frames' log-probabilities
        frame_clip = np.repeat(np.arange(len(clips.index)), clips.index.shape[1]).reshape(clips.index.shape)
        use = clips.index[train_idx]
        X = frames[use[use >= 0]]
        y_frames = np.repeat(y[train_idx], (use >= 0).sum(axis=1))
        clf = LogReg(n_classes, seed=seed).fit(X, y_frames, frame_clip[train_idx][use >= 0])
        test = clips.index[test_idx]
        logp = np.log(np.clip(clf.predict_proba(frames[np.where(test < 0, 0, test)].reshape(-1, frames.shape[1])),
                              1e-12, None)).reshape(len(test_idx), test.shape[1], n_classes)
        mask = (test >= 0)[..., None]
        mean = (logp * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1, None)
        mean -= mean.max(axis=1, keepdims=True)
        proba = np.exp(mean)
        return proba / proba.sum(axis=1, keepdims=True)
    torch.manual_seed(seed)
    net = TemporalHead(frames.shape[1], n_classes, kind=kind, d_model=d_model, heads=heads,
                       max_len=max(clips.index.shape[1], 1))
    gather = _batcher(frames, clips.index)
    sub = {"train": lambda rows: gather(train_idx[rows]), "test": lambda rows: gather(test_idx[rows])}
    train.fit(net, sub["train"], y[train_idx], train_idx, n_classes, train_cfg, seed=seed)
    return train.predict_proba(net, sub["test"], len(test_idx), threads=train_cfg.threads)


def _labelled_clips(cfg: FuseConfig, face: ModalityData) -> tuple[Clips, Target, np.ndarray]:
    """The face store's clip sequences that have the target's label: (clips, target, their rows in the target)."""
    from fuse.targets import make_target

    clips = clip_sequences(face, cfg.temporal_frames)
    names = face.manifest.get("label_names", {}).get(cfg.target)
    target = make_target(clips.rows, cfg.target, threshold=cfg.threshold, side=cfg.threshold_side,
                         dataset=face.dataset, class_names=names)
    keep = np.flatnonzero(target.codes >= 0)
    clips = Clips(rows=clips.rows.iloc[keep].reset_index(drop=True), frames=clips.frames, index=clips.index[keep])
    return clips, target, keep


def _cross_validate(cfg: FuseConfig, clips: Clips, y: np.ndarray, classes: list[str],
                    splits: list[Split]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The temporal head fitted and tested on every split: predictions and each split's training class count."""
    from fuse.metrics import majority_class

    n_classes = len(classes)
    parts, train_classes = [], {}
    for i, split in enumerate(splits):
        proba = fit_predict(cfg.temporal, clips, y, split.train, split.test, n_classes, seed=cfg.seed + i,
                            train_cfg=cfg.train, d_model=cfg.transformer.d_model, heads=cfg.transformer.heads)
        part = clips.rows.iloc[split.test][["item", "subject", "session", "trial", "row", "t_start_s",
                                            "t_end_s"]].copy()
        part.insert(2, "fold", split.name)
        part["y_true"], part["y_pred"] = y[split.test], proba.argmax(axis=1)
        part["y_baseline"] = majority_class(y[split.train], n_classes)
        for c, name in enumerate(classes):
            part[f"p_{name}"] = proba[:, c]
        parts.append(part)
        train_classes[split.name] = int(len(np.unique(y[split.train])))
    return pd.concat(parts, ignore_index=True), train_classes


def run_temporal(cfg: FuseConfig, modalities: list[ModalityData], *, write: bool = True) -> Any:
    """``pipeline fuse --temporal HEAD``: one prediction per clip of the face store, under ``cfg.protocol``."""
    from fuse.interpret import reliability, subject_spread, write_interpretation
    from fuse.metrics import fold_table, subject_table, summarise
    from fuse.protocols import make_splits
    from fuse.results import write_results
    from fuse.run import RunResult, resolve

    cfg = resolve(cfg)
    faces = [m for m in modalities if m.role == "face"]
    if not faces:
        raise FuseDataError("a temporal head needs a face store (frame sequences of clips)")
    face = faces[0]
    clips, target, keep = _labelled_clips(cfg, face)
    y = target.codes[keep]
    n_classes = len(target.classes)
    splits = make_splits(cfg.protocol, clips.rows, y, k=cfg.k, seed=cfg.seed)
    predictions, train_classes = _cross_validate(cfg, clips, y, list(target.classes), splits)
    proba_cols = [f"p_{c}" for c in target.classes]
    per_fold, per_subject = fold_table(predictions), subject_table(predictions)
    per_fold["n_train_classes"] = per_fold["fold"].map(train_classes)
    per_fold["single_class"] = (per_fold["n_test_classes"] < 2) | (per_fold["n_train_classes"] < 2)
    _, ece = reliability(predictions[proba_cols].to_numpy(), predictions["y_true"].to_numpy())
    metrics: dict[str, Any] = {
        "strategy": f"temporal-{cfg.temporal}", "classifier": cfg.temporal, "protocol": cfg.protocol,
        "granularity": "clip", "dataset": face.dataset, "seed": cfg.seed, "target": target.describe(),
        "classes": list(target.classes), "rows": {"total": int(len(target.codes)), "used": int(len(keep))},
        "frames_per_clip": int(clips.index.shape[1]), "n_items": int(len(keep)),
        "n_subjects": int(clips.rows["subject"].nunique()), "n_folds": len(splits),
        **summarise(predictions, n_classes, proba_cols), "across_subjects": subject_spread(per_subject),
        "calibration": {"ece": ece, "n_bins": 10},
        "single_class_folds": per_fold.loc[per_fold["single_class"], "fold"].tolist(),
        "stores": {"face": {"fingerprint": face.fingerprint, "path": face.path}},
    }
    out = None
    if write:
        title = f"temporal-{cfg.temporal} {target.name} {cfg.protocol} (clip)"
        out = write_results(cfg.out, config=config_to_dict(cfg), metrics=metrics, per_fold=per_fold,
                            per_subject=per_subject, predictions=predictions,
                            splits=[s.manifest(clips.rows) for s in splits], stores={"face": face.source()},
                            classes=list(target.classes),
                            extra=lambda d: write_interpretation(d, predictions=predictions, per_subject=per_subject,
                                                                 classes=list(target.classes), title=title))
    return RunResult(out=out, config=cfg, metrics=metrics, predictions=predictions, per_fold=per_fold,
                     per_subject=per_subject, table=None, final_model=None)

"""``run_finetune``: a crop store -> per-split fine-tuned models -> frame- and clip-level metrics -> results dir.

Splits come from ``fuse.protocols`` (no trial on both sides, checked); inside each training side the early-stopping
split holds whole trials out (``fuse.train.inner_split``). Clip-level scores average each test item's frame logits.
Each split checkpoints into ``<checkpoint_dir>/<split>/`` and records its predictions there when done, so a re-run
of a killed run skips finished splits and resumes the unfinished one after its last finished epoch.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fuse.errors import FuseInputError
from fuse.finetune.backbones import FinetuneNet, build_from_arch, create_adapter
from fuse.finetune.checkpoint import load_weights, save_weights
from fuse.finetune.config import FinetuneConfig
from fuse.finetune.data import CropData, load_crops
from fuse.finetune.train import FitReport, fit, predict_logits
from fuse.metrics import fold_table, majority_class, scores, subject_table, summarise
from fuse.protocols import Split, make_splits
from fuse.results import check_out_free, write_results
from fuse.targets import Target, make_target
from fuse.train import torch_threads

log = logging.getLogger(__name__)

ROW_COLUMNS = ["item", "subject", "session", "trial", "row", "t_start_s", "t_end_s"]
MODEL_FILES = ("finetune.json", "model.safetensors")


@dataclass
class FinetuneResult:
    out: Path | None
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    reports: dict[str, FitReport]


def build_net(cfg: FinetuneConfig, n_classes: int, seed: int) -> tuple[FinetuneNet, list[str]]:
    """A fresh net (head drawn from ``seed``) with ``cfg.frozen_layers`` frozen; returns it and the frozen names."""
    torch.manual_seed(seed)
    net = FinetuneNet(create_adapter(cfg.backbone, cfg.weights), n_classes, dropout=cfg.dropout)
    return net, net.freeze(cfg.frozen_layers)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def clip_scores(predictions: pd.DataFrame, logit_columns: list[str]) -> dict[str, Any]:
    """Per item: mean of its frames' logits -> one prediction (the DFEW seed's test-time averaging)."""
    grouped = predictions.groupby("item", sort=False)
    mean_logits = grouped[logit_columns].mean().to_numpy()
    first = grouped[["y_true", "y_baseline"]].first()
    return {"n_items": int(len(first)), "model": scores(first["y_true"].to_numpy(), mean_logits.argmax(axis=1)),
            "baseline": scores(first["y_true"].to_numpy(), first["y_baseline"].to_numpy())}


def save_model(net: FinetuneNet, folder: Path, classes: list[str], cfg: FinetuneConfig, data: CropData) -> None:
    """``finetune.json`` (arch, preprocessing, classes) + ``model.safetensors``: a backbone for
    ``pipeline extract --backbone finetuned:FOLDER`` and a classifier of crops."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(net, folder / "model.safetensors")
    info = {"format": "mmer-finetune", "version": 1, "backbone": net.backbone.spec(), "classes": classes,
            "target": cfg.target, "crop_size": data.crop_size, "store_fingerprint": data.fingerprint,
            "frozen_layers": cfg.frozen_layers, "n_classes": len(classes)}
    (folder / "finetune.json").write_text(json.dumps(info, indent=1))


def load_finetuned(folder: str | Path) -> tuple[FinetuneNet, dict[str, Any]]:
    """A saved fine-tuned model (``models/final`` of a results dir): the net in eval mode and its ``finetune.json``;
    safetensors only (nothing unpickled). For ``pipeline predict`` and for a backbone of a new store."""
    folder = Path(folder)
    if (folder / "models" / "final" / MODEL_FILES[0]).is_file():
        folder = folder / "models" / "final"
    meta_path = folder / MODEL_FILES[0]
    if not meta_path.is_file() or not (folder / MODEL_FILES[1]).is_file():
        raise FileNotFoundError(f"{folder}: no {MODEL_FILES[0]} + {MODEL_FILES[1]} (not a finetuned model folder)")
    info = json.loads(meta_path.read_text())
    if info.get("format") != "mmer-finetune":
        raise FuseInputError(f"{meta_path}: format {info.get('format')!r} is not 'mmer-finetune'")
    spec = info["backbone"]
    net = FinetuneNet(build_from_arch(spec["arch"], spec.get("name", "")), int(info["n_classes"]))
    load_weights(net, folder / MODEL_FILES[1])
    return net.eval(), info


def run_finetune(cfg: FinetuneConfig, *, write: bool = True, stop_after_epoch: int | None = None,
                 data: CropData | None = None, overwrite: bool = False) -> FinetuneResult:
    """Run ``cfg``; ``stop_after_epoch`` interrupts each training after that epoch (a test hook for resuming).
    An existing results directory is refused before any work unless ``overwrite``."""
    if write:
        check_out_free(cfg.resolved_out(), overwrite)
    with torch_threads(cfg.threads):
        return _run(cfg, write, stop_after_epoch, data, overwrite)


@dataclass
class _Labelled:
    """The crops of a run that have the target's label, their codes and the protocol splits over them."""

    data: CropData
    dataset: str
    target: Target
    rows: pd.DataFrame
    crops: np.ndarray
    y: np.ndarray
    splits: list[Split]

    @property
    def classes(self) -> list[str]:
        return list(self.target.classes)


def _labelled(cfg: FinetuneConfig, data: CropData) -> _Labelled:
    """The target of ``cfg`` on ``data``, the labelled rows and crops, and the protocol splits over them."""
    dataset = str(data.manifest.get("dataset", ""))
    names = (data.manifest.get("label_names") or {}).get(cfg.target)
    target = make_target(data.rows, cfg.target, threshold=cfg.threshold, side=cfg.threshold_side, dataset=dataset,
                         class_names=names)
    idx = np.flatnonzero(target.codes >= 0)
    if len(idx) == 0:
        raise FuseInputError(f"{data.path}: no row has the label {cfg.target!r}")
    rows = data.rows.iloc[idx].reset_index(drop=True)
    y = target.codes[idx]
    splits = make_splits(cfg.protocol, rows, y, k=cfg.k, seed=cfg.seed)
    return _Labelled(data=data, dataset=dataset, target=target, rows=rows, crops=data.crops[idx], y=y, splits=splits)


def _fit_split(cfg: FinetuneConfig, lab: _Labelled, i: int, folder: Path,
               stop_after_epoch: int | None) -> tuple[pd.DataFrame, FitReport]:
    """A fresh net fine-tuned on split ``i``'s training crops (checkpoints in ``folder``): its test predictions."""
    split, y, crops, classes = lab.splits[i], lab.y, lab.crops, lab.classes
    n_classes = len(classes)
    net, _ = build_net(cfg, n_classes, cfg.seed + i)
    items = lab.rows["item"].to_numpy()
    report = fit(net, crops[split.train], y[split.train], items[split.train], n_classes, cfg,
                 folder, seed=cfg.seed + i, stop_after_epoch=stop_after_epoch)
    logits = predict_logits(net, crops[split.test], cfg)
    part = lab.rows.iloc[split.test][ROW_COLUMNS].copy()
    part.insert(2, "fold", split.name)
    part["y_true"] = y[split.test]
    part["y_pred"] = logits.argmax(axis=1)
    part["y_baseline"] = majority_class(y[split.train], n_classes)
    proba = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    for c, name in enumerate(classes):
        part[f"p_{name}"] = proba[:, c]
        part[f"logit_{name}"] = logits[:, c]
    return part, report


def _cross_validate(cfg: FinetuneConfig, lab: _Labelled,
                    stop_after_epoch: int | None) -> tuple[pd.DataFrame, dict[str, FitReport]]:
    """Predictions of every split; a split whose predictions a previous run recorded is read, not trained."""
    ckpt_root = Path(cfg.resolved_checkpoint_dir())
    parts, reports = [], {}
    for i, split in enumerate(lab.splits):
        folder = ckpt_root / _safe(split.name)
        done = folder / "predictions.csv"
        if done.is_file():
            parts.append(pd.read_csv(done, dtype={"item": str, "subject": str, "trial": str, "fold": str}))
            continue
        part, reports[split.name] = _fit_split(cfg, lab, i, folder, stop_after_epoch)
        tmp = done.with_name(done.name + ".tmp")
        part.to_csv(tmp, index=False)
        tmp.replace(done)
        parts.append(part)
    predictions = pd.concat(parts, ignore_index=True)
    if predictions.duplicated(["item", "row"]).any():
        raise AssertionError("a row was tested in more than one split")
    return predictions, reports


def _run(cfg: FinetuneConfig, write: bool, stop_after_epoch: int | None, data: CropData | None,
         overwrite: bool = False) -> FinetuneResult:
    """``run_finetune`` under its thread limit: splits, final model, metrics and results directory."""
    t0 = time.perf_counter()
    lab = _labelled(cfg, data if data is not None else load_crops(cfg.store, cfg.frames_per_item))
    data, rows, classes = lab.data, lab.rows, lab.classes
    n_classes = len(classes)
    log.info("finetune %s on %s: %d crops (%d items), %d classes, %d splits", cfg.backbone, data.path, len(rows),
             rows["item"].nunique(), n_classes, len(lab.splits))
    timings: dict[str, float] = {"load_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    predictions, reports = _cross_validate(cfg, lab, stop_after_epoch)
    timings["cv_s"] = time.perf_counter() - t0
    summary = summarise(predictions, n_classes, [f"p_{c}" for c in classes])
    summary["per_clip"] = clip_scores(predictions, [f"logit_{c}" for c in classes])
    final_net: FinetuneNet | None = None
    if cfg.save_final and write:
        t0 = time.perf_counter()
        final_net, _ = build_net(cfg, n_classes, cfg.seed)
        fit(final_net, lab.crops, lab.y, rows["item"].to_numpy(), n_classes, cfg,
            Path(cfg.resolved_checkpoint_dir()) / "final", seed=cfg.seed, stop_after_epoch=stop_after_epoch)
        timings["final_fit_s"] = time.perf_counter() - t0
    metrics: dict[str, Any] = {
        "strategy": "finetune", "classifier": cfg.backbone, "protocol": cfg.protocol, "granularity": "frame",
        "dataset": lab.dataset, "seed": cfg.seed, "target": lab.target.describe(), "classes": classes,
        "rows": {"total": int(len(data.rows)), "used": int(len(rows))}, "n_items": int(rows["item"].nunique()),
        "n_subjects": int(rows["subject"].nunique()), "n_folds": len(lab.splits), "frozen_layers": cfg.frozen_layers,
        **summary, "timing_s": timings,
        "fit": {name: vars(r) for name, r in reports.items()},
        "stores": {"face_crops": {"fingerprint": data.fingerprint, "path": data.path}},
    }
    out = _write(cfg, lab, predictions, metrics, final_net, overwrite) if write else None
    return FinetuneResult(out=out, metrics=metrics, predictions=predictions, reports=reports)


def _write(cfg: FinetuneConfig, lab: _Labelled, predictions: pd.DataFrame, metrics: dict[str, Any],
           final_net: FinetuneNet | None, overwrite: bool) -> Path:
    """The results directory of a fine-tuning run (with the final model when one was trained)."""
    data, classes = lab.data, lab.classes
    stores = {"face_crops": {"path": data.path, "kind": "face_crops", "fingerprint": data.fingerprint,
                             "manifest": data.manifest}}
    out = write_results(
        cfg.resolved_out(), config=cfg.to_dict(), metrics=metrics, per_fold=fold_table(predictions),
        per_subject=subject_table(predictions), predictions=predictions,
        splits=[s.manifest(lab.rows) for s in lab.splits], stores=stores, classes=classes,
        save_model=(lambda d: save_model(final_net, d, classes, cfg, data)) if final_net is not None else None,
        overwrite=overwrite,
    )
    log.info("results in %s", out)
    return out

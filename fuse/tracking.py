"""Optional experiment tracking of a finished run (off by default): ``track="mlflow"`` logs into a local file store
(offline, no server), ``track="wandb"`` into an offline wandb run (``wandb sync`` uploads it later).

What is logged: the resolved config (flattened ``a.b`` params), the stores read (fingerprints as tags), the headline
metrics (fold mean, pooled, baseline, ECE, across-subject mean/std), per-fold metrics (step = fold number, with the
fold name in ``per_fold.csv``) and the PNGs and CSVs of the results directory. Install with ``pip install
mmer-pipeline[mlflow]`` or ``[wandb]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from fuse.config import FuseConfig, config_to_dict
from fuse.errors import FuseInputError, MissingExtraError

log = logging.getLogger(__name__)

EXPERIMENT = "mmer-pipeline"
FOLD_METRICS = ("accuracy", "macro_f1", "uar", "baseline_accuracy", "delta_accuracy")


def flat_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config as ``{"train.epochs": "40", ...}`` (lists joined by commas)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat_params(value, prefix=f"{name}.")
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics a tracker plots: fold mean/std, pooled, baseline, ECE, across subjects."""
    out: dict[str, float] = {}
    for group in ("fold_mean", "fold_std", "pooled"):
        out |= {f"{group}.{k}": float(v) for k, v in metrics.get(group, {}).items()}
    out |= {f"baseline.{k}": float(v) for k, v in metrics.get("baseline", {}).get("fold_mean", {}).items()}
    if "calibration" in metrics:
        out["ece"] = float(metrics["calibration"]["ece"])
    for key in ("accuracy_mean", "accuracy_std"):
        if key in metrics.get("across_subjects", {}):
            out[f"subjects.{key}"] = float(metrics["across_subjects"][key])
    out["delta_accuracy"] = float(metrics.get("delta_accuracy", float("nan")))
    return out


def store_tags(metrics: Mapping[str, Any]) -> dict[str, str]:
    """``store.<role>.fingerprint`` / ``.path`` of every store the run read."""
    tags = {}
    for role, store in metrics.get("stores", {}).items():
        tags[f"store.{role}.fingerprint"] = str(store.get("fingerprint", ""))
        tags[f"store.{role}.path"] = str(store.get("path", ""))
    return tags


def _artifacts(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".csv", ".json", ".yaml")
                  and "models" not in p.relative_to(out).parts)


def track_mlflow(cfg: FuseConfig, out: Path, metrics: Mapping[str, Any], per_fold: pd.DataFrame) -> str:
    """Log the run into an MLflow file store; returns the MLflow run id."""
    try:
        import mlflow
    except ImportError as exc:
        raise MissingExtraError("--track mlflow needs mlflow: pip install 'mmer-pipeline[mlflow]'") from exc
    uri = cfg.track_uri or (out.resolve().parent / "mlruns").as_uri()
    if uri.startswith("file:"):  # MLflow 3 keeps the file store behind an opt-in; it is what works offline
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=out.name) as run:
        params = flat_params(config_to_dict(cfg))
        mlflow.log_params({k: v[:500] for k, v in params.items()})
        mlflow.set_tags(store_tags(metrics) | {"results_dir": str(out.resolve()), "dataset": str(metrics.get("dataset"))})
        mlflow.log_metrics(headline_metrics(metrics))
        for step, rec in enumerate(per_fold.to_dict("records")):
            mlflow.log_metrics({f"fold.{m}": float(rec[m]) for m in FOLD_METRICS if m in rec}, step=step)
        for path in _artifacts(out):
            parent = path.parent.relative_to(out)
            mlflow.log_artifact(str(path), artifact_path=None if str(parent) == "." else str(parent))
        run_id = run.info.run_id
    log.info("mlflow run %s in %s", run_id, uri)
    return run_id


def track_wandb(cfg: FuseConfig, out: Path, metrics: Mapping[str, Any], per_fold: pd.DataFrame) -> str:
    """Log the run into an offline wandb run under ``track_uri`` (default: the results directory); returns its id."""
    try:
        import wandb
    except ImportError as exc:
        raise MissingExtraError("--track wandb needs wandb: pip install 'mmer-pipeline[wandb]'") from exc
    run = wandb.init(project=EXPERIMENT, name=out.name, mode="offline", dir=cfg.track_uri or str(out),
                     config=config_to_dict(cfg), tags=[cfg.strategy, cfg.protocol])
    try:
        run.summary.update(store_tags(metrics))
        for rec in per_fold.to_dict("records"):
            run.log({f"fold.{m}": float(rec[m]) for m in FOLD_METRICS if m in rec})
        run.log(headline_metrics(metrics))
        run.log({p.stem: wandb.Image(str(p)) for p in _artifacts(out) if p.suffix == ".png"})
        return str(run.id)
    finally:
        run.finish()


def track_run(cfg: FuseConfig, out: Path, metrics: Mapping[str, Any], per_fold: pd.DataFrame) -> str:
    """Log a finished run to ``cfg.track``; returns the tracker's run id."""
    if cfg.track == "mlflow":
        return track_mlflow(cfg, Path(out), metrics, per_fold)
    if cfg.track == "wandb":
        return track_wandb(cfg, Path(out), metrics, per_fold)
    raise FuseInputError(f"track must be mlflow or wandb, got {cfg.track!r}")

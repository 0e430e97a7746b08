"""The results directory of one run, written whole (``NAME.partial`` then renamed), and read back.

Layout::

    config.yaml        resolved config; `pipeline fuse --config config.yaml` repeats the run
    metrics.json       headline metrics (fold mean/std, pooled, per item) with the majority baseline beside them
    per_fold.csv       one row per split: model and baseline scores
    per_subject.csv    one row per subject
    predictions.csv    one row per test row: item, row, fold, y_true, y_pred, y_baseline, p_<class>
    splits.json        fold -> train items, test items
    stores.json        the stores read: path, kind, fingerprint, manifest
    confusion.png      confusion matrix (pooled over folds)
    per_subject.png    accuracy per subject with the majority baseline
    calibration.csv, reliability.png, subject_variability.png, gates_*.csv, gates.png, attention/*.png
                       see fuse.interpret
    models/final/      model.json + weights.safetensors (trained on all rows; see fuse.models)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

RESULT_FILES = ("config.yaml", "metrics.json", "per_fold.csv", "per_subject.csv", "predictions.csv", "splits.json",
                "stores.json", "confusion.png", "per_subject.png")


def _json(data: Any) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        return str(value)

    return json.dumps(data, indent=2, default=default) + "\n"


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    size = 1.2 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="row-normalised")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_subjects(per_subject: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_subject)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * n + 2), 3.6))
    x = np.arange(n)
    ax.bar(x, per_subject["accuracy"], color="#4c72b0", label="model")
    ax.scatter(x, per_subject["baseline_accuracy"], color="#dd8452", marker="_", s=300, linewidths=3,
               label="majority baseline", zorder=3)
    ax.axhline(per_subject["accuracy"].mean(), color="#4c72b0", ls="--", lw=1, label="model mean")
    ax.axhline(per_subject["baseline_accuracy"].mean(), color="#dd8452", ls=":", lw=1, label="baseline mean")
    ax.set_xticks(x, per_subject["subject"].astype(str), rotation=90, fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(
    out: str | Path,
    *,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    per_fold: pd.DataFrame,
    per_subject: pd.DataFrame,
    predictions: pd.DataFrame,
    splits: list[dict[str, Any]],
    stores: Mapping[str, Any],
    classes: list[str],
    save_model: Any = None,
    extra: Callable[[Path], Any] | None = None,
) -> Path:
    """Write every file into ``out.partial`` and then swap it in for ``out`` (an earlier result is replaced)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
    (tmp / "metrics.json").write_text(_json(metrics))
    per_fold.to_csv(tmp / "per_fold.csv", index=False, float_format="%.6g")
    per_subject.to_csv(tmp / "per_subject.csv", index=False, float_format="%.6g")
    predictions.to_csv(tmp / "predictions.csv", index=False, float_format="%.6g")
    (tmp / "splits.json").write_text(_json({"protocol": metrics.get("protocol"), "folds": splits}))
    (tmp / "stores.json").write_text(_json(stores))
    title = f"{metrics.get('strategy')}/{metrics.get('classifier')} {metrics.get('target', {}).get('name')} " \
            f"{metrics.get('protocol')}"
    plot_confusion(np.asarray(metrics["confusion_matrix"]), classes, tmp / "confusion.png", title)
    plot_subjects(per_subject, tmp / "per_subject.png", title)
    if extra is not None:  # more files of the run (fuse.interpret), written into the same partial directory
        extra(tmp)
    if save_model is not None:
        save_model(tmp / "models" / "final")
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def read_results(path: str | Path) -> dict[str, Any]:
    """metrics.json (+ per_fold.csv as a DataFrame under "per_fold") of a results directory."""
    path = Path(path)
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{path}: not a results directory (no metrics.json); make one with `pipeline fuse`")
    out = json.loads(metrics_file.read_text())
    fold_file = path / "per_fold.csv"
    out["per_fold"] = pd.read_csv(fold_file) if fold_file.is_file() else pd.DataFrame()
    return out

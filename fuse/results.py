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

from fuse.config import SINGLE_MODALITY
from fuse.errors import FuseInputError

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


MAX_SUBJECT_BARS = 40  # more subjects (DFEW/FER2013 clips as "subjects") are drawn as a distribution instead


def plot_subjects(per_subject: pd.DataFrame, path: Path, title: str, max_bars: int = MAX_SUBJECT_BARS) -> None:
    """One bar per subject with its majority baseline, up to ``max_bars`` subjects; beyond, a histogram of the
    per-subject accuracies of model and baseline (a fixed-size figure; per_subject.csv keeps every subject)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_subject)
    if n > max_bars:
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
        bins = np.linspace(0, 1, 21)
        ax.hist(per_subject["accuracy"], bins=bins, color="#4c72b0", alpha=0.8, label="model")
        ax.hist(per_subject["baseline_accuracy"], bins=bins, histtype="step", color="#dd8452", lw=2,
                label="majority baseline")
        ax.axvline(per_subject["accuracy"].mean(), color="#4c72b0", ls="--", lw=1, label="model mean")
        ax.axvline(per_subject["baseline_accuracy"].mean(), color="#dd8452", ls=":", lw=1, label="baseline mean")
        ax.set_xlabel(f"accuracy per subject ({n} subjects; per_subject.csv lists each)")
        ax.set_ylabel("subjects")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
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
    ax.legend(fontsize=6.5, loc="upper center", ncol=4, frameon=False, markerscale=0.4, handlelength=1.5,
              columnspacing=1.0, borderaxespad=0.2)  # fits inside the 1.0-1.15 band of the narrowest figure
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class ResultsExistError(FileExistsError):
    """The results directory of an earlier run is in the way; nothing is replaced silently."""


def check_out_free(out: str | Path, overwrite: bool = False) -> None:
    """Refuse an existing ``out`` (unless ``overwrite``): results directories are never replaced silently."""
    out = Path(out)
    if overwrite or not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    what = "holds an earlier run's results" if (out / "metrics.json").is_file() else "exists and is not empty"
    raise ResultsExistError(f"{out} {what}; pass --overwrite to replace it, or --out NEW_DIR")


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
    overwrite: bool = False,
    extra: Callable[[Path], Any] | None = None,
) -> Path:
    """Write every file into ``out.partial`` and then swap it in for ``out``; an earlier result there is refused
    (ResultsExistError) unless ``overwrite``."""
    out = Path(out)
    check_out_free(out, overwrite)
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
    model = "/".join(dict.fromkeys(str(metrics.get(k)) for k in ("strategy", "classifier")))  # not transformer/transformer
    title = f"{model} {metrics.get('target', {}).get('name')} {metrics.get('protocol')}"
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


COMPARE_FORMATS = ("table", "csv", "md", "json")
COMPARE_SORTS = ("name", "acc", "f1", "uar", "delta", "rows")


def used_modalities(res: Mapping[str, Any]) -> list[str]:
    """The roles a run's model read: recorded in metrics.json (``modalities``), else implied by its strategy."""
    if res.get("modalities"):
        return list(res["modalities"])
    strategy = res.get("strategy", "")
    return [strategy] if strategy in SINGLE_MODALITY else ["eeg", "face"]


def features_label(directory: str | Path, res: Mapping[str, Any]) -> str:
    """The extractors of the modalities the run used, e.g. ``face/mtcnn+clip-vit-l14 (in EEG windows)``: a face-
    only run that read the EEG store only for its windows is labelled by the face store alone."""
    path = Path(directory) / "stores.json"
    stores = json.loads(path.read_text()) if path.is_file() else {}
    used = used_modalities(res)
    names = [str(stores.get(r, {}).get("manifest", {}).get("extractor") or r) for r in used]
    label = " + ".join(names)
    if used == ["face"] and "eeg" in stores:
        label += " (in EEG windows)"
    return label


def compare_rows(directories: list[Path]) -> list[dict[str, Any]]:
    """One record per results directory: name, features used, settings, rows used/total, fold-mean scores."""
    out = []
    for directory in directories:
        res = read_results(directory)
        mean, base = res["fold_mean"], res["baseline"]["fold_mean"]
        rows = res.get("rows", {})
        out.append({"run": Path(directory).name or str(directory), "features": features_label(directory, res),
                    "strategy": res["strategy"], "classifier": res["classifier"], "target": res["target"]["name"],
                    "protocol": res["protocol"], "granularity": res["granularity"],
                    "rows": int(rows.get("used", 0)), "rows_total": int(rows.get("total", 0)),
                    "acc": mean["accuracy"], "f1": mean["macro_f1"], "uar": mean["uar"],
                    "baseline_acc": base["accuracy"], "delta_acc": mean["accuracy"] - base["accuracy"],
                    "path": str(directory)})
    return out


def sort_rows(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """By run name (ascending) or a score / row count (descending)."""
    if key not in COMPARE_SORTS:
        raise FuseInputError(f"--sort must be one of {', '.join(COMPARE_SORTS)}; got {key!r}")
    column = {"delta": "delta_acc"}.get(key, "run" if key == "name" else key)
    return sorted(rows, key=lambda r: r[column], reverse=key != "name")


def format_rows(rows: list[dict[str, Any]], fmt: str) -> str:
    """``csv`` / ``json``: raw fractions, every field; ``md``: the printed table (percentages) as Markdown."""
    if fmt == "json":
        return _json(rows)
    if fmt == "csv":
        return pd.DataFrame(rows).to_csv(index=False, float_format="%.6g")
    if fmt == "md":
        head = ["run", "features", "strategy", "classifier", "target", "protocol", "rows", "acc", "macro-F1", "UAR",
                "baseline acc", "Δ acc"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [r["run"], r["features"], r["strategy"], r["classifier"], r["target"], r["protocol"],
                     f"{r['rows']}/{r['rows_total']}", *(f"{100 * r[k]:.1f}" for k in ("acc", "f1", "uar",
                                                                                       "baseline_acc")),
                     f"{100 * r['delta_acc']:+.1f}"]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"
    raise FuseInputError(f"--format must be one of {', '.join(COMPARE_FORMATS)}; got {fmt!r}")


def read_results(path: str | Path) -> dict[str, Any]:
    """metrics.json (+ per_fold.csv as a DataFrame under "per_fold") of a results directory."""
    path = Path(path)
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{path}: not a results directory (no metrics.json); make one with `pipeline fuse`")
    try:
        out = json.loads(metrics_file.read_text())
    except ValueError as exc:  # a damaged results directory is bad input, named in one line
        raise FuseInputError(f"{metrics_file}: not valid JSON ({exc})") from exc
    fold_file = path / "per_fold.csv"
    out["per_fold"] = pd.read_csv(fold_file) if fold_file.is_file() else pd.DataFrame()
    return out

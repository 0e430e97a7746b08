"""What a run's predictions say beyond accuracy: calibration (reliability diagram, ECE), per-subject variability
against the majority baseline, and for the transformer its modality gate weights and cross-modal attention maps.

Pure functions (``reliability``, ``gate_tables``, ``subject_spread``) compute tables; ``plot_*`` draw them; and
``write_interpretation`` puts the files into a results directory:

    calibration.csv, reliability.png      confidence bins (pooled over folds) and the reliability diagram
    subject_variability.png               per-subject accuracy of model and baseline, mean ± std across subjects
    gates_per_sample.csv                  transformer: one row per test row, its gate weight per modality
    gates_per_subject.csv, gates_per_class.csv, gates.png
    attention/<item>.png                  transformer: cross-attention maps of chosen trials
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GATE_PREFIX = "gate_"  # the transformer's predictions carry one gate_<modality> column per modality
MODALITY_COLOURS = {"eeg": "#55a868", "face": "#c44e52", "eye": "#8172b3", "audio": "#4c72b0", "peripheral": "#ccb974"}


def gate_columns(predictions: pd.DataFrame) -> list[str]:
    """The gate columns of a transformer run's predictions (``gate_eeg``, ``gate_face``, ``gate_audio``, ...)."""
    return [c for c in predictions.columns if c.startswith(GATE_PREFIX)]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability(proba: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Confidence bins (equal width on [0, 1]) of the top-class probability and the expected calibration error
    ECE = sum_b (n_b / n) |accuracy_b - confidence_b|."""
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise ValueError(f"reliability: probabilities {proba.shape} do not match {len(y_true)} labels")
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    n = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, acc = conf_sum / n, acc_sum / n
    bins = pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:], "n": n, "confidence": mean_conf,
                         "accuracy": acc})
    ece = float(np.nansum(n / max(len(y_true), 1) * np.abs(acc - mean_conf)))
    return bins, ece


def plot_reliability(bins: pd.DataFrame, ece: float, path: Path, title: str) -> None:
    """Accuracy per confidence bin against the diagonal, with the bin counts below."""
    plt = _plt()
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(4.6, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = float(bins["bin_hi"].iloc[0] - bins["bin_lo"].iloc[0])
    centres = (bins["bin_lo"] + bins["bin_hi"]).to_numpy() / 2
    has = bins["n"].to_numpy() > 0
    ax.bar(centres[has], bins["accuracy"].to_numpy()[has], width=width * 0.9, color="#4c72b0", label="accuracy")
    ax.bar(centres[has], bins["confidence"].to_numpy()[has], width=width * 0.9, fill=False, edgecolor="#c44e52",
           lw=1.2, label="mean confidence")
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE {ece:.3f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    axn.bar(centres, bins["n"], width=width * 0.9, color="#8c8c8c")
    axn.set_xlabel("confidence (top-class probability)")
    axn.set_ylabel("rows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def subject_spread(per_subject: pd.DataFrame) -> dict[str, float]:
    """Mean ± std (ddof 0) of per-subject accuracy for the model and the majority baseline (as papers report)."""
    acc, base = per_subject["accuracy"].to_numpy(float), per_subject["baseline_accuracy"].to_numpy(float)
    return {"n_subjects": int(len(acc)), "accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc)),
            "baseline_accuracy_mean": float(np.mean(base)), "baseline_accuracy_std": float(np.std(base))}


def plot_subject_variability(per_subject: pd.DataFrame, path: Path, title: str) -> None:
    """Each subject's accuracy (model and baseline joined by a line) with mean ± std bars across subjects."""
    plt = _plt()
    spread = subject_spread(per_subject)
    acc, base = per_subject["accuracy"].to_numpy(float), per_subject["baseline_accuracy"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for a, b in zip(acc, base, strict=True):
        ax.plot([0, 1], [b, a], color="#bbbbbb", lw=0.8, zorder=1)
    jitter = np.random.default_rng(0).uniform(-0.04, 0.04, len(acc))
    ax.scatter(jitter, base, color="#dd8452", s=14, zorder=2, label="majority baseline")
    ax.scatter(1 + jitter, acc, color="#4c72b0", s=14, zorder=2, label="model")
    for x, m, s, colour in ((0, spread["baseline_accuracy_mean"], spread["baseline_accuracy_std"], "#dd8452"),
                            (1, spread["accuracy_mean"], spread["accuracy_std"], "#4c72b0")):
        ax.errorbar(x + 0.18, m, yerr=s, fmt="o", color=colour, capsize=5, ms=6, zorder=3)
        ax.text(x + 0.26, m, f"{100 * m:.1f} ± {100 * s:.1f}", fontsize=7, va="center")
    ax.set_xticks([0, 1], ["baseline", "model"])
    ax.set_xlim(-0.3, 1.85)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("per-subject accuracy")
    ax.set_title(f"{title}\n{spread['n_subjects']} subjects", fontsize=9)
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gate_tables(predictions: pd.DataFrame, classes: list[str]) -> dict[str, pd.DataFrame]:
    """Gate weights (one column per modality) per sample (test row), per subject and per true class (mean, std, n)."""
    gates = gate_columns(predictions)
    if len(gates) < 2:
        raise ValueError("predictions have no gate_<modality> columns (only the transformer strategy has them)")
    cols = ["item", "subject", "fold", "row", "y_true", "y_pred", *gates]
    sample = predictions[[c for c in cols if c in predictions]].copy()
    sample["class"] = [classes[i] for i in sample["y_true"]]

    def summary(by: str) -> pd.DataFrame:
        grouped = sample.groupby(by, sort=True)[gates]
        out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
        return out.join(grouped.size().rename("n")).reset_index()

    per_class = summary("class")  # in the classes' order (low, high), not alphabetical
    per_class = per_class.iloc[np.argsort([classes.index(c) for c in per_class["class"]], kind="stable")]
    return {"sample": sample, "subject": summary("subject"), "class": per_class.reset_index(drop=True)}


def plot_gates(tables: Mapping[str, pd.DataFrame], path: Path, title: str) -> None:
    """Mean gate weight of each modality per subject and per class, stacked to 1 (error bars: spread over rows)."""
    plt = _plt()
    subject, klass = tables["subject"], tables["class"]
    names = [c[len(GATE_PREFIX):-len("_mean")] for c in subject.columns
             if c.startswith(GATE_PREFIX) and c.endswith("_mean")]
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 0.3 * len(subject) + 3.5), 3.6),
                             gridspec_kw={"width_ratios": [max(len(subject), 2), max(len(klass), 2)]})
    for ax, table, key, label in ((axes[0], subject, "subject", "per subject"), (axes[1], klass, "class", "per class")):
        x = np.arange(len(table))
        bottom = np.zeros(len(table))
        for k, name in enumerate(names):
            mean = table[f"{GATE_PREFIX}{name}_mean"].to_numpy()
            ax.bar(x, mean, bottom=bottom, yerr=table[f"{GATE_PREFIX}{name}_std"], capsize=2, label=name,
                   color=MODALITY_COLOURS.get(name, f"C{k}"), alpha=0.85, error_kw={"lw": 0.8})
            bottom = bottom + mean
        ax.axhline(1.0 / max(len(names), 1), color="black", lw=0.8, ls=":")
        ax.set_xticks(x, table[key].astype(str), rotation=90 if key == "subject" else 30, fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_ylim(0, 1.12)
        ax.set_yticks(np.linspace(0, 1, 6))
    axes[0].set_ylabel("modality gate weight")
    axes[1].legend(fontsize=7, loc="upper center", ncol=2, frameon=False, borderaxespad=0.1)  # above the bars
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def attention_panels(maps: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(label, map with padding cut away) for every ``<m>_to_<others>`` map: rows = m's valid positions, columns =
    the valid positions of the other modalities, concatenated in the net's order (as the keys were)."""
    pads = {k[: -len("_pad")]: ~np.asarray(v, bool) for k, v in maps.items() if k.endswith("_pad")}
    panels = []
    for name, weights in maps.items():
        if name.endswith("_pad") or "_to_" not in name:
            continue
        query, others = name.split("_to_", 1)
        keep = np.concatenate([pads[o] for o in others.split("+")])
        panels.append((f"{query} queries -> {others.replace('+', ' + ')} keys",
                       np.asarray(weights)[np.ix_(pads[query], keep)]))
    return panels


def plot_attention(maps: Mapping[str, np.ndarray], path: Path, title: str) -> None:
    """The cross-attention maps of one sequence, one panel per modality's queries (padding cut away)."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    panels = attention_panels(maps)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.8), squeeze=False)
    for ax, (label, w) in zip(axes[0], panels, strict=True):
        im = ax.imshow(w, cmap="viridis", vmin=0, aspect="auto", interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("key window")
        ax.set_ylabel("query window")
        uniform = 1.0 / max(w.shape[1], 1)  # what a query that attends to nothing in particular gives each key
        fig.colorbar(im, ax=ax, fraction=0.046, label=f"attention (uniform = {uniform:.2f})")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _safe_name(item: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", item).strip("_") or "item"


def write_interpretation(out: Path, *, predictions: pd.DataFrame, per_subject: pd.DataFrame, classes: list[str],
                         title: str, attention: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                         n_bins: int = 10) -> dict[str, Any]:
    """Write the interpretation files into ``out``; returns what goes into metrics.json (ECE, subject spread)."""
    proba = predictions[[f"p_{c}" for c in classes]].to_numpy()
    bins, ece = reliability(proba, predictions["y_true"].to_numpy(), n_bins)
    bins.to_csv(out / "calibration.csv", index=False, float_format="%.6g")
    plot_reliability(bins, ece, out / "reliability.png", title)
    plot_subject_variability(per_subject, out / "subject_variability.png", title)
    if len(gate_columns(predictions)) >= 2:
        tables = gate_tables(predictions, classes)
        for name, table in tables.items():
            table.to_csv(out / f"gates_per_{name}.csv", index=False, float_format="%.6g")
        plot_gates(tables, out / "gates.png", title)
    if attention:
        (out / "attention").mkdir(exist_ok=True)
        for item, maps in attention.items():
            plot_attention(maps, out / "attention" / f"{_safe_name(item)}.png", f"{title}\n{item}")
    return {"ece": ece, "n_bins": n_bins}

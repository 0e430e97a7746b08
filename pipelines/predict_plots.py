"""The PNGs of `pipeline predict`: timeline (one panel per face track), class distribution, heatmap, confusion.

Inputs are the tables of pipelines.predict_tables; rows without a face have NaN probabilities and are drawn as
gaps (the timeline's moving average never crosses them, the heatmap leaves them blank).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.predict_tables import prob_columns, smooth

MAX_TRACK_PANELS = 6  # the tracks with the most scored rows; the CSV has them all


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axis(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str, list[str] | None]:
    """(centres, edges, x label, tick labels) of a window table (time) or an image table (one slot per image)."""
    if "t_start_s" in table:
        start, end = table["t_start_s"].to_numpy(float), table["t_end_s"].to_numpy(float)
        return (start + end) / 2, np.append(start, end[-1:]), "time (s)", None
    n = len(table)
    key = "image" if "image" in table else "item" if "item" in table else None
    names = [str(v) if key == "image" else str(v).split("/")[-1] for v in table[key]] if key and n <= 30 else None
    return np.arange(n, dtype=float), np.arange(n + 1, dtype=float) - 0.5, key or "image", names


def _tracks(table: pd.DataFrame, classes: Sequence[str]) -> list[tuple[int, pd.DataFrame]]:
    if "track_id" not in table or table["track_id"].nunique() <= 1:
        return [(int(table["track_id"].iloc[0]) if "track_id" in table and len(table) else -1, table)]
    cols = prob_columns(classes)
    groups = [(int(t), part.reset_index(drop=True)) for t, part in table.groupby("track_id", sort=True)]
    groups.sort(key=lambda g: -int(np.isfinite(g[1][cols].to_numpy(float)).all(axis=1).sum()))
    return sorted(groups[:MAX_TRACK_PANELS], key=lambda g: g[0])


def plot_timeline(table: pd.DataFrame, classes: Sequence[str], path: Path, *, title: str, smooth_windows: int) -> Path:
    """Probabilities over time (or images), one panel per face track; lines = moving average within face runs."""
    plt = _plt()
    fig = timeline_figure(table, classes, title=title, smooth_windows=smooth_windows)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def timeline_figure(table: pd.DataFrame, classes: Sequence[str], *, title: str, smooth_windows: int) -> Any:
    """The timeline's matplotlib figure (the caller saves and closes it): nothing is drawn inside a no-face
    window, since its probabilities are NaN and the moving average neither fills nor crosses it."""
    plt = _plt()
    tracks = _tracks(table, classes)
    fig, axes = plt.subplots(len(tracks), 1, figsize=(9, 0.6 + 2.9 * len(tracks)), squeeze=False, sharex=True)
    for ax, (track, part) in zip(axes[:, 0], tracks, strict=True):
        x, _, xlabel, names = _axis(part)
        probs = part[prob_columns(classes)].to_numpy(dtype=np.float64)
        timed = xlabel == "time (s)"
        smoothed = smooth(probs, smooth_windows if timed else 1)
        for j, name in enumerate(classes):
            style = {"lw": 2, "marker": "o" if len(x) < 3 else None} if timed else {"ls": "none", "marker": "o"}
            (line,) = ax.plot(x, smoothed[:, j], label=name, **style)  # images / items: points, no lines
            ax.scatter(x, probs[:, j], s=8, alpha=0.35, color=line.get_color())
        head = f"face track {track}" if track >= 0 and len(tracks) > 1 else (title or "prediction")
        how = f"moving average of {smooth_windows} windows, gaps = no face" if timed else f"per {xlabel}"
        ax.set(ylabel="probability", ylim=(-0.02, 1.02), title=f"{head}: class probabilities ({how})")
        if names:
            ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7, ncol=min(len(classes), 4))
    axes[-1, 0].set_xlabel(xlabel)
    if len(tracks) > 1:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_distribution(table: pd.DataFrame, classes: Sequence[str], path: Path, *, title: str) -> Path:
    """Share of rows predicted as each class next to the mean probability of each class."""
    plt = _plt()
    probs = table[prob_columns(classes)].to_numpy(dtype=np.float64)
    counts = table["predicted"].value_counts()
    share = np.asarray([int(counts.get(c, 0)) for c in classes], float)
    mean_p = np.nanmean(probs, axis=0) if np.isfinite(probs).any() else np.zeros(len(classes))
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(classes), 3.5))
    ax.bar(x - 0.2, share / max(1.0, share.sum()), width=0.4, label=f"share of rows predicted ({int(share.sum())})")
    ax.bar(x + 0.2, mean_p, width=0.4, label="mean probability")
    ax.set_xticks(x, classes, rotation=20)
    ax.set(ylim=(0, 1), ylabel="fraction", title=f"{title}: class distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_heatmap(table: pd.DataFrame, classes: Sequence[str], path: Path, *, title: str) -> Path:
    """Class x time (or image) probabilities, one panel per face track; blank = no face."""
    plt = _plt()
    tracks = _tracks(table, classes)
    fig, axes = plt.subplots(len(tracks), 1, figsize=(9, 0.8 + (0.4 + 0.4 * len(classes)) * len(tracks)),
                             squeeze=False, sharex=True)
    mesh = None
    for ax, (track, part) in zip(axes[:, 0], tracks, strict=True):
        _, edges, xlabel, names = _axis(part)
        probs = part[prob_columns(classes)].to_numpy(dtype=np.float64)
        mesh = ax.pcolormesh(edges, np.arange(len(classes) + 1), np.ma.masked_invalid(probs.T), vmin=0, vmax=1,
                             cmap="viridis")
        ax.set_yticks(np.arange(len(classes)) + 0.5, classes, fontsize=7)
        head = f"track {track}: " if track >= 0 and len(tracks) > 1 else ""
        ax.set_title(f"{head}{title}: probability per {'window' if xlabel == 'time (s)' else xlabel} "
                     "(blank = no face)", fontsize=9)
        if names:
            ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=7)
    axes[-1, 0].set_xlabel(xlabel)
    fig.colorbar(mesh, ax=axes[:, 0].tolist(), label="probability")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_confusion(confusion: np.ndarray, classes: Sequence[str], path: Path, *, title: str) -> Path:
    """Row-normalised confusion matrix (true x predicted) with the counts written in the cells."""
    plt = _plt()
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(support > 0, confusion / np.maximum(support, 1), np.nan)
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * len(classes), 1.2 + 0.6 * len(classes)))
    im = ax.imshow(np.ma.masked_invalid(rates), vmin=0, vmax=1, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if confusion[i, j]:
                ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(np.arange(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(table: pd.DataFrame, classes: Sequence[str], out_dir: Path, *, title: str,
                smooth_windows: int = 3) -> list[Path]:
    """timeline.png, distribution.png and heatmap.png of a prediction table in ``out_dir``."""
    return [plot_timeline(table, classes, out_dir / "timeline.png", title=title, smooth_windows=smooth_windows),
            plot_distribution(table, classes, out_dir / "distribution.png", title=title),
            plot_heatmap(table, classes, out_dir / "heatmap.png", title=title)]

"""Pure computation behind `pipeline predict`: frames -> windows per face track, label mapping, metrics.

No I/O and no torch here: the scoring (pipelines.pretrained) hands over per-frame tables, the writers
(pipelines.predict_plots) draw what these functions return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Case-insensitive synonyms of class names (folder names, dataset label names) -> the FER2013 class names.
# RAVDESS's seed mapping is a part of it: neutral, calm -> neutral; fearful -> fear; surprised -> surprise.
SYNONYMS: dict[str, str] = {
    "neutral": "neutral", "calm": "neutral", "neutrality": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy", "happy_face": "happy",
    "sad": "sad", "sadness": "sad",
    "angry": "angry", "anger": "angry", "mad": "angry",
    "fear": "fear", "fearful": "fear", "scared": "fear", "afraid": "fear",
    "disgust": "disgust", "disgusted": "disgust",
    "surprise": "surprise", "surprised": "surprise",
}
RAVDESS_TO_FER2013: dict[str, str] = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad",
                                      "angry": "angry", "fearful": "fear", "disgust": "disgust",
                                      "surprised": "surprise"}


def map_label(name: str, classes: Sequence[str], mapping: Mapping[str, str] | None = None) -> str | None:
    """The model class a label or folder name stands for (case-insensitive, synonyms), None when none does."""
    key = str(name).strip().lower()
    table = {**SYNONYMS, **{k.lower(): v for k, v in (mapping or {}).items()}}
    target = table.get(key, key)
    return target if target in classes else None


def prob_columns(classes: Iterable[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def argmax_names(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Predicted class per row; "" where the row has no probabilities (no face)."""
    out = np.full(len(probs), "", dtype=object)
    ok = np.isfinite(probs).all(axis=1) if len(probs) else np.zeros(0, bool)
    if ok.any():
        out[ok] = np.asarray(classes, dtype=object)[probs[ok].argmax(axis=1)]
    return out


def pool_windows(frames: pd.DataFrame, classes: Sequence[str], window_s: float, duration_s: float) -> pd.DataFrame:
    """Per-frame face rows (``t_s, frame, track_id, n_faces, p_<class>``; ``track_id`` -1 and NaN probabilities
    for a frame without a face) -> one row per window and face track: ``t_start_s, t_end_s, track_id, n_frames``
    (frames of that track pooled), ``n_faces`` (most faces seen in one frame of the window, any track),
    mean probabilities, ``predicted``. Every track gets every window (empty where it is not seen); with no face
    at all, one track -1 of empty windows. ``window_s`` 0: one row per sampled frame."""
    cols = prob_columns(classes)
    times = np.sort(frames["t_s"].unique()) if len(frames) else np.zeros(0)
    if window_s > 0:
        last = float(times[-1]) if len(times) else max(duration_s - 1e-9, 0.0)
        n = int(last / window_s + 1e-9) + 1  # up to the window holding the last sampled frame
        starts = np.arange(n) * window_s
        ends = np.minimum(starts + window_s, max(duration_s, starts[-1] + 1e-6))  # the last one ends with the video
        win_of = np.minimum((frames["t_s"].to_numpy() / window_s + 1e-9).astype(int), n - 1)
    else:
        starts = times
        step = float(np.median(np.diff(times))) if len(times) > 1 else duration_s or 1.0
        ends = np.append(times[1:], times[-1] + step) if len(times) else times
        win_of = np.searchsorted(times, frames["t_s"].to_numpy())
    n_win = len(starts)
    faces = np.zeros(n_win, np.int64)
    np.maximum.at(faces, win_of, frames["n_faces"].to_numpy().astype(np.int64))
    tracks = sorted(int(t) for t in frames["track_id"].unique() if t >= 0) or [-1]
    probs = frames[cols].to_numpy(dtype=np.float64)
    parts = []
    for track in tracks:
        sel = (frames["track_id"].to_numpy() == track) & np.isfinite(probs).all(axis=1)
        sums = np.zeros((n_win, len(cols)))
        np.add.at(sums, win_of[sel], probs[sel])
        count = np.bincount(win_of[sel], minlength=n_win)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count[:, None] > 0, sums / count[:, None], np.nan)
        part = pd.DataFrame({"t_start_s": starts, "t_end_s": ends, "track_id": track, "n_frames": count,
                             "n_faces": faces})
        part[cols] = mean
        part["predicted"] = argmax_names(mean, classes)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 within each run of rows with values: a row without values (no face)
    stays empty and nothing is averaged across it; windows shorter than ``width`` (short inputs) are fine."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full_like(values, np.nan)
    if values.ndim != 2 or len(values) == 0:
        return out if values.ndim == 2 else values.copy()
    ok = np.isfinite(values).all(axis=1)
    lo_half, hi_half = (max(width, 1) - 1) // 2, max(width, 1) // 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        seg = values[start:stop]
        csum = np.vstack([np.zeros((1, seg.shape[1])), np.cumsum(seg, axis=0)])
        idx = np.arange(len(seg))
        lo, hi = np.maximum(idx - lo_half, 0), np.minimum(idx + hi_half + 1, len(seg))
        out[start:stop] = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    return out


@dataclass
class Metrics:
    """Zero-shot scores of the items that were scored (a face found and a mapped label)."""

    classes: list[str]
    confusion: np.ndarray  # (true, predicted) counts over ``classes``
    n_items: int  # items with a mapped label
    n_scored: int  # ... of which a face was found

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")

    @property
    def recalls(self) -> dict[str, float]:
        support = self.confusion.sum(axis=1)
        return {c: float(self.confusion[i, i] / support[i]) for i, c in enumerate(self.classes) if support[i]}

    @property
    def uar(self) -> float:
        """Unweighted average recall over the classes that occur in the labels."""
        rec = self.recalls
        return float(np.mean(list(rec.values()))) if rec else float("nan")

    def as_dict(self) -> dict[str, object]:
        return {"n_items": self.n_items, "n_scored": self.n_scored, "accuracy": self.accuracy, "uar": self.uar,
                "recall": self.recalls, "classes": self.classes, "confusion": self.confusion.tolist()}


def evaluate(true: Sequence[str | None], predicted: Sequence[str], classes: Sequence[str]) -> Metrics:
    """Accuracy, UAR and confusion of ``predicted`` against mapped ``true`` names; items without a mapped label
    are left out, items without a prediction ("" = no face) count in ``n_items`` but not in the scores."""
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    n_items = n_scored = 0
    for t, p in zip(true, predicted, strict=True):
        if t is None or t not in index:
            continue
        n_items += 1
        if p in index:
            n_scored += 1
            confusion[index[t], index[p]] += 1
    return Metrics(classes=list(classes), confusion=confusion, n_items=n_items, n_scored=n_scored)


def per_group_accuracy(table: pd.DataFrame, group: str = "folder") -> pd.DataFrame:
    """Per ``group``: items, items with a face, correct, accuracy (over those with a face and a mapped label)."""
    rows = []
    for name, part in table.groupby(group, sort=True):
        scored = part[(part["predicted"] != "") & part["true_class"].notna() & (part["true_class"] != "")]
        correct = int((scored["predicted"] == scored["true_class"]).sum())
        rows.append({group: name, "true_class": part["true_class"].iloc[0], "n_items": len(part),
                     "n_scored": len(scored), "correct": correct,
                     "accuracy": correct / len(scored) if len(scored) else float("nan")})
    return pd.DataFrame(rows)

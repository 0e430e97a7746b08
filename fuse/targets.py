"""Targets: a label column turned into class codes 0..C-1, with the binarisation rule recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fuse.errors import FuseInputError

# Continuous self-assessment ratings (DEAP, 1..9): binarised at a threshold.
CONTINUOUS_TARGETS = ("valence", "arousal", "dominance", "liking")

# Class names of ``label_emotion`` ids per dataset (ids as stored by the readers; see shared/specs/datasets.md).
EMOTION_NAMES: dict[str, dict[int, str]] = {
    "dfew": {0: "happy", 1: "sad", 2: "neutral", 3: "angry", 4: "surprise", 5: "disgust", 6: "fear"},
    "seedv": {0: "disgust", 1: "fear", 2: "sad", 3: "neutral", 4: "happy"},
    "fer2013": {0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"},
    "ravdess": {0: "neutral", 1: "calm", 2: "happy", 3: "sad", 4: "angry", 5: "fearful", 6: "disgust",
                7: "surprised"},
}


@dataclass(frozen=True)
class Target:
    """How labels became classes: ``codes`` (n,) int64 with -1 where the label is missing."""

    name: str
    codes: np.ndarray = field(repr=False)
    classes: tuple[str, ...]
    values: tuple[float, ...]  # the label value of each class (binarised: 0.0 low, 1.0 high)
    rule: str  # e.g. "valence >= 5.0 -> high" or "class ids"
    threshold: float | None = None
    threshold_side: str | None = None

    def describe(self) -> dict[str, Any]:
        known = self.codes[self.codes >= 0]
        counts = np.bincount(known, minlength=len(self.classes))
        return {"name": self.name, "rule": self.rule, "classes": list(self.classes), "values": list(self.values),
                "threshold": self.threshold, "threshold_side": self.threshold_side,
                "class_counts": {c: int(n) for c, n in zip(self.classes, counts, strict=True)},
                "missing_labels": int((self.codes < 0).sum())}


def make_target(rows: pd.DataFrame, name: str, *, threshold: float = 5.0, side: str = ">=", dataset: str = "",
                class_names: Sequence[str] | None = None) -> Target:
    """Class codes of ``label_<name>``: binarised (``side`` in ``>=``, ``>``) for DEAP-style ratings, else the ids.

    Class ids are named from ``class_names`` (what the reader recorded in the store manifest, e.g. DFEW's preset
    classes) or, for stores without it, from the dataset's standard table."""
    column = f"label_{name}"
    if column not in rows:
        known = ", ".join(c[len("label_"):] for c in rows.columns if c.startswith("label_")) or "none"
        raise FuseInputError(f"target {name!r}: the stores have no column {column}; labels available: {known}")
    values = rows[column].to_numpy(dtype=np.float64)
    missing = ~np.isfinite(values)
    if name in CONTINUOUS_TARGETS:
        if side not in (">=", ">"):
            raise FuseInputError(f"threshold side must be '>=' or '>', got {side!r}")
        high = values >= threshold if side == ">=" else values > threshold
        codes = np.where(missing, -1, high.astype(np.int64))
        return Target(name=name, codes=codes, classes=("low", "high"), values=(0.0, 1.0),
                      rule=f"{name} {side} {threshold:g} -> high", threshold=float(threshold), threshold_side=side)
    ids = np.unique(values[~missing])
    if not np.allclose(ids, np.round(ids)):
        raise FuseInputError(
            f"target {name!r} has non-integer values (e.g. {ids[~np.isclose(ids, np.round(ids))][0]}); "
            f"only {', '.join(CONTINUOUS_TARGETS)} are binarised"
        )
    codes = np.where(missing, -1, np.searchsorted(ids, np.where(missing, ids[0] if len(ids) else 0, values)))
    if class_names:
        names = dict(enumerate(class_names))
    else:
        names = EMOTION_NAMES.get(dataset, {}) if name == "emotion" else {}
    if not {int(v) for v in ids} <= set(names):  # ids outside the known table (e.g. 1-based): keep the numbers
        names = {}
    classes = tuple(names.get(int(v), str(int(v))) for v in ids)
    return Target(name=name, codes=codes, classes=classes, values=tuple(float(v) for v in ids), rule="class ids")

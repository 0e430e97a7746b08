"""Metrics as pure functions of (y_true, y_pred) class codes, and the majority-class baseline beside them.

WAR (weighted average recall) is plain accuracy; UAR (unweighted average recall) is the mean recall over the
classes present in y_true (scikit-learn's ``balanced_accuracy_score``); macro-F1 averages F1 over the classes
present in y_true or y_pred (scikit-learn's ``f1_score(average="macro")``). Tests check all three against sklearn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

METRICS = ("accuracy", "macro_f1", "uar", "war")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """accuracy, macro_f1, uar, war of one set of predictions (NaN when empty)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        return dict.fromkeys(METRICS, float("nan"))
    labels = np.union1d(y_true, y_pred)
    cm = confusion(np.searchsorted(labels, y_true), np.searchsorted(labels, y_pred), len(labels))
    tp = np.diag(cm).astype(np.float64)
    true_n = cm.sum(axis=1).astype(np.float64)
    pred_n = cm.sum(axis=0).astype(np.float64)
    present = true_n > 0
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=true_n > 0)
    precision = np.divide(tp, pred_n, out=np.zeros_like(tp), where=pred_n > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    accuracy = float(tp.sum() / len(y_true))
    return {"accuracy": accuracy, "macro_f1": float(f1.mean()), "uar": float(recall[present].mean()),
            "war": accuracy}


def majority_class(y_train: np.ndarray, n_classes: int) -> int:
    """The most frequent class of the training fold (lowest code on ties)."""
    return int(np.argmax(np.bincount(np.asarray(y_train, dtype=np.int64), minlength=n_classes)))


def fold_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per split: model and majority-baseline scores (predictions has fold, y_true, y_pred, y_baseline)."""
    records = []
    for fold, part in predictions.groupby("fold", sort=False):
        rec: dict[str, Any] = {"fold": fold, "n_test": len(part), "n_test_items": int(part["item"].nunique()),
                               "majority_class": int(part["y_baseline"].iloc[0]),
                               "n_test_classes": int(part["y_true"].nunique())}
        rec.update(_model_and_baseline(part))
        records.append(rec)
    return pd.DataFrame.from_records(records)


def _model_and_baseline(part: pd.DataFrame) -> dict[str, Any]:
    """Scores of the model and of the majority baseline on the same rows, and the accuracy gap."""
    y_true = part["y_true"].to_numpy()
    rec = dict(scores(y_true, part["y_pred"].to_numpy()))
    rec.update({f"baseline_{k}": v for k, v in scores(y_true, part["y_baseline"].to_numpy()).items()})
    rec["delta_accuracy"] = rec["accuracy"] - rec["baseline_accuracy"]
    return rec


def subject_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per subject over all its test rows: model and baseline scores."""
    records = []
    for subject, part in predictions.groupby("subject", sort=True):
        rec: dict[str, Any] = {"subject": subject, "n_test": len(part)}
        rec.update(_model_and_baseline(part))
        records.append(rec)
    return pd.DataFrame.from_records(records)


MODALITY_PRED_PREFIX = "y_pred_"  # late fusion: y_pred_<modality> = that modality's branch alone (-1: missing)


def modality_table(predictions: pd.DataFrame) -> dict[str, Any]:
    """Late fusion's branches scored alone on the test rows that have their modality: per modality the fold mean
    and std, pooled scores and the fused model's pooled scores on the same rows (for the comparison)."""
    out: dict[str, Any] = {}
    for col in [c for c in predictions.columns if c.startswith(MODALITY_PRED_PREFIX)]:
        has = predictions[predictions[col] >= 0]
        folds = [scores(p["y_true"].to_numpy(), p[col].to_numpy()) for _, p in has.groupby("fold", sort=False)]
        out[col[len(MODALITY_PRED_PREFIX):]] = {
            "n_rows": int(len(has)),
            "fold_mean": {m: float(np.mean([f[m] for f in folds])) if folds else float("nan") for m in METRICS},
            "fold_std": {m: float(np.std([f[m] for f in folds])) if folds else float("nan") for m in METRICS},
            "pooled": scores(has["y_true"].to_numpy(), has[col].to_numpy()),
            "fused_pooled_same_rows": scores(has["y_true"].to_numpy(), has["y_pred"].to_numpy()),
        }
    return out


def summarise(predictions: pd.DataFrame, n_classes: int, proba_columns: list[str]) -> dict[str, Any]:
    """Headline numbers: mean ± std over folds, pooled over all test rows, the baseline beside each, the confusion
    matrix, and for window-level rows the per-item scores (an item's score = mean of its rows' probabilities)."""
    folds = fold_table(predictions)
    y_true, y_pred, y_base = (predictions[c].to_numpy() for c in ("y_true", "y_pred", "y_baseline"))
    out: dict[str, Any] = {
        "fold_mean": {m: float(folds[m].mean()) for m in METRICS},
        "fold_std": {m: float(folds[m].std(ddof=0)) for m in METRICS},
        "pooled": scores(y_true, y_pred),
        "baseline": {
            "fold_mean": {m: float(folds[f"baseline_{m}"].mean()) for m in METRICS},
            "pooled": scores(y_true, y_base),
        },
        "confusion_matrix": confusion(y_true, y_pred, n_classes).tolist(),
    }
    out["delta_accuracy"] = out["fold_mean"]["accuracy"] - out["baseline"]["fold_mean"]["accuracy"]
    per_modality = modality_table(predictions)
    if per_modality:
        out["per_modality"] = per_modality
    if predictions["item"].duplicated().any():
        grouped = predictions.groupby("item", sort=False)
        probs = grouped[proba_columns].mean().to_numpy()
        first = grouped[["y_true", "y_baseline"]].first()
        out["per_item"] = {
            "n_items": int(len(first)),
            "model": scores(first["y_true"].to_numpy(), probs.argmax(axis=1)),
            "baseline": scores(first["y_true"].to_numpy(), first["y_baseline"].to_numpy()),
        }
    return out

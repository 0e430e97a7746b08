"""Class counts of a dataset from its reader's item list (no media decoded): per label (DFEW: per label preset
7/5/4/2), over all items, per official fold (test = the fold, train = the other folds) and per split.

``label_views`` says which labellings a reader has; ``class_counts`` is a pure function of the item table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from extract.datasets.base import DatasetReader, Item

# DEAP-style continuous ratings (1..9) are counted binarised, as `pipeline fuse` does by default
CONTINUOUS = {"valence", "arousal", "dominance", "liking"}
RATING_THRESHOLD = 5.0


def item_table(items: Sequence[Item]) -> pd.DataFrame:
    """One row per item: key, subject, session, fold, split (``meta["split"]`` or empty) and ``label_*`` columns."""
    records = []
    for it in items:
        rec = {"item": it.key, "subject": it.subject, "session": it.session, "fold": int(it.fold),
               "split": str(it.meta.get("split", "")) if it.meta else ""}
        rec |= {f"label_{k}": float(v) for k, v in it.labels.items()}
        records.append(rec)
    return pd.DataFrame.from_records(records)


def label_views(reader: DatasetReader, table: pd.DataFrame) -> dict[str, tuple[pd.Series, tuple[str, ...]]]:
    """Name -> (class id per item, class names): DFEW's four presets; other readers' labels as they are."""
    views: dict[str, tuple[pd.Series, tuple[str, ...]]] = {}
    if reader.name == "dfew" and "label_emotion7" in table:
        from extract.datasets.dfew import LABEL_PRESETS

        seven = table["label_emotion7"].astype(int)
        for preset, (names, mapping) in sorted(LABEL_PRESETS.items(), reverse=True):
            views[f"emotion (preset {preset})"] = (seven.map(dict(enumerate(mapping))), names)
        return views
    recorded = reader.label_names()
    for column in (c for c in table.columns if c.startswith("label_")):
        name = column.removeprefix("label_")
        values = table[column]
        if name in CONTINUOUS:
            views[f"{name} (>= {RATING_THRESHOLD:g})"] = ((values >= RATING_THRESHOLD).astype(int).where(
                values.notna()), ("low", "high"))
            continue
        ids = sorted(int(v) for v in values.dropna().unique())
        names = recorded.get(name) or []
        labels = tuple(names[i] if 0 <= i < len(names) else str(i) for i in range(max(ids, default=-1) + 1))
        views[name] = (values, labels)
    return views


def class_counts(codes: pd.Series, names: Sequence[str], fold: pd.Series, split: pd.Series) -> pd.DataFrame:
    """Rows = classes; columns = ``all``, ``fold<k> test``/``fold<k> train`` per official fold (test set k, as in
    DFEW, SEED-V, RAVDESS), or ``split <s>`` where items name their split (FER2013: its folds are the splits)."""
    codes = pd.Series(codes).reset_index(drop=True)
    fold, split = pd.Series(fold).reset_index(drop=True), pd.Series(split).reset_index(drop=True)
    known = codes.notna()

    def count(mask: pd.Series) -> np.ndarray:
        picked = codes[mask & known].astype(int).to_numpy()
        return np.bincount(picked, minlength=len(names))[: len(names)]

    columns = {"all": count(pd.Series(True, index=codes.index))}
    has_splits = bool((split != "").any())
    for k in sorted(f for f in fold.unique() if f >= 0) if not has_splits else ():
        columns[f"fold{k} test"] = count(fold == k)
        columns[f"fold{k} train"] = count((fold >= 0) & (fold != k))
    for s in sorted(s for s in split.unique() if s):
        columns[f"split {s}"] = count(split == s)
    out = pd.DataFrame(columns, index=pd.Index(list(names), name="class"))
    out.loc["total"] = out.sum(axis=0)
    return out

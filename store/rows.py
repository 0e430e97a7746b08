"""Row tables: ``StoreData`` (what ``Store.read`` returns) and the pure functions that build a segment's row
table from its index and assemble tables into typed DataFrames (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from store.schema import LABEL_PREFIX, QUALITY_PREFIX, ROW_COLUMNS

ITEM_COLUMNS = ("item", "subject", "session", "trial", "fold")  # constant within an item
_STR_COLUMNS = tuple(k for k, v in ROW_COLUMNS.items() if v == "str")


@dataclass
class StoreData:
    """Rows read from a store: ``embeddings`` (n, dim) or None, and the row table ``rows`` in the same order.

    Unpacks as a pair: ``emb, rows = store.read()``. ``feature_names``: names of the ``dim`` columns (e.g. EEG
    ``Fp1_delta``), or None when the manifest has none.
    """

    embeddings: Any
    rows: pd.DataFrame
    feature_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        """``embeddings, rows = data``."""
        yield self.embeddings
        yield self.rows

    def __getitem__(self, name: str) -> Any:
        """``data["embeddings"]`` or a row-table column, e.g. ``data["item"]``."""
        return self.embeddings if name == "embeddings" else self.rows[name]

    @property
    def label_names(self) -> list[str]:
        return [c[len(LABEL_PREFIX) :] for c in self.rows.columns if c.startswith(LABEL_PREFIX)]

    @property
    def quality_names(self) -> list[str]:
        return [c[len(QUALITY_PREFIX) :] for c in self.rows.columns if c.startswith(QUALITY_PREFIX)]

    def label(self, name: str) -> np.ndarray:
        return self.rows[LABEL_PREFIX + name].to_numpy()

    def mask(self, *names: str) -> np.ndarray:
        """Rows whose quality flags ``names`` (default: every bool quality column) are all true.

        A float quality column counts as true where it is finite and non-zero.
        """
        names = names or tuple(n for n in self.quality_names if self.rows[QUALITY_PREFIX + n].dtype == bool)
        out = np.ones(len(self.rows), dtype=bool)
        for name in names:
            col = self.rows[QUALITY_PREFIX + name].to_numpy()
            out &= col if col.dtype == bool else (np.isfinite(col) & (col != 0))
        return out


def table_from_index(items: Sequence[Mapping[str, Any]], cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    counts = np.array([int(it["n_rows"]) for it in items], dtype=np.int64)
    n = int(counts.sum())

    def rep(values: list[Any], dtype: Any) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), counts) if len(values) else np.empty(0, dtype)

    starts = np.cumsum(counts) - counts
    table = {
        "item": rep([it["key"] for it in items], object),
        "subject": rep([str(it.get("subject", "")) for it in items], object),
        "session": rep([int(it.get("session", 1)) for it in items], np.int32),
        "trial": rep([str(it.get("trial", "")) for it in items], object),
        "row": (np.arange(n, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32),
        "t_start_s": np.asarray(cols["rows/t_start_s"], dtype=np.float64),
        "t_end_s": np.asarray(cols["rows/t_end_s"], dtype=np.float64),
        "fold": rep([int(it.get("fold", -1)) for it in items], np.int16),
    }
    for name, values in cols.items():
        group, _, cname = name.partition("/")
        if group == "labels":
            table[LABEL_PREFIX + cname] = np.asarray(values, dtype=np.float64)
        elif group == "quality":
            values = np.asarray(values)
            table[QUALITY_PREFIX + cname] = values if values.dtype == bool else values.astype(np.float32)
    return table


def _frame_columns(label_names: Sequence[str], quality_kinds: Mapping[str, str]) -> list[str]:
    return [*ROW_COLUMNS, *(LABEL_PREFIX + n for n in label_names), *(QUALITY_PREFIX + n for n in quality_kinds)]


def _column_or_fill(table: Mapping[str, np.ndarray], col: str, quality_kinds: Mapping[str, str]) -> np.ndarray:
    values = table.get(col)
    n = len(table["row"])
    if col.startswith(QUALITY_PREFIX) and col[len(QUALITY_PREFIX) :] in quality_kinds:
        kind = quality_kinds[col[len(QUALITY_PREFIX) :]]
        if values is None:
            return np.zeros(n, bool) if kind == "bool" else np.full(n, np.nan, np.float32)
        return values if kind == "bool" else values.astype(np.float32, copy=False)
    if values is None:
        return np.full(n, np.nan, np.float64)
    return values


def _frame(
    data: Mapping[str, np.ndarray], names: Sequence[str], label_names: Sequence[str],
    quality_kinds: Mapping[str, str], n: int,
) -> pd.DataFrame:
    out = {}
    for col in names:
        values = data.get(col)
        if values is None:  # empty table: typed empty columns
            if col in ROW_COLUMNS:
                dt = ROW_COLUMNS[col]
                values = np.empty(0, object if dt == "str" else dt)
            elif col.startswith(LABEL_PREFIX):
                values = np.empty(0, np.float64)
            else:
                values = np.empty(0, bool if quality_kinds.get(col[len(QUALITY_PREFIX) :]) == "bool" else np.float32)
        if col in _STR_COLUMNS:
            out[col] = pd.array(values, dtype="str")
        else:
            out[col] = values
    return pd.DataFrame(out, columns=list(names))

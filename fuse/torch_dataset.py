"""A torch ``Dataset`` over one store, for training code: ``(embedding, target)`` per row.

    ds = StoreDataset("cache/deap/eeg-...zarr", target="label_valence", mask="face_found")
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True)

The store is read once (``open_store(p).read()``, float32, rows by (item, row)); ``ds.rows`` is the row table of
the rows kept and ``ds.feature_names`` the names of the embedding columns. (torch lives here, never in ``store/``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from store import open_store


class StoreDataset(Dataset):
    """Rows of a store as tensors: ``ds[i] -> embedding`` (dim,) or ``(embedding, target)`` with ``target``."""

    def __init__(
        self,
        path: str | Path,
        *,
        target: str | None = None,
        items: Sequence[str] | None = None,
        mask: str | Sequence[str] | None = None,
        target_dtype: torch.dtype = torch.float32,
    ) -> None:
        data = open_store(path).read(items)
        keep = np.ones(len(data), dtype=bool)
        if mask is not None:
            keep = data.mask(*([mask] if isinstance(mask, str) else mask))
        if target is not None and target not in data.rows.columns:
            raise KeyError(f"{path}: no column {target!r}; columns: {', '.join(data.rows.columns)}")
        self.rows = data.rows[keep].reset_index(drop=True)
        self.feature_names = data.feature_names
        self.embeddings = torch.from_numpy(np.ascontiguousarray(data.embeddings[keep]))
        self.target = target
        self.targets = (
            None if target is None else torch.as_tensor(self.rows[target].to_numpy(copy=True), dtype=target_dtype)  # pandas' array is read-only
        )

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def __getitem__(self, index: int) -> Any:
        if self.targets is None:
            return self.embeddings[index]
        return self.embeddings[index], self.targets[index]

"""The crops and rows of a crop store (kind ``face_crops``): uint8 ``(n, H, W, 3)`` held once in host memory."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from store import open_store

CROP_KIND = "face_crops"


class CropStoreError(ValueError):
    """The store is not a crop store, or holds no usable crop."""


@dataclass
class CropData:
    """Face rows of a crop store: ``crops[i]`` is the aligned crop of ``rows.iloc[i]``."""

    crops: np.ndarray  # (n, H, W, 3) uint8
    rows: pd.DataFrame  # item, subject, session, trial, row, t_start_s, t_end_s, fold, label_*
    manifest: dict[str, Any]
    path: str
    fingerprint: str

    @property
    def crop_size(self) -> int:
        return int(self.crops.shape[1])


def crop_side(dim: int, path: str | Path) -> int:
    """The crop side of a store row of ``dim`` = side * side * 3 values."""
    side = int(round(math.sqrt(dim / 3)))
    if side * side * 3 != dim:
        raise CropStoreError(f"{path}: rows of {dim} values are not (side, side, 3) crops")
    return side


def every_nth(rows: pd.DataFrame, per_item: int) -> np.ndarray:
    """Row positions keeping at most ``per_item`` evenly spaced rows of each item (0 = all)."""
    if per_item <= 0:
        return np.arange(len(rows))
    keep = []
    for _, pos in rows.groupby("item", sort=False).indices.items():
        pick = np.unique(np.linspace(0, len(pos) - 1, num=min(per_item, len(pos))).round().astype(int))
        keep.append(np.asarray(pos)[pick])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def load_crops(path: str | Path, frames_per_item: int = 0) -> CropData:
    """The face-found rows of the crop store at ``path`` (no-face rows are left out)."""
    store = open_store(path)
    try:
        if store.manifest.kind != CROP_KIND or str(store.dtype) != "uint8":
            raise CropStoreError(f"{path}: a {store.manifest.kind} store of {store.dtype}, not a {CROP_KIND} store "
                                 "(make one with `pipeline extract --modality face_crops`)")
        side = crop_side(store.dim, path)
        data = store.read(dtype=None)
        manifest, fingerprint = store.manifest.to_dict(), store.fingerprint
    finally:
        store.close()
    rows = data.rows.reset_index(drop=True)
    found = rows["q_face_found"].to_numpy(bool) if "q_face_found" in rows else np.ones(len(rows), bool)
    idx = np.flatnonzero(found)
    idx = idx[every_nth(rows.iloc[idx].reset_index(drop=True), frames_per_item)]
    if len(idx) == 0:
        raise CropStoreError(f"{path}: no row with a face")
    crops = np.ascontiguousarray(data.embeddings[idx].reshape(len(idx), side, side, 3))
    return CropData(crops=crops, rows=rows.iloc[idx].reset_index(drop=True), manifest=manifest, path=str(path),
                    fingerprint=str(fingerprint))

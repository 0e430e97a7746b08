"""What goes into a store: the rows an extractor hands over for one item, and the manifest of the whole store.

These two types are the contract between ``extract`` (producer), ``store`` (bytes on disk) and ``fuse`` (consumer).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Fixed per-row index columns and their on-disk dtypes. Labels and quality flags are open-ended named columns.
ROW_COLUMNS: dict[str, str] = {
    "item": "str",  # item key, e.g. "deap/s01/trial07"
    "subject": "str",  # e.g. "s01"
    "session": "int32",  # 1-based; 1 where a dataset has no sessions
    "trial": "str",  # trial / clip id inside the subject+session, e.g. "07" or "00042"
    "row": "int32",  # row index within the item, 0..n-1
    "t_start_s": "float64",  # seconds from the trial's stimulus onset (negative = pre-stimulus baseline)
    "t_end_s": "float64",
    "fold": "int16",  # dataset-defined test fold of this item (DFEW set, RAVDESS actor group); -1 = none
}
LABEL_PREFIX = "label_"
QUALITY_PREFIX = "q_"


@dataclass
class ItemRows:
    """All rows of one item, handed to ``StoreWriter.write_item`` and committed whole or not at all."""

    key: str
    embeddings: np.ndarray  # (n, dim)
    subject: str
    session: int
    trial: str
    t_start_s: np.ndarray  # (n,)
    t_end_s: np.ndarray  # (n,)
    labels: Mapping[str, Any] = field(default_factory=dict)  # name -> scalar (whole item) or (n,) array
    quality: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (n,) bool/float, e.g. face_found
    fold: int = -1
    meta: Mapping[str, Any] = field(default_factory=dict)  # item-level JSON-able facts (source file, fps, ...)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings)
        if self.embeddings.ndim != 2:
            raise ValueError(f"item {self.key}: embeddings must be 2-D (rows, dim), got shape {self.embeddings.shape}")
        n = self.embeddings.shape[0]
        self.t_start_s = np.asarray(self.t_start_s, dtype=np.float64).reshape(-1)
        self.t_end_s = np.asarray(self.t_end_s, dtype=np.float64).reshape(-1)
        for name, arr in (("t_start_s", self.t_start_s), ("t_end_s", self.t_end_s)):
            if arr.shape != (n,):
                raise ValueError(f"item {self.key}: {name} has {arr.shape[0]} values for {n} rows")
        labels = {}
        for name, value in self.labels.items():
            arr = np.asarray(value, dtype=np.float64)
            arr = np.full(n, float(arr), dtype=np.float64) if arr.ndim == 0 else arr.reshape(-1)
            if arr.shape != (n,):
                raise ValueError(f"item {self.key}: label {name!r} has {arr.shape[0]} values for {n} rows")
            labels[name] = arr
        self.labels = labels
        quality = {}
        for name, value in self.quality.items():
            arr = np.asarray(value).reshape(-1)
            if arr.shape != (n,):
                raise ValueError(f"item {self.key}: quality {name!r} has {arr.shape[0]} values for {n} rows")
            quality[name] = arr
        self.quality = quality

    @property
    def n_rows(self) -> int:
        return int(self.embeddings.shape[0])


# Manifest fields that change the features; their hash is the store's fingerprint.
FINGERPRINT_FIELDS = (
    "kind",
    "dataset",
    "extractor",
    "extractor_version",
    "config",
    "model",
    "preprocessing",
    "input_fingerprint",
    "dim",
    "dtype",
)


@dataclass
class Manifest:
    """How a store was made. ``fingerprint()`` hashes the feature-changing part (FINGERPRINT_FIELDS)."""

    kind: str  # "face", "eeg", "eye", "eeg_de", ...
    dataset: str  # registry name, e.g. "deap"
    extractor: str  # e.g. "face/mtcnn+clip-vit-l14" or "eeg/de"
    extractor_version: str
    dim: int
    dtype: str = "float16"
    config: Mapping[str, Any] = field(default_factory=dict)  # full extractor config (fps, windows, bands, ...)
    model: Mapping[str, Any] = field(default_factory=dict)  # model id, revision, weights checksum
    preprocessing: Mapping[str, Any] = field(default_factory=dict)  # crop size, template, mean/std, baseline ...
    input_fingerprint: str = ""  # hash of the input files (names, sizes, mtimes) this store was made from
    dataset_root: str = ""  # informative only; moving a dataset does not change its features
    feature_names: list[str] = field(default_factory=list)  # optional names of the dim columns
    # class names of categorical labels by id, e.g. {"emotion": ["happy", "sad", ...]}; informative (the reader
    # options that decide them are part of ``config``)
    label_names: Mapping[str, list[str]] = field(default_factory=dict)
    library_versions: Mapping[str, str] = field(default_factory=dict)
    created_at: str = ""

    def fingerprint_fields(self) -> dict[str, Any]:
        return {name: _jsonable(getattr(self, name)) for name in FINGERPRINT_FIELDS}

    def fingerprint(self) -> str:
        """sha256 (hex, first 16 chars) of the canonical JSON of the feature-changing fields."""
        blob = json.dumps(self.fingerprint_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        out = _jsonable(dataclasses.asdict(self))
        out["fingerprint"] = self.fingerprint()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def differences(self, other: Manifest) -> list[str]:
        """Dotted names of the feature-changing fields that differ, e.g. ``["config.fps", "model.id"]``."""
        return sorted(_diff(self.fingerprint_fields(), other.fingerprint_fields(), ""))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]

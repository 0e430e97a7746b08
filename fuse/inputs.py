"""The stores a fusion run reads, in memory: the modality each store plays, its rows and embeddings
(``ModalityData``), and finding and loading stores from disk, only through the ``store`` API.

Modalities (also called roles): every store declares one through its manifest's ``kind`` (``eeg``, ``face``,
``eye``, ``audio``, ``peripheral``, ...; ``eeg_de`` is EEG). Any number of them, any subset, can be fused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fuse.errors import FuseInputError

# kinds whose modality is not their own name; any other kind is its own modality
ROLE_OF_KIND = {"eeg": "eeg", "eeg_de": "eeg", "face": "face", "eye": "eye", "audio": "audio",
                "peripheral": "peripheral"}
ROLES = ("eeg", "face", "eye", "audio", "peripheral")  # the known modalities, in the order tables list them


def modality_of(kind: str) -> str:
    """The modality a store of ``kind`` plays (``eeg_de`` -> ``eeg``; unknown kinds are their own modality)."""
    return ROLE_OF_KIND.get(kind, kind)


def ordered(modalities: Sequence[str]) -> tuple[str, ...]:
    """Modalities in canonical order (known ones first, others alphabetically), without duplicates."""
    uniq = set(modalities)
    return tuple(r for r in ROLES if r in uniq) + tuple(sorted(uniq - set(ROLES)))


# Face-quality filters: FuseConfig field -> (row column written by the face extractor, how the bound applies)
QUALITY_LIMITS = {
    "max_yaw": ("q_yaw_deg", "abs_max"),
    "max_pitch": ("q_pitch_deg", "abs_max"),
    "min_face_px": ("q_face_px", "min"),
    "min_sharpness": ("q_blur", "min"),
    "max_align_residual": ("q_align_residual", "max"),
}


class FuseDataError(FuseInputError):
    """The stores given cannot make the table asked for; the message says what to pass instead."""


@dataclass
class ModalityData:
    """One store read into memory: embeddings (rows, dim) float32 and the row table (see store.schema)."""

    kind: str
    dataset: str
    embeddings: np.ndarray
    rows: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    path: str = ""
    exclude: np.ndarray | None = None  # (rows,) bool: rows a quality filter removed (see filter_quality)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.rows):
            raise FuseDataError(
                f"store {self.path or self.kind}: {len(self.rows)} rows but embeddings of shape {self.embeddings.shape}"
            )
        if not self.kind or not self.kind.replace("_", "").isalnum():
            raise FuseDataError(f"store {self.path or self.kind}: kind {self.kind!r} is not a modality name")

    @property
    def role(self) -> str:
        return modality_of(self.kind)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def valid(self) -> np.ndarray:
        """Rows usable as features: finite embeddings, and a found face where the store says so."""
        ok = np.isfinite(self.embeddings).all(axis=1)
        if "q_face_found" in self.rows:
            ok &= self.rows["q_face_found"].to_numpy(dtype=bool)
        if "q_input_nan" in self.rows:
            ok &= ~self.rows["q_input_nan"].to_numpy(dtype=bool)
        if self.exclude is not None:
            ok &= ~self.exclude
        return ok

    def filter_quality(self, limits: Mapping[str, float]) -> dict[str, int]:
        """Exclude face rows outside ``limits`` (``FuseConfig.quality_limits()``: field -> bound, see
        ``QUALITY_LIMITS``); returns field -> rows it removed, for the stores that have the column."""
        removed: dict[str, int] = {}
        for name, bound in limits.items():
            column, kind = QUALITY_LIMITS[name]
            if column not in self.rows:
                continue
            values = self.rows[column].to_numpy(dtype=np.float64)
            if kind == "abs_max":
                bad = np.abs(values) > bound
            elif kind == "max":
                bad = values > bound
            else:
                bad = values < bound
            # NaN (no face) compares False: those rows are already invalid
            self.exclude = bad if self.exclude is None else (self.exclude | bad)
            removed[name] = int(bad.sum())
        return removed

    def source(self) -> dict[str, Any]:
        """What results record about this store: path, kind, fingerprint and manifest."""
        return {"path": self.path, "kind": self.kind, "role": self.role, "dataset": self.dataset,
                "fingerprint": self.fingerprint, "dim": self.dim, "manifest": self.manifest}



# --- disk: only through the store API -------------------------------------------------------------------------


def load_store(path: str | Path, *, embeddings: bool = True) -> ModalityData:
    """Read one store (manifest, fingerprint, rows and embeddings) through ``store.open_store``."""
    from store import open_store

    store = open_store(path)
    manifest = store.manifest
    data = store.read(embeddings=embeddings)
    emb = data.embeddings if embeddings else np.zeros((len(data.rows), 0), dtype=np.float32)
    return ModalityData(
        kind=manifest.kind,
        dataset=manifest.dataset,
        embeddings=np.asarray(emb, dtype=np.float32),
        rows=data.rows.reset_index(drop=True),
        manifest=manifest.to_dict(),
        fingerprint=str(store.fingerprint),
        path=str(path),
    )


def describe_store(path: str | Path) -> dict[str, Any]:
    """Kind, dataset, extractor and fingerprint of a store, without reading its arrays."""
    from store import open_store

    store = open_store(path)
    m = store.manifest
    return {"path": str(path), "kind": m.kind, "dataset": m.dataset, "extractor": m.extractor,
            "fingerprint": str(store.fingerprint), "role": modality_of(m.kind)}


def find_stores(
    stores: Sequence[str | Path] = (), cache: str | Path | None = None, dataset: str = "",
    roles: Sequence[str] = (),
) -> dict[str, str]:
    """Pick one store path per modality from explicit paths or from the stores found under ``cache``.

    ``roles``: the modalities wanted (empty: every modality found). Returns {modality: path} in canonical order for
    those available; raises with the candidates listed when a choice is ambiguous (several datasets, or several
    stores of one modality).
    """
    if stores:
        described = [describe_store(p) for p in stores]
    elif cache:
        from store import list_stores

        found = list_stores(cache)
        if not found:
            raise FuseDataError(f"{cache}: no stores found; run `pipeline extract` first or pass --stores")
        described = [describe_store(p) for p in found]
    else:
        raise FuseDataError("no stores: pass --stores PATH (repeatable) or --cache DIR")
    described = [d for d in described if d["role"]]
    if dataset:
        described = [d for d in described if d["dataset"] == dataset]
        if not described:
            raise FuseDataError(f"no store of dataset {dataset!r} found")
    datasets = sorted({d["dataset"] for d in described})
    if len(datasets) > 1:
        raise FuseDataError(f"stores of several datasets found ({', '.join(datasets)}); choose one with --dataset")
    chosen: dict[str, str] = {}
    for role in ordered(roles or [d["role"] for d in described]):
        cands = [d for d in described if d["role"] == role]
        if len(cands) > 1:
            listing = "; ".join(f"{d['path']} ({d['kind']}, {d['extractor']})" for d in cands)
            raise FuseDataError(f"several {role} stores: {listing}; pass the one to use with --stores "
                                "or choose modalities with --modalities")
        if cands:
            chosen[role] = cands[0]["path"]
    return chosen


def roles_for(strategy: str, available: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(modalities every used row must have, modalities whose features the strategy reads) for a run over the
    ``available`` modalities. A single-modality strategy is named after its modality; early and the transformer
    need all; late uses what a row has."""
    available = ordered(available)
    if strategy in ("early", "transformer"):
        return available, available
    if strategy == "late":
        return (), available
    return (strategy,), (strategy,)

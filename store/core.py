"""Stores: ``create_store`` (write, resume), ``open_store`` (read), ``list_stores``.

A store is a directory of immutable *segments* (see ``store.layout``). A ``StoreWriter`` streams whole items into
an open segment written under a temporary name and commits it by renaming it into place: the rename is the
commit, so an item is done iff it is in a published segment, and a process killed at any moment leaves only
complete segments (plus ``.tmp~`` leftovers that readers ignore and ``gc`` removes). Each writer writes its own
segments, so several processes (or machines on a shared filesystem) can write one store at once.

Reads are ordered by (item key, row), whatever the segments and writers were, so a 2-writer run reads back
identical to a 1-writer run.

The modules: ``store.reader`` (``Store``), ``store.writer`` (``StoreWriter``), ``store.rows`` (``StoreData``,
row tables), ``store.sizing`` (default chunk and segment sizes), ``store.layout`` (file names, discovery),
``store.verify`` and ``store.gc`` (over ``Store``'s public accessors); this one holds the entry points and
re-exports those names, so ``from store.core import ...`` keeps working.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from store.backends import BACKENDS, create_backend
from store.claims import DEFAULT_CLAIM_TTL_S
from store.errors import FingerprintMismatch, NotAStoreError, StoreError
from store.layout import (
    CLAIMS_DIR,
    FAILED_DIR,
    MANIFEST_FILE,
    SEGMENTS_DIR,
    STORE_FILE,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    fsync_dir,
    fsync_tree,
    is_store,
    list_stores,
    now_iso,
    read_json,
    remove_path,
    tmp_name,
)
from store.reader import Order, SegmentInfo, Store, _read_store_info
from store.rows import ITEM_COLUMNS, StoreData
from store.schema import Manifest
from store.sizing import DEFAULT_CHUNK_BYTES, DEFAULT_SEGMENT_BYTES, default_chunk_rows, default_segment_rows
from store.writer import StoreWriter

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "ITEM_COLUMNS",
    "Order",
    "SegmentInfo",
    "Store",
    "StoreData",
    "StoreWriter",
    "create_store",
    "default_chunk_rows",
    "default_segment_rows",
    "is_store",
    "list_stores",
    "open_store",
]

# --- entry points ----------------------------------------------------------------------------------------------


def _create_layout(
    path: Path, manifest: Manifest, backend: str, chunk_rows: int | None, compression: str | None, durable: bool
) -> None:
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise NotAStoreError(f"{path} exists and is not a store (no {STORE_FILE}); choose another path")
    tmp = parent / f".{path.name}{tmp_name()}"
    try:
        tmp.mkdir()
        for sub in (SEGMENTS_DIR, FAILED_DIR, CLAIMS_DIR):
            (tmp / sub).mkdir(parents=True)
        data = manifest.to_dict()
        (tmp / MANIFEST_FILE).write_text(json.dumps(data, indent=1, sort_keys=True))
        info = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, "backend": backend,
                "chunk_rows": chunk_rows, "compression": compression, "fingerprint": data["fingerprint"],
                "created_at": now_iso()}
        (tmp / STORE_FILE).write_text(json.dumps(info, indent=1, sort_keys=True))
        if durable:
            fsync_tree(tmp)
        try:
            os.rename(tmp, path)  # atomic; replaces only an empty directory
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not (path / STORE_FILE).exists():
                raise
            # another process created the store first: use theirs
    finally:
        if tmp.exists():
            remove_path(tmp)
    if durable:
        fsync_dir(parent)


def _field_value(d: Mapping[str, Any], dotted: str) -> Any:
    value: Any = d
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def create_store(
    path: str | Path,
    manifest: Manifest,
    *,
    backend: Literal["zarr", "hdf5"] | str | None = "zarr",
    chunk_rows: int | None = None,
    writer_id: str | None = None,
    segment_rows: int | None = None,
    flush_interval_s: float = 30.0,
    compression: str | None = None,
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
    durable: bool = True,
) -> StoreWriter:
    """Create the store at ``path`` (or open it for appending when it exists with the same fingerprint).

    A store that exists with a different fingerprint raises ``FingerprintMismatch`` naming the differing fields.
    ``chunk_rows``: rows per chunk (default: 1-2 MiB chunks). ``segment_rows``: rows per commit
    (default: ~64 MiB). ``manifest.dtype`` "uint8" holds image crops (one flattened crop per row, compressed by
    default). ``durable``: fsync every segment before publishing it (protects against power loss
    too, not just process kills). ``compression``: None (default), ``"zstd"`` (zarr), ``"gzip"``/``"lzf"`` (hdf5).
    """
    path = Path(path)
    if isinstance(manifest, Mapping):
        manifest = Manifest.from_dict(manifest)
    if int(manifest.dim) < 1:
        raise StoreError(f"manifest.dim must be >= 1, got {manifest.dim}")
    try:
        kind = np.dtype(manifest.dtype).kind
    except TypeError:
        kind = ""
    if kind != "f" and manifest.dtype != "uint8":
        raise StoreError(f"manifest.dtype must be float16, float32 or uint8 (image crops), got {manifest.dtype!r}")
    if not manifest.created_at:
        manifest = dataclasses.replace(manifest, created_at=now_iso())
    if not (path / STORE_FILE).exists():
        name = backend or "zarr"
        if name not in BACKENDS:
            raise StoreError(f"unknown store backend {name!r}; known: {', '.join(BACKENDS)}")
        if kind == "u" and compression is None:  # crop stores: pixels compress well (a reopened store keeps its own)
            compression = _default_compression(name)
        create_backend(name, compression)  # validates the compression before anything is written
        _create_layout(path, manifest, name, chunk_rows, compression, durable)
    info = _read_store_info(path)
    if backend is not None and info["backend"] != backend:
        raise StoreError(f"{path} is a {info['backend']} store; it was opened with backend={backend!r}")
    stored = read_json(path / MANIFEST_FILE)
    requested = manifest.fingerprint()
    if stored.get("fingerprint") != requested:
        diffs = Manifest.from_dict(stored).differences(manifest)
        old, new = Manifest.from_dict(stored).fingerprint_fields(), manifest.fingerprint_fields()
        details = "; ".join(
            f"{d}: {_field_value(old, d)!r} (store) vs {_field_value(new, d)!r} (requested)" for d in diffs[:8]
        )
        raise FingerprintMismatch(path, str(stored.get("fingerprint")), requested, diffs, details)
    return StoreWriter(
        path, writer_id=writer_id, chunk_rows=chunk_rows, segment_rows=segment_rows,
        flush_interval_s=flush_interval_s, claim_ttl_s=claim_ttl_s, durable=durable, compression=compression,
    )


def _default_compression(backend: str) -> str | None:
    """The codec a uint8 (crop) store gets unless one is asked for: zstd (zarr), gzip (hdf5)."""
    return {"zarr": "zstd", "hdf5": "gzip"}.get(backend)


def open_store(path: str | Path) -> Store:
    """Open the store at ``path`` read-only (backend from its ``store.json``)."""
    return Store(path)

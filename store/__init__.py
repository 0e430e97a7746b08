"""Embedding stores: every byte written between the extract and fuse stages (no torch here).

    writer = create_store(path, manifest, backend="zarr")      # or resume; FingerprintMismatch if different
    if writer.claim(key): writer.write_item(item_rows)          # committed whole with its segment (flush/close)
    store = open_store(path); emb, rows = store.read()          # StoreData(embeddings, rows) by (item, row)
    compact_store(path)            # one standard group: xr.open_zarr(path), zarr.open_group(path), h5py store.h5

Layout, commit/crash/concurrency rules and the CLI (``pipeline stores``): ``docs/stores.md``.
"""

from store.backends import BACKENDS, EmbeddingsReader, SegmentBackend, SegmentWriter, create_backend
from store.compaction import CompactionResult, compact_store
from store.core import create_store, is_store, list_stores, open_store
from store.errors import (
    CorruptSegmentError,
    FingerprintMismatch,
    ItemNotFound,
    NotAStoreError,
    StoreError,
)
from store.gc import GcAction, collect_garbage
from store.reader import Store
from store.rows import StoreData
from store.sizing import default_chunk_rows, default_segment_rows
from store.verify import is_warning
from store.writer import StoreWriter

__all__ = [
    "BACKENDS",
    "CompactionResult",
    "CorruptSegmentError",
    "EmbeddingsReader",
    "FingerprintMismatch",
    "GcAction",
    "ItemNotFound",
    "NotAStoreError",
    "SegmentBackend",
    "SegmentWriter",
    "Store",
    "StoreData",
    "StoreError",
    "StoreWriter",
    "collect_garbage",
    "compact_store",
    "create_backend",
    "create_store",
    "default_chunk_rows",
    "default_segment_rows",
    "is_store",
    "is_warning",
    "list_stores",
    "open_store",
]

"""Checksums recorded in every segment at write time and recomputed by ``verify`` (CRC-32, zlib's, ~2 GB/s).

- ``embeddings_chunks``: one CRC-32 per row chunk of the embeddings, over the chunk's logical rows as
  little-endian C-order bytes (edge-chunk padding excluded), so a corrupt chunk is located, not just detected.
- ``rows``: one CRC-32 over every row-table column in sorted name order: the UTF-8 name, then the values
  (numbers as little-endian bytes of their stored dtype; strings UTF-8 joined by ``\\x1f``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ALGORITHM = "crc32"


def _le_bytes(values: np.ndarray) -> memoryview:
    arr = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    return memoryview(arr).cast("B") if arr.size else memoryview(b"")


def chunk_crcs(embeddings: np.ndarray, chunk_rows: int, pool: ThreadPoolExecutor | None = None) -> list[int]:
    """CRC-32 of each ``chunk_rows`` block of rows (zlib releases the GIL, so a pool runs them in parallel)."""
    n = embeddings.shape[0]
    data = np.ascontiguousarray(embeddings, dtype=embeddings.dtype.newbyteorder("<"))
    bounds = [(lo, min(lo + chunk_rows, n)) for lo in range(0, n, max(1, chunk_rows))]

    def crc(bound: tuple[int, int]) -> int:
        return zlib.crc32(_le_bytes(data[bound[0] : bound[1]]))

    if pool is None or len(bounds) <= 2:
        return [crc(b) for b in bounds]
    return list(pool.map(crc, bounds))


def column_bytes(values: np.ndarray) -> bytes | memoryview:
    values = np.asarray(values)
    if values.dtype.kind in "OUT":
        items = values.tolist()
        try:
            return "\x1f".join(items).encode("utf-8")
        except TypeError:  # not all str
            return "\x1f".join(map(str, items)).encode("utf-8")
    return _le_bytes(values)


def rows_crc(columns: Mapping[str, np.ndarray]) -> int:
    crc = 0
    for name in sorted(columns):
        crc = zlib.crc32(name.encode("utf-8"), crc)
        crc = zlib.crc32(column_bytes(columns[name]), crc)
    return crc

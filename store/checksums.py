"""Checksums recorded in every segment at write time and recomputed by ``verify``.

- ``embeddings_chunks`` (algorithm ``rowsum64-crc32``): one value per row chunk of the embeddings. The chunk's
  logical rows (edge-chunk padding excluded), as little-endian C-order bytes, are cut into words of the widest
  size among 8/4/2/1 bytes that divides a row's byte length; each row's words are summed as unsigned 64-bit
  integers (wrapping), and the value is the CRC-32 (zlib) of those per-row sums as little-endian uint64.
  Any change to one word, any bit flip, a zeroed or truncated block and moved rows all change it. It costs
  ~1/4 of a CRC-32 over the raw bytes (memory-bound numpy sums), which is what lets the store write at numpy
  speed (see ``benchmarks/store_bench.py``); ``chunk_checksum`` below is the reference implementation.
- ``rows`` (CRC-32): over every row-table column in sorted name order: the UTF-8 name, then the values
  (numbers as little-endian bytes of their stored dtype; strings UTF-8 joined by ``\\x1f``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ALGORITHM = "rowsum64-crc32"


def _le_bytes(values: np.ndarray) -> memoryview:
    arr = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    return memoryview(arr).cast("B") if arr.size else memoryview(b"")


def chunk_checksum(block: np.ndarray) -> int:
    """The ``rowsum64-crc32`` checksum of one chunk's rows ``block`` (rows, dim)."""
    rows = int(block.shape[0])
    if rows == 0:
        return 0
    data = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")).reshape(rows, -1)
    row_bytes = data.shape[1] * data.dtype.itemsize
    word = next(w for w in (8, 4, 2, 1) if row_bytes % w == 0)
    words = data.view(np.uint8).reshape(rows, row_bytes).view(f"<u{word}")
    sums = words.sum(axis=1, dtype=np.uint64)
    return zlib.crc32(sums.astype("<u8").tobytes())


def chunk_checksums(embeddings: np.ndarray, chunk_rows: int, pool: ThreadPoolExecutor | None = None) -> list[int]:
    """``chunk_checksum`` of each ``chunk_rows`` block of rows."""
    n = embeddings.shape[0]
    bounds = [(lo, min(lo + chunk_rows, n)) for lo in range(0, n, max(1, chunk_rows))]

    def one(bound: tuple[int, int]) -> int:
        return chunk_checksum(embeddings[bound[0] : bound[1]])

    if pool is None or len(bounds) <= 2:
        return [one(b) for b in bounds]
    return list(pool.map(one, bounds))


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

"""Default sizes of a store's chunks (rows per chunk) and segments (rows per commit)."""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_CHUNK_BYTES = 2 << 20  # chunks of 1-2 MiB: the largest power-of-two row count that fits
DEFAULT_SEGMENT_BYTES = 64 << 20


def default_chunk_rows(dim: int, dtype: Any) -> int:
    """Rows per chunk: the largest power of two whose chunk is at most 2 MiB (so 1-2 MiB), at least 1."""
    row_bytes = max(1, int(dim) * np.dtype(dtype).itemsize)
    rows = max(1, DEFAULT_CHUNK_BYTES // row_bytes)
    return 1 << (rows.bit_length() - 1)


def default_segment_rows(chunk_rows: int, dim: int, dtype: Any) -> int:
    """Rows per segment before a flush: a whole number of chunks, about 64 MiB, at least one chunk."""
    chunk_bytes = chunk_rows * max(1, int(dim) * np.dtype(dtype).itemsize)
    return chunk_rows * max(1, DEFAULT_SEGMENT_BYTES // chunk_bytes)

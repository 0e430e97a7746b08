"""The one thing the backends differ in: how a segment (one immutable file or directory) is written and read.

A segment holds, for ``n`` rows: ``embeddings`` (n, dim); row-table columns named ``rows/<col>``,
``labels/<name>`` and ``quality/<name>`` (1-D, length n; strings as UTF-8); and a JSON attribute
``mmer_segment`` (the segment's index: items, columns, checksums). Everything else (commit by rename,
item bookkeeping, ordering, claims) lives in ``store.writer`` and ``store.reader`` and is backend-agnostic.

A third backend subclasses ``SegmentBackend``, registers itself in ``BACKENDS`` and gets the conformance suite
by subclassing ``tests/store/conformance.py::StoreConformance``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from registry import Registry
from store.errors import CorruptSegmentError, StoreError
from store.layout import io_pool, remove_path


class EmbeddingsReader(ABC):
    """Random access to one segment's embeddings; ``read`` fills ``out`` (any float dtype; cast as needed)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @abstractmethod
    def read(self, start: int, stop: int, out: np.ndarray) -> None:
        """Copy rows ``start:stop`` into ``out`` (shape ``(stop-start, dim)``, C-contiguous)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> EmbeddingsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pread_into(fd: int, view: memoryview, offset: int, what: Path) -> None:
    """Fill ``view`` from file ``fd`` at ``offset`` (positional, so threads can share the descriptor)."""
    while len(view):
        n = os.preadv(fd, [view], offset)
        if n <= 0:
            raise CorruptSegmentError(f"{what}: shorter than its metadata says (truncated?)")
        view, offset = view[n:], offset + n


class ChunkFileReader(EmbeddingsReader):
    """Embeddings stored uncompressed, row-chunked, at byte offsets a subclass can ``locate``: reads are ``preadv``
    straight into the caller's array (merged where chunks lie back to back on disk, cut into pieces that pool
    threads read in parallel; a dtype conversion happens in the threads too)."""

    piece_bytes = 8 << 20

    fill_value: Any = 0  # what an absent chunk reads as (the array's ``fill_value``)

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int) -> None:
        self.path = Path(path)
        self.shape = tuple(int(d) for d in shape)  # type: ignore[assignment]
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.chunk_rows = int(chunk_rows)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fds: dict[int, int] = {}

    @abstractmethod
    def locate(self, c: int) -> tuple[int, int] | None:
        """(file number, byte offset) of chunk ``c`` (its full ``chunk_rows`` rows); None if absent (zeros)."""

    @abstractmethod
    def file_path(self, file_no: int) -> Path:
        """The file holding chunks located in ``file_no``."""

    def fd(self, file_no: int) -> int:
        fd = self._fds.get(file_no)
        if fd is None:
            fname = self.file_path(file_no)
            try:
                fd = self._fds[file_no] = os.open(fname, os.O_RDONLY)
            except FileNotFoundError as exc:
                raise CorruptSegmentError(f"{fname}: chunk file is missing") from exc
        return fd

    def read(self, start: int, stop: int, out: np.ndarray) -> None:
        if stop <= start:
            return
        pieces: list[list[Any]] = []  # [file, offset, row_lo, row_hi], merged where contiguous on disk
        pos = start
        while pos < stop:
            c = pos // self.chunk_rows
            hi = min((c + 1) * self.chunk_rows, stop)
            loc = self.locate(c)
            if loc is None:
                pieces.append([None, 0, pos, hi])
            else:
                file_no, off = loc[0], loc[1] + (pos - c * self.chunk_rows) * self.row_bytes
                last = pieces[-1] if pieces else None
                if last and last[0] == file_no and last[1] + (last[3] - last[2]) * self.row_bytes == off:
                    last[3] = hi
                else:
                    pieces.append([file_no, off, pos, hi])
            pos = hi
        step = max(1, self.piece_bytes // max(1, self.row_bytes))
        jobs = []
        for file_no, off, lo, hi in pieces:
            for a in range(lo, hi, step):
                b = min(a + step, hi)
                jobs.append((file_no, off + (a - lo) * self.row_bytes, out[a - start : b - start]))
        if len(jobs) <= 1:
            for job in jobs:
                self._read_job(*job)
        else:
            list(io_pool().map(lambda j: self._read_job(*j), jobs))

    def _read_job(self, file_no: int | None, offset: int, out: np.ndarray) -> None:
        if file_no is None:
            out[...] = self.fill_value
            return
        direct = out.dtype == self.dtype and out.flags.c_contiguous
        buf = out if direct else np.empty(out.shape, self.dtype)
        pread_into(self.fd(file_no), memoryview(buf).cast("B"), offset, self.path)
        if not direct:
            out[...] = buf

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class SegmentWriter(ABC):
    """One segment being written under a temporary name; nothing of it is visible until the store renames it.

    The store calls ``write_chunk`` for each full chunk of ``chunk_rows`` rows as items arrive (in any order of
    ``index``; from several threads at once when ``parallel_chunks``), then ``finish`` once, or ``abort``.
    """

    parallel_chunks: bool = False

    def __init__(self, path: Path, dim: int, dtype: np.dtype, chunk_rows: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.chunk_rows = chunk_rows

    @abstractmethod
    def write_chunk(self, index: int, block: np.ndarray) -> None:
        """Write rows ``index * chunk_rows ...`` (a full chunk, ``block.shape == (chunk_rows, dim)``)."""

    @abstractmethod
    def finish(
        self, n_rows: int, tail: np.ndarray, columns: Mapping[str, np.ndarray], attrs: Mapping[str, Any],
        *, durable: bool,
    ) -> None:
        """Complete the segment: ``tail`` holds the rows after the last full chunk (possibly none). When no full
        chunk was written, the embeddings get one chunk of exactly ``n_rows`` rows (no padding in small
        segments). Then the 1-D ``columns`` (object arrays of ``str`` for strings) and the JSON-able ``attrs`` as
        the ``mmer_segment`` attribute. With ``durable``, every byte is fsynced before returning."""

    def abort(self) -> None:
        """Remove whatever was written."""
        self.close()
        remove_path(self.path)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class BaseWriter(ABC):
    """A compacted base being written under a temporary name; nothing of it is seen until ``publish_base``.

    ``write_embeddings`` gets consecutive blocks of rows whose starts are multiples of ``shard_rows`` (each a whole
    shard, the last one possibly shorter); ``write_array`` one per-row (or coordinate) array whole.
    ``compression``: the store's codec (as its segments use it) for the embeddings, or None.
    """

    def __init__(self, path: Path, n_rows: int, row_shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int,
                 shard_rows: int, compression: str | None = None) -> None:
        self.path = Path(path)
        self.n_rows = int(n_rows)
        self.row_shape = tuple(int(d) for d in row_shape)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.chunk_rows = int(chunk_rows)
        self.shard_rows = int(shard_rows)
        self.compression = compression

    @abstractmethod
    def write_embeddings(self, start: int, block: np.ndarray) -> None:
        """Rows ``start : start + len(block)`` of the embeddings."""

    @abstractmethod
    def write_array(self, name: str, values: np.ndarray, dims: Sequence[str]) -> None:
        """One array (strings as object arrays of ``str``) named ``name`` with ``dimension_names`` ``dims``."""

    @abstractmethod
    def finish(self, attrs: Mapping[str, Any], *, durable: bool) -> None:
        """Write the root attributes (JSON-able) and, with ``durable``, fsync everything."""

    def abort(self) -> None:
        remove_path(self.path)


class SegmentBackend(ABC):
    """Writes and reads segments of one on-disk format. Instances are cheap and stateless."""

    name: ClassVar[str]
    suffix: ClassVar[str]  # ".zarr" or ".h5": published segments are ``<writer_id>-<seq>{suffix}``
    compressions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, compression: str | None = None) -> None:
        if compression is not None and compression not in self.compressions:
            known = ", ".join(self.compressions) or "none"
            raise StoreError(f"backend {self.name!r} has no compression {compression!r}; known: {known} (or None)")
        self.compression = compression

    @abstractmethod
    def open_segment(self, path: Path, dim: int, dtype: np.dtype, chunk_rows: int) -> SegmentWriter:
        """Start a new segment at ``path`` (which does not exist yet)."""

    @abstractmethod
    def read_attrs(self, path: Path) -> dict[str, Any]:
        """The ``mmer_segment`` attribute (cheap: never touches arrays)."""

    @abstractmethod
    def read_columns(self, path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named 1-D columns as numpy arrays (strings as object arrays of ``str``)."""

    @abstractmethod
    def array_names(self, path: Path) -> list[str]:
        """Every array of the segment (or base), e.g. ``["embeddings", "labels/valence", "rows/item", ...]``."""

    @abstractmethod
    def embeddings_reader(self, path: Path) -> EmbeddingsReader:
        """A reader over the segment's embeddings (close it, or use ``with``)."""

    @abstractmethod
    def to_dask(self, path: Path, name: str) -> tuple[Any, Any]:
        """(dask array of the embeddings, handle to close when done or None)."""

    @contextmanager
    @abstractmethod
    def open_plain(self, path: Path) -> Iterator[Mapping[str, Any]]:
        """Every array of the segment (``"embeddings"``, ``"rows/item"``, ...) opened with the plain library
        (zarr / h5py) as array-likes that slice to numpy, plus ``"__attrs__"`` -> the parsed attribute. Used by
        ``verify`` so that the check goes through the same reader an outside user would use."""


    # -- the compacted base (``store.compaction``)
    @abstractmethod
    def base_path(self, root: Path) -> Path:
        """Where a compacted base lives (the path its arrays are read from with the segment readers)."""

    @abstractmethod
    def base_stamp(self, root: Path) -> tuple[int, int, int] | None:
        """(inode, mtime_ns, size) of the file whose atomic replacement publishes a base; None without a base."""

    @abstractmethod
    def read_base_attrs(self, root: Path) -> dict[str, Any] | None:
        """The base's index (the ``mmer_compacted`` attribute), or None without a base."""

    @abstractmethod
    def open_base(self, tmp: Path, n_rows: int, row_shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int,
                  shard_rows: int) -> BaseWriter:
        """Start writing a base at ``tmp`` (which does not exist yet), compressed as this backend's segments."""

    @abstractmethod
    def publish_base(self, root: Path, tmp: Path, old: Mapping[str, Any] | None, generation: int, *,
                     durable: bool) -> None:
        """Make the finished base at ``tmp`` the store's base, crash-safely: until it is in place, the old base
        (``old``: its index, None when there is none) and the segments keep serving every item."""


BACKENDS: Registry[SegmentBackend] = Registry("store backend")


def create_backend(name: str, compression: str | None = None) -> SegmentBackend:
    return BACKENDS.create(name, compression=compression)

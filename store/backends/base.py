"""The one thing the backends differ in: how a segment (one immutable file or directory) is written and read.

A segment holds, for ``n`` rows: ``embeddings`` (n, dim); row-table columns named ``rows/<col>``,
``labels/<name>`` and ``quality/<name>`` (1-D, length n; strings as UTF-8); and a JSON attribute
``mmer_segment`` (the segment's index: items, columns, checksums). Everything else (commit by rename,
item bookkeeping, ordering, claims) lives in ``store.core`` and is backend-agnostic.

A third backend subclasses ``SegmentBackend``, registers itself in ``BACKENDS`` and gets the conformance suite
by subclassing ``tests/store/conformance.py::StoreConformance``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from store.errors import StoreError
from store.registry import Registry


class EmbeddingsReader(ABC):
    """Random access to one segment's embeddings; ``read`` fills ``out`` (any float dtype; cast as needed)."""

    shape: tuple[int, int]
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
        from store.layout import remove_path

        self.close()
        remove_path(self.path)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


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


BACKENDS: Registry[SegmentBackend] = Registry("store backend")


def create_backend(name: str, compression: str | None = None) -> SegmentBackend:
    return BACKENDS.create(name, compression=compression)

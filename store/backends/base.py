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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    def write_segment(
        self,
        path: Path,
        embeddings: np.ndarray,
        columns: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        *,
        chunk_rows: int,
        durable: bool,
    ) -> None:
        """Create the segment at ``path`` (which does not exist yet) holding ``embeddings`` (n, dim) chunked by
        ``chunk_rows`` rows, the 1-D ``columns`` (object arrays of ``str`` for strings) and the JSON-able
        ``attrs`` under ``mmer_segment``; ``attrs`` may be a callable, called once the arrays are written (the
        checksums are computed meanwhile). With ``durable``, every byte is fsynced before returning."""

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


def resolve_attrs(attrs: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    return dict(attrs() if callable(attrs) else attrs)


BACKENDS: Registry[SegmentBackend] = Registry("store backend")


def create_backend(name: str, compression: str | None = None) -> SegmentBackend:
    return BACKENDS.create(name, compression=compression)

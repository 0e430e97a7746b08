"""Segment backends, by registry name: ``zarr`` (default) and ``hdf5``. See ``base.SegmentBackend``."""

from store.backends import hdf5_backend, zarr_backend  # noqa: F401 - registers the backends
from store.backends.base import BACKENDS, EmbeddingsReader, SegmentBackend, SegmentWriter, create_backend

__all__ = ["BACKENDS", "EmbeddingsReader", "SegmentBackend", "SegmentWriter", "create_backend"]

"""HDF5 segments: one ``.h5`` file per segment, readable with plain ``h5py.File``.

HDF5 allows one writer per file, and no reader may open a file while it is written. Segments make that safe:
each file is written once, by one process, under a temporary name, and is immutable after it is published, so
concurrent writers never share a file and readers only ever open finished files. Files are opened with h5py's
default locking (so a plain ``h5py.File`` in the same process agrees with ours); on a filesystem without
``flock`` set ``HDF5_USE_FILE_LOCKING=FALSE`` as for any HDF5 use there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from store.backends.base import BACKENDS, ChunkFileReader, EmbeddingsReader, SegmentBackend, SegmentWriter
from store.backends.hdf5_base import H5BaseWriter, publish_h5_base, read_h5_base
from store.backends.hdf5_format import _EMB, _encode_fixed_utf8, _is_str, _open
from store.errors import CorruptSegmentError
from store.layout import COMPACT_ATTR, COMPACT_H5, SEGMENT_ATTR, fsync_tree


class _H5ChunkReader(ChunkFileReader):
    """Uncompressed HDF5 chunks read straight from the file at the byte offsets HDF5 reports for them (parallel
    ``preadv``; h5py itself would read chunk by chunk under its global lock)."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: np.dtype, chunk_rows: int,
                 offsets: dict[int, int]) -> None:
        super().__init__(path, shape, dtype, chunk_rows)
        self.offsets = offsets

    def file_path(self, file_no: int) -> Path:
        return self.path

    def locate(self, c: int) -> tuple[int, int] | None:
        offset = self.offsets.get(c)
        return None if offset is None else (0, offset)


def _chunk_reader(path: Path) -> _H5ChunkReader | None:
    """A direct reader when the embeddings are chunked along rows only, unfiltered and little-endian."""
    with _open(path) as f:
        ds = f.get(_EMB)
        if ds is None:
            raise CorruptSegmentError(f"{path}: no embeddings dataset")
        if ds.ndim != 2:
            return None
        n, dim = ds.shape
        dtype = np.dtype(ds.dtype)
        if (n == 0 or ds.chunks is None or ds.chunks[1] != dim or dtype.byteorder == ">"
                or ds.id.get_create_plist().get_nfilters() != 0):
            return None
        cr = ds.chunks[0]
        offsets = {}
        for i in range(ds.id.get_num_chunks()):
            info = ds.id.get_chunk_info(i)
            if info.filter_mask != 0 or info.size != cr * dim * dtype.itemsize:
                return None
            offsets[info.chunk_offset[0] // cr] = int(info.byte_offset)
    return _H5ChunkReader(path, (n, dim), dtype, cr, offsets)


class _H5Embeddings(EmbeddingsReader):
    def __init__(self, path: Path) -> None:
        self.file = _open(path)
        try:
            self.dataset = self.file[_EMB]
        except KeyError as exc:
            self.file.close()
            raise CorruptSegmentError(f"{path}: no embeddings dataset") from exc
        self.shape = tuple(self.dataset.shape)  # type: ignore[assignment]
        self.dtype = np.dtype(self.dataset.dtype)

    def read(self, start: int, stop: int, out: np.ndarray) -> None:
        if stop <= start:
            return
        if out.flags.c_contiguous:
            self.dataset.read_direct(out, source_sel=np.s_[start:stop])  # HDF5 converts the dtype itself
        else:
            out[...] = self.dataset[start:stop]

    def close(self) -> None:
        self.file.close()


class _H5SegmentWriter(SegmentWriter):
    """One HDF5 file kept open while the segment fills; full chunks go straight to disk (``write_direct_chunk``,
    past the filter pipeline) unless compressed."""

    def __init__(self, path: Path, dim: int, dtype: np.dtype, chunk_rows: int, compression: str | None) -> None:
        import h5py

        super().__init__(path, dim, dtype, chunk_rows)
        self.compression = compression
        self.file = h5py.File(self.path, "w-")
        self.dataset: Any = None

    def _ensure_dataset(self, rows: int, chunk_rows: int) -> Any:
        if self.dataset is None:
            opts: dict[str, Any] = {}
            if self.compression is not None:
                opts["compression"] = self.compression
                if self.compression == "gzip":
                    opts["compression_opts"] = 1
            self.dataset = self.file.create_dataset(
                _EMB, shape=(rows, self.dim), maxshape=(None, self.dim), dtype=self.dtype,
                chunks=(chunk_rows, self.dim), **opts,
            )
        elif self.dataset.shape[0] < rows:  # grow geometrically; ``finish`` trims to the real row count
            self.dataset.resize(max(rows, 2 * self.dataset.shape[0]), axis=0)
        return self.dataset

    def write_chunk(self, index: int, block: np.ndarray) -> None:
        cr = self.chunk_rows
        ds = self._ensure_dataset((index + 1) * cr, cr)
        data = np.ascontiguousarray(block, dtype=self.dtype)
        if self.compression is None:
            ds.id.write_direct_chunk((index * cr, 0), data)
        else:
            ds[index * cr : (index + 1) * cr] = data

    def finish(self, n_rows, tail, columns, attrs, *, durable):  # type: ignore[override]
        import h5py

        n = int(n_rows)
        n_full = (n - len(tail)) // self.chunk_rows
        f = self.file
        try:
            if n == 0:
                f.create_dataset(_EMB, shape=(0, self.dim), dtype=self.dtype)
            else:
                ds = self._ensure_dataset(n, self.chunk_rows if n_full else n)
                if ds.shape[0] != n:
                    ds.resize(n, axis=0)
                if len(tail):
                    ds[n - len(tail) : n] = np.asarray(tail, dtype=self.dtype)
            for group in ("rows", "labels", "quality"):
                f.require_group(group)
            for name, values in columns.items():
                values = np.asarray(values)
                if values.dtype.kind in "OUT":
                    encoded = _encode_fixed_utf8(values)
                    f.create_dataset(name, data=encoded.astype(h5py.string_dtype("utf-8", encoded.dtype.itemsize)))
                else:
                    f.create_dataset(name, data=values)
            f.attrs[SEGMENT_ATTR] = json.dumps(dict(attrs), allow_nan=True)
        finally:
            self.close()
        if durable:
            fsync_tree(self.path)

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()


@BACKENDS.register("hdf5", suffix=".h5")
class HDF5Backend(SegmentBackend):
    name = "hdf5"
    suffix = ".h5"
    compressions = ("gzip", "lzf")

    def open_segment(self, path, dim, dtype, chunk_rows):  # type: ignore[override]
        return _H5SegmentWriter(Path(path), dim, dtype, chunk_rows, self.compression)

    def read_attrs(self, path):  # type: ignore[override]
        with _open(Path(path)) as f:
            raw = f.attrs[SEGMENT_ATTR]
        return json.loads(raw if isinstance(raw, str) else raw.decode())

    def read_columns(self, path, names):  # type: ignore[override]
        out = {}
        with _open(Path(path)) as f:
            for name in names:
                if name not in f:
                    raise CorruptSegmentError(f"{path}: dataset {name} is missing")
                ds = f[name]
                out[name] = ds.asstr()[:].astype(object) if _is_str(ds) else ds[:]
        return out

    def array_names(self, path):  # type: ignore[override]
        import h5py

        out: list[str] = []
        with _open(Path(path)) as f:
            f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
        return sorted(out)

    def embeddings_reader(self, path):  # type: ignore[override]
        return _chunk_reader(Path(path)) or _H5Embeddings(Path(path))

    def to_dask(self, path, name):  # type: ignore[override]
        import dask.array as da

        f = _open(Path(path))
        ds = f[_EMB]
        chunks = ds.chunks or ds.shape
        return da.from_array(ds, chunks=chunks, name=name, lock=True), f

    def base_path(self, root):  # type: ignore[override]
        return Path(root) / COMPACT_H5

    def base_stamp(self, root):  # type: ignore[override]
        try:
            st = os.stat(Path(root) / COMPACT_H5)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read_base_attrs(self, root):  # type: ignore[override]
        return read_h5_base(Path(root))

    def open_base(self, tmp, n_rows, row_shape, dtype, chunk_rows, shard_rows):  # type: ignore[override]
        return H5BaseWriter(Path(tmp), n_rows, row_shape, dtype, chunk_rows, shard_rows, self.compression)

    def publish_base(self, root, tmp, old, generation, *, durable):  # type: ignore[override]
        publish_h5_base(Path(root), Path(tmp), durable=durable)

    @contextmanager
    def open_plain(self, path) -> Iterator[Mapping[str, Any]]:  # type: ignore[override]
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get(SEGMENT_ATTR, f.attrs.get(COMPACT_ATTR))
            arrays: dict[str, Any] = {"__attrs__": None if raw is None else json.loads(raw)}

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj.asstr() if _is_str(obj) else obj

            f.visititems(visit)
            yield arrays

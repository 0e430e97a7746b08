"""HDF5 segments: one ``.h5`` file per segment, readable with plain ``h5py.File``.

HDF5 allows one writer per file, and no reader may open a file while it is written. Segments make that safe:
each file is written once, by one process, under a temporary name, and is immutable after it is published, so
concurrent writers never share a file and readers only ever open finished files. Files are opened with h5py's
default locking (so a plain ``h5py.File`` in the same process agrees with ours); on a filesystem without
``flock`` set ``HDF5_USE_FILE_LOCKING=FALSE`` as for any HDF5 use there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from store.backends.base import BACKENDS, EmbeddingsReader, SegmentBackend, resolve_attrs
from store.errors import CorruptSegmentError
from store.layout import SEGMENT_ATTR, fsync_tree

_EMB = "embeddings"


def _open(path: Path, mode: str = "r") -> Any:
    import h5py

    try:
        return h5py.File(path, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptSegmentError(f"{path}: cannot open as HDF5 ({exc})") from exc


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


@BACKENDS.register("hdf5", suffix=".h5")
class HDF5Backend(SegmentBackend):
    name = "hdf5"
    suffix = ".h5"
    compressions = ("gzip", "lzf")

    def write_segment(self, path, embeddings, columns, attrs, *, chunk_rows, durable):  # type: ignore[override]
        import h5py

        path = Path(path)
        n, dim = embeddings.shape
        cr = max(1, min(chunk_rows, n))
        with h5py.File(path, "w-") as f:
            for group in ("rows", "labels", "quality"):
                f.create_group(group)
            if n == 0:
                f.create_dataset(_EMB, shape=(0, dim), dtype=embeddings.dtype)
            elif self.compression is not None:
                opts = {"compression": self.compression}
                if self.compression == "gzip":
                    opts["compression_opts"] = 1
                f.create_dataset(_EMB, data=embeddings, chunks=(cr, dim), **opts)
            else:
                ds = f.create_dataset(_EMB, shape=(n, dim), dtype=embeddings.dtype, chunks=(cr, dim))
                data = np.ascontiguousarray(embeddings)
                full = (n // cr) * cr
                for lo in range(0, full, cr):  # whole chunks go straight to disk, past the filter pipeline
                    ds.id.write_direct_chunk((lo, 0), data[lo : lo + cr])
                if full < n:
                    ds[full:n] = data[full:n]
            for name, values in columns.items():
                values = np.asarray(values)
                if values.dtype.kind in "OUT":
                    f.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype("utf-8"))
                else:
                    f.create_dataset(name, data=values)
            f.attrs[SEGMENT_ATTR] = json.dumps(resolve_attrs(attrs), allow_nan=True)
        if durable:
            fsync_tree(path)

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
                out[name] = ds.asstr()[:] if ds.dtype.kind == "O" else ds[:]
        return out

    def embeddings_reader(self, path):  # type: ignore[override]
        return _H5Embeddings(Path(path))

    def to_dask(self, path, name):  # type: ignore[override]
        import dask.array as da

        f = _open(Path(path))
        ds = f[_EMB]
        chunks = ds.chunks or ds.shape
        return da.from_array(ds, chunks=chunks, name=name, lock=True), f

    @contextmanager
    def open_plain(self, path) -> Iterator[Mapping[str, Any]]:  # type: ignore[override]
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get(SEGMENT_ATTR)
            arrays: dict[str, Any] = {"__attrs__": None if raw is None else json.loads(raw)}

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj.asstr() if obj.dtype.kind == "O" else obj

            f.visititems(visit)
            yield arrays

"""The compacted base of an hdf5 store: ONE file ``<store>/store.h5`` that plain ``h5py.File`` opens.

    /embeddings          (row, dim) chunked (chunk_rows, dim), unfiltered (a compressed store: its segments'
                         gzip/lzf filter); axis labels "row", "dim"
    /item, /subject, ..., /label_<name>, /q_<name>   per-row datasets (strings: fixed-length UTF-8)
    /dim                 feature names, when the manifest has them
    attrs: mmer_layout, mmer_manifest and mmer_compacted (JSON strings)

It is written as ``.tmp~...h5`` beside it and published with one ``os.replace``: readers see the old file or the
new one (an open reader keeps reading the old file's inode).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from store.backends.base import BaseWriter
from store.backends.hdf5_format import _EMB, _encode_fixed_utf8, _open
from store.layout import COMPACT_ATTR, COMPACT_H5, fsync_dir, fsync_tree


class H5BaseWriter(BaseWriter):
    def __init__(self, *args: Any) -> None:
        import h5py

        super().__init__(*args)
        self.file = h5py.File(self.path, "w-")
        n, trail = self.n_rows, self.row_shape
        chunks = (max(1, min(self.chunk_rows, n)), *trail) if n else None
        self.chunk_rows = chunks[0] if chunks else 1
        opts: dict[str, Any] = {}
        if self.compression is not None and chunks:  # the segments' filter (gzip level 1 or lzf)
            opts = {"compression": self.compression, **({"compression_opts": 1} if self.compression == "gzip" else {})}
        self.dataset = self.file.create_dataset(_EMB, shape=(n, *trail), dtype=self.dtype, chunks=chunks, **opts)
        for axis, label in enumerate(["row", "dim"] if len(trail) == 1 else ["row"]):
            self.dataset.dims[axis].label = label

    def write_embeddings(self, start: int, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype)
        if self.compression is not None:
            self.dataset[start : start + len(data)] = data  # through the filter pipeline
            return
        cr = self.chunk_rows
        full = len(data) // cr * cr
        for lo in range(0, full, cr):  # whole chunks go straight to disk, past the filter pipeline
            self.dataset.id.write_direct_chunk((start + lo, *(0 for _ in self.row_shape)), data[lo : lo + cr])
        if full < len(data):
            self.dataset[start + full : start + len(data)] = data[full:]

    def write_array(self, name: str, values: np.ndarray, dims: Sequence[str]) -> None:
        import h5py

        values = np.asarray(values)
        if values.dtype.kind in "OUT":
            encoded = _encode_fixed_utf8(values)
            ds = self.file.create_dataset(name, data=encoded.astype(h5py.string_dtype("utf-8", encoded.dtype.itemsize)))
        else:
            ds = self.file.create_dataset(name, data=values)
        for axis, label in enumerate(dims[: ds.ndim]):
            ds.dims[axis].label = label

    def finish(self, attrs: Mapping[str, Any], *, durable: bool) -> None:
        try:
            for key, value in attrs.items():
                self.file.attrs[key] = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
        finally:
            self.file.close()
        if durable:
            fsync_tree(self.path)

    def abort(self) -> None:
        if self.file.id.valid:
            self.file.close()
        super().abort()


def read_h5_base(root: Path) -> dict[str, Any] | None:
    path = Path(root) / COMPACT_H5
    if not path.exists():
        return None
    with _open(path) as f:
        raw = f.attrs.get(COMPACT_ATTR)
    if raw is None:
        return None
    return json.loads(raw if isinstance(raw, str) else raw.decode())


def publish_h5_base(root: Path, tmp: Path, *, durable: bool) -> None:
    os.replace(tmp, Path(root) / COMPACT_H5)  # the commit
    if durable:
        fsync_dir(Path(root))

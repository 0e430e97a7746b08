"""The compacted base of a zarr store: the store directory itself becomes ONE standard Zarr v3 group.

    zarr.json            group; attributes mmer_layout, mmer_manifest, mmer_compacted (the base's index);
                         consolidated metadata of every array (so xarray opens it without a warning)
    embeddings/          (row, dim) sharded like a segment: shards of ``shard_rows`` rows (c.<s>.0), raw inner
                         chunks of ``chunk_rows`` rows, shard index + CRC-32C at the end of each shard (zstd
                         inner chunks in a compressed store, the codec of its segments)
    item/, subject/, ..., label_<name>/, q_<name>/   1-D (or (row, ...)) arrays on ``row``, one chunk each
    dim/                 feature names (strings) on ``dim``, when the manifest has them

Publishing is crash-safe (``publish_zarr_base``): the old base is first kept as a segment made of hard links
(no bytes copied), then the root ``zarr.json`` is removed, the array directories swapped and the new root
``zarr.json`` moved into place last: that replace is the commit. A kill at any step leaves every item served
by the old base or by segments; a rerun finishes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from store.backends.base import BaseWriter
from store.backends.zarr_format import (
    _EMPTY,
    _SEP,
    _array_meta,
    _crc32c,
    _group_meta,
    _pwrite_all,
    _write_column,
    _write_json,
)
from store.layout import (
    COMPACT_ATTR,
    SEGMENT_ATTR,
    SEGMENTS_DIR,
    crash_point,
    fsync_dir,
    fsync_tree,
    remove_path,
    tmp_name,
)

_EMB = "embeddings"
RESERVED = frozenset({SEGMENTS_DIR, "status", "claims"})


def kept_segment_name(generation: int) -> str:
    """The segment that keeps base ``generation`` readable while the next base replaces it."""
    return f"_compacted-g{generation:06d}.zarr"


class ZarrBaseWriter(BaseWriter):
    """Writes a base group at ``path`` with plain file writes (the bytes the Zarr v3 spec fixes); compressed
    embeddings (``compression="zstd"``, as the segments) go through zarr-python: zstd inner chunks in shards."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.path.mkdir()
        self.metas: dict[str, dict[str, Any]] = {}
        self._zarr: Any = None
        emb = self.path / _EMB
        n, trail = self.n_rows, self.row_shape
        if n:
            inner = min(self.chunk_rows, n)
            self.chunk_rows = inner
            self.shard_rows = max(inner, self.shard_rows // inner * inner)
        if self.compression is not None:
            if n:  # no shard longer than the array: its index would hold empty entries (16 bytes per chunk)
                self.shard_rows = min(self.shard_rows, -(-n // self.chunk_rows) * self.chunk_rows)
            self._zarr = _create_compressed(emb, n, trail, self.dtype, self.chunk_rows, self.shard_rows)
            with open(emb / "zarr.json", "rb") as fh:
                self.metas[_EMB] = json.loads(fh.read())
            return
        emb.mkdir()
        if n == 0:
            meta = _array_meta((0, *trail), (1, *trail), self.dtype, dims=_emb_dims(trail))
        else:
            meta = _array_meta((n, *trail), (self.shard_rows, *trail), self.dtype, inner=(self.chunk_rows, *trail),
                               dims=_emb_dims(trail))
        _write_json(emb / "zarr.json", meta)
        self.metas[_EMB] = meta

    def write_embeddings(self, start: int, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype)
        if self._zarr is not None:
            self._zarr[start : start + len(data)] = data  # whole shards: zarr-python writes each one once
            return
        shard = start // self.shard_rows
        cr = self.chunk_rows
        row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        chunk_bytes = cr * row_bytes
        per_shard = self.shard_rows // cr
        k = len(data)
        n_inner = -(-k // cr)
        fname = self.path / _EMB / ("c" + _SEP + str(shard) + "".join(_SEP + "0" for _ in self.row_shape))
        fd = os.open(fname, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _pwrite_all(fd, memoryview(data).cast("B"), 0)
            pad = n_inner * chunk_bytes - k * row_bytes
            if pad:  # inner chunks are stored full size
                _pwrite_all(fd, bytes(pad), k * row_bytes)
            index = np.full((per_shard, 2), _EMPTY, dtype="<u8")
            index[:n_inner, 0] = np.arange(n_inner, dtype="<u8") * np.uint64(chunk_bytes)
            index[:n_inner, 1] = chunk_bytes
            raw = index.tobytes()
            _pwrite_all(fd, raw + int(_crc32c(raw) or 0).to_bytes(4, "little"), n_inner * chunk_bytes)
        finally:
            os.close(fd)

    def write_array(self, name: str, values: np.ndarray, dims: Sequence[str]) -> None:
        _write_column(self.path / name, values, dims)
        with open(self.path / name / "zarr.json", "rb") as fh:
            self.metas[name] = json.loads(fh.read())

    def finish(self, attrs: Mapping[str, Any], *, durable: bool) -> None:
        _write_json(self.path / "zarr.json", root_meta(attrs, self.metas))
        if durable:
            fsync_tree(self.path)


def _create_compressed(path: Path, n: int, trail: tuple[int, ...], dtype: np.dtype, chunk_rows: int,
                       shard_rows: int) -> Any:
    """The base's embeddings array with the segments' codec (``ZstdCodec(level=1)``), sharded like a raw base."""
    import zarr
    from zarr.codecs import ZstdCodec

    chunks = (max(1, chunk_rows), *trail)
    return zarr.create_array(
        str(path), shape=(n, *trail), chunks=chunks, shards=(shard_rows, *trail) if n else None, dtype=dtype,
        compressors=[ZstdCodec(level=1)], filters=None, fill_value=0,
        chunk_key_encoding={"name": "default", "separator": _SEP}, config={"write_empty_chunks": True},
        dimension_names=_emb_dims(trail),
    )


def _emb_dims(trail: tuple[int, ...]) -> list[str]:
    return ["row", "dim"] if len(trail) == 1 else ["row", *(f"embeddings_dim{i}" for i in range(1, len(trail) + 1))]


def root_meta(attrs: Mapping[str, Any], metas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The root group document with inline consolidated metadata (as ``zarr.consolidate_metadata`` writes it)."""
    meta = _group_meta(attrs)
    meta["consolidated_metadata"] = {
        "kind": "inline", "must_understand": False, "metadata": {k: dict(metas[k]) for k in sorted(metas)},
    }
    return meta


def read_zarr_base(root: Path) -> dict[str, Any] | None:
    try:
        with open(root / "zarr.json", "rb") as fh:
            meta = json.loads(fh.read())
    except FileNotFoundError:
        return None
    attrs = meta.get("attributes", {}).get(COMPACT_ATTR)
    return dict(attrs) if isinstance(attrs, dict) else None


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` gets hard links of every file under ``src`` (a copy where links are refused)."""
    for dirpath, _dirs, files in os.walk(src):
        out = dst / Path(dirpath).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            try:
                os.link(os.path.join(dirpath, f), out / f)
            except OSError:
                shutil.copy2(os.path.join(dirpath, f), out / f)


def keep_as_segment(root: Path, old: Mapping[str, Any], generation: int, *, durable: bool) -> None:
    """Publish the current base as the segment ``_compacted-g<generation>.zarr`` (hard links; a no-op when that
    segment exists already, e.g. after an interrupted run)."""
    segments = root / SEGMENTS_DIR
    final = segments / kept_segment_name(generation)
    if final.exists():
        return
    tmp = segments / tmp_name(".zarr")
    try:
        tmp.mkdir()
        arrays: dict[str, str] = old["compacted"]["arrays"]
        for logical, flat in arrays.items():
            _link_tree(root / flat, tmp / logical)
        for group in {a.rsplit("/", 1)[0] for a in arrays if "/" in a}:
            _write_json(tmp / group / "zarr.json", _group_meta())
        index = {k: v for k, v in old.items() if k != "compacted"}
        _write_json(tmp / "zarr.json", _group_meta({SEGMENT_ATTR: index}))
        if durable:
            fsync_tree(tmp)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            remove_path(tmp)
    if durable:
        fsync_dir(segments)


def publish_zarr_base(root: Path, tmp: Path, old: Mapping[str, Any] | None, generation: int, *,
                      durable: bool) -> None:
    """Swap the base at ``tmp`` into ``root``; see the module docstring for why each step is safe."""
    if old is not None:
        keep_as_segment(root, old, generation - 1, durable=durable)
    crash_point("kept")
    try:
        os.unlink(root / "zarr.json")  # from here until the last replace the segments serve every item
    except FileNotFoundError:
        pass
    if durable:
        fsync_dir(root)
    crash_point("unlinked")
    new = sorted(p.name for p in tmp.iterdir() if p.is_dir())
    for entry in sorted(os.listdir(root)):
        p = root / entry
        if entry not in RESERVED and not entry.startswith(".") and p.is_dir() and (p / "zarr.json").exists():
            remove_path(p)  # arrays of an earlier base (their bytes live on in the kept segment)
    for i, name in enumerate(new):
        os.rename(tmp / name, root / name)
        if i == len(new) // 2:
            crash_point("swapping")
    if durable:
        fsync_dir(root)
    os.replace(tmp / "zarr.json", root / "zarr.json")  # the commit
    if durable:
        fsync_dir(root)
    remove_path(tmp)


__all__ = ["RESERVED", "ZarrBaseWriter", "keep_as_segment", "kept_segment_name", "publish_zarr_base",
           "read_zarr_base", "root_meta"]

"""Compaction: a store's committed segments (and an earlier compacted base) merged into ONE standard hierarchy.

After ``compact_store(p)`` a zarr store directory is itself a Zarr v3 group (``zarr.open_group(p)``,
``xr.open_zarr(p)``, ``da.from_zarr(p, component="embeddings")``) and an hdf5 store holds ``p/store.h5``
(``h5py.File``): ``embeddings (row, dim)`` (with the segments' codec in a compressed store: zstd, gzip, lzf),
every per-row array of the segments under its row-table name (``item``, ``t_start_s``, ``label_valence``,
``q_face_found``, ...; any dtype, any trailing shape) in (item, row) order, the feature names as the ``dim``
coordinate, the manifest and the base's index in the attributes. The layout is named ``mmer-compacted/1`` (root
attribute ``mmer_layout``).

Crash safety: the base is built under a ``.tmp~`` name and published by the backend (``publish_base``) so that a
kill at any moment leaves every item served by the old base or the segments; only after the publish are the
segments it covers removed (each renamed to a ``.tmp~`` name first, so readers never see half a segment).
Writing goes on as before: new items land in new segments, the reader merges them with the base, and the next
compaction folds them in. One compaction at a time per store (a claim on ``~compaction``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from store.backends import create_backend
from store.checksums import ALGORITHM, chunk_checksum, rows_crc
from store.claims import release_claim, try_claim
from store.errors import StoreError
from store.layout import (
    BASE_NAME,
    COMPACT_ATTR,
    COMPACT_LAYOUT,
    COMPACTION_LOCK,
    LAYOUT_ATTR,
    MANIFEST_ATTR,
    SEGMENT_FORMAT,
    SEGMENT_FORMAT_VERSION,
    crash_point,
    fsync_dir,
    hostname,
    leftover_is_dead,
    now_iso,
    remove_path,
    tmp_name,
)
from store.reader import SegmentInfo, Store, merge_consecutive
from store.rows import table_from_index
from store.schema import LABEL_PREFIX, QUALITY_PREFIX, ROW_COLUMNS
from store.sizing import DEFAULT_SEGMENT_BYTES

_EMB = "embeddings"
_LOCK_TTL_S = 6 * 3600.0


@dataclass(frozen=True)
class CompactionResult:
    """What ``compact_store`` did: ``compacted`` is False when there was nothing new to fold in."""

    path: Path
    compacted: bool
    items: int
    rows: int
    bytes_written: int
    seconds: float
    removed_segments: int
    layout: str = COMPACT_LAYOUT

    @property
    def mib_per_s(self) -> float:
        return self.bytes_written / (1 << 20) / self.seconds if self.seconds > 0 else 0.0


def flat_name(name: str) -> str:
    """The base's name of segment array ``name``: ``rows/item`` -> ``item``, ``labels/valence`` ->
    ``label_valence``, ``quality/face_found`` -> ``q_face_found``, any other ``a/b`` -> ``a_b``."""
    group, sep, rest = name.partition("/")
    if not sep:
        return name
    if group == "rows":
        return rest
    if group == "labels":
        return LABEL_PREFIX + rest
    if group == "quality":
        return QUALITY_PREFIX + rest
    return name.replace("/", "_")


def _fill(name: str, dtype: np.dtype, n: int, trail: tuple[int, ...]) -> np.ndarray:
    """Values for rows of a segment that lacks array ``name``: NaN, False, 0 or "" (labels NaN, flags False)."""
    if dtype.kind == "f":
        return np.full((n, *trail), np.nan, dtype)
    if dtype.kind == "O":
        return np.full((n, *trail), "", object)
    return np.zeros((n, *trail), dtype)


def _merged_dtype(name: str, dtypes: Sequence[np.dtype]) -> np.dtype:
    group, _, col = name.partition("/")
    if group == "rows" and col in ROW_COLUMNS:
        kind = ROW_COLUMNS[col]
        return np.dtype(object) if kind == "str" else np.dtype(kind)
    if group == "labels":
        return np.dtype(np.float64)
    if group == "quality":
        return np.dtype(bool) if all(d.kind == "b" for d in dtypes) else np.dtype(np.float32)
    if any(d.kind in "OUTS" for d in dtypes):
        return np.dtype(object)
    return np.result_type(*dtypes)


def _read_sources(store: Store, segments: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Every per-row array but the embeddings of each segment: the index columns from its item index, the
    others (t_start_s, labels, quality, whatever else a writer added) from the files."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in segments:
        info = store.segments[name]
        physical = store.segment_backend.array_names(info.path)
        if info.is_base:
            logical = {flat: a for a, flat in info.attrs["compacted"]["arrays"].items()}
            physical = [p for p in physical if p in logical]
        else:
            logical = {p: p for p in physical}
        from_index = {f"rows/{c}" for c in ("item", "subject", "session", "trial", "row", "fold")}
        wanted = [p for p in physical if logical[p] != _EMB and logical[p] not in from_index]
        cols = store.segment_backend.read_columns(info.path, wanted)
        arrays = {logical[p]: np.asarray(v) for p, v in cols.items()}
        table = table_from_index(info.items, {"rows/t_start_s": arrays["rows/t_start_s"],
                                               "rows/t_end_s": arrays["rows/t_end_s"]})
        arrays.update({c: table[c.partition("/")[2]] for c in from_index})
        for key, values in arrays.items():
            if values.shape[:1] != (info.n_rows,):
                raise StoreError(f"{info.path}: array {key} has {values.shape[:1]} rows, expected {info.n_rows}")
            if values.dtype.kind in "OUTS":
                arrays[key] = values.astype(object)
        out[name] = arrays
    return out


def _columns(
    store: Store, runs: Sequence[tuple[str, Any]], sources: Mapping[str, Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Each per-row array over all output rows (in ``runs`` order), missing parts filled."""
    names = sorted({k for arrays in sources.values() for k in arrays})
    segs = sorted(sources)
    offsets, off = {}, 0
    for s in segs:
        offsets[s] = off
        off += store.segments[s].n_rows
    starts = np.array([offsets[loc.segment] + loc.start for _, loc in runs], dtype=np.int64)
    lengths = np.array([loc.n_rows for _, loc in runs], dtype=np.int64)
    total = int(lengths.sum())
    perm = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    out = {}
    for name in names:
        present = [sources[s][name] for s in segs if name in sources[s]]
        trail = {p.shape[1:] for p in present}
        if len(trail) > 1:
            raise StoreError(f"{store.path}: array {name} has different trailing shapes across segments: {trail}")
        dtype = _merged_dtype(name, [p.dtype for p in present])
        shape = trail.pop()
        parts = [
            sources[s][name].astype(dtype, copy=False) if name in sources[s]
            else _fill(name, dtype, store.segments[s].n_rows, shape)
            for s in segs
        ]
        whole = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out[name] = whole[perm]
    return out


def _row_shape(store: Store, segments: Sequence[str]) -> tuple[int, ...]:
    shapes = set()
    for name in segments:
        with store.segment_backend.embeddings_reader(store.segments[name].path) as reader:
            shapes.add(tuple(reader.shape[1:]))
    if len(shapes) > 1:
        raise StoreError(f"{store.path}: segments disagree on the embeddings' row shape: {sorted(shapes)}")
    return shapes.pop() if shapes else (store.dim,)


def _write_embeddings(store: Store, writer: Any, runs: Sequence[tuple[str, Any]], n: int) -> list[int]:
    """Copy the embeddings in output order, one shard at a time; returns the chunk checksums."""
    pieces = merge_consecutive(runs)  # (segment, src_start, dst_start, n)
    readers: dict[str, Any] = {}
    checksums: list[int] = []
    block_rows = writer.shard_rows
    p = 0
    try:
        for lo in range(0, n, block_rows):
            hi = min(lo + block_rows, n)
            buf = np.empty((hi - lo, *writer.row_shape), store.dtype)
            while p < len(pieces) and pieces[p][2] < hi:
                seg, src, dst, k = pieces[p]
                a, b = max(dst, lo), min(dst + k, hi)
                reader = readers.get(seg)
                if reader is None:
                    if len(readers) >= 16:
                        readers.pop(next(iter(readers))).close()
                    reader = readers[seg] = store.segment_backend.embeddings_reader(store.segments[seg].path)
                reader.read(src + (a - dst), src + (b - dst), buf[a - lo : b - lo])
                if dst + k <= hi:
                    p += 1
                else:
                    break
            writer.write_embeddings(lo, buf)
            cr = writer.chunk_rows
            checksums += [chunk_checksum(buf[c : c + cr]) for c in range(0, len(buf), cr)]
    finally:
        for reader in readers.values():
            reader.close()
    return checksums


def _covered(store: Store) -> list[SegmentInfo]:
    """Segments every item of which the base serves (nothing reads them any more)."""
    return [
        info for name, info in sorted(store.segments.items())
        if name != BASE_NAME and all(store.segment_of(it["key"]) == BASE_NAME for it in info.items)
    ]


def _drop(store: Store, segments: Sequence[SegmentInfo], durable: bool) -> int:
    """Remove segments: rename each to a ``.tmp~`` name (readers stop listing it at once), then delete it."""
    for info in segments:
        aside = info.path.with_name(tmp_name(info.path.suffix))
        try:
            os.rename(info.path, aside)
        except FileNotFoundError:
            continue
        if durable:
            fsync_dir(info.path.parent)
        crash_point("dropping")
        remove_path(aside)
    return len(segments)


def _index(store: Store, runs: Sequence[tuple[str, Any]], columns: Mapping[str, np.ndarray], checksums: list[int],
           chunk_rows: int, generation: int, sources: Sequence[str]) -> dict[str, Any]:
    items, pos = [], 0
    for key, loc in runs:
        it = {k: v for k, v in loc.info.items() if k != "start"}
        it.update(key=key, start=pos)
        items.append(it)
        pos += loc.n_rows
    arrays = {_EMB: _EMB, **{name: flat_name(name) for name in columns}}
    flat = list(arrays.values())
    if len(set(flat)) != len(flat) or "dim" in flat:
        raise StoreError(f"{store.path}: array names collide once flattened: {sorted(arrays)}")
    return {
        "format": SEGMENT_FORMAT, "format_version": SEGMENT_FORMAT_VERSION, "store_fingerprint": store.fingerprint,
        "writer": "compaction", "host": hostname(), "pid": os.getpid(), "created_at": now_iso(), "n_rows": pos,
        "dim": store.dim, "dtype": store.dtype.name, "chunk_rows": chunk_rows, "items": items,
        "columns": {name: columns[name].dtype.name if columns[name].dtype.kind != "O" else "str"
                    for name in columns if not name.startswith("rows/")},
        "checksums": {"algorithm": ALGORITHM, "embeddings_chunks": checksums, "rows": rows_crc(columns)},
        "compacted": {"layout": COMPACT_LAYOUT, "generation": generation, "arrays": arrays,
                      "sources": list(sources)},
    }


def _build(store: Store, tmp: Path, durable: bool) -> tuple[dict[str, Any], int]:
    """Write the new base at ``tmp``; returns its index and the bytes written."""
    runs = store.locations(None, "item")
    segs = sorted({loc.segment for _, loc in runs})
    n = sum(loc.n_rows for _, loc in runs)
    old = store.segments.get(BASE_NAME)
    generation = int(old.attrs["compacted"]["generation"]) + 1 if old is not None else 1
    row_shape = _row_shape(store, segs)
    chunk_rows = max(int(store.segments[s].attrs.get("chunk_rows") or 1) for s in segs) if segs else 1
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * store.dtype.itemsize
    shard_rows = max(chunk_rows, DEFAULT_SEGMENT_BYTES // max(1, row_bytes) // chunk_rows * chunk_rows)
    backend = create_backend(store.backend, store.compression)  # the base keeps the segments' codec
    writer = backend.open_base(tmp, n, row_shape, store.dtype, chunk_rows, shard_rows)
    try:
        checksums = _write_embeddings(store, writer, runs, n)
        columns = _columns(store, runs, _read_sources(store, segs))
        index = _index(store, runs, columns, checksums, writer.chunk_rows, generation, segs)
        for name, values in columns.items():
            flat = index["compacted"]["arrays"][name]
            writer.write_array(flat, values, ["row", *(f"{flat}_dim{i}" for i in range(1, values.ndim))])
        names = list(store.manifest.feature_names or [])
        if len(row_shape) == 1 and len(names) == store.dim:
            writer.write_array("dim", np.array([str(v) for v in names], dtype=object), ["dim"])
        writer.finish({LAYOUT_ATTR: COMPACT_LAYOUT, MANIFEST_ATTR: store.manifest_dict,
                       COMPACT_ATTR: index}, durable=durable)
    except BaseException:
        writer.abort()
        raise
    written = n * row_bytes + sum(v.nbytes for v in columns.values() if v.dtype.kind != "O")
    return index, written


def compact_store(path: str | Path, *, durable: bool = True) -> CompactionResult:
    """Fold every committed segment of the store at ``path`` into its compacted base (see the module doc).

    Safe to run while other processes write (their later segments stay segments) and to kill at any moment;
    a second compaction of the same store at the same time raises ``StoreError``.
    """
    t0 = time.perf_counter()
    store = Store(path)
    lock_owner = f"compaction-{os.getpid()}"
    if not try_claim(store.claims_dir, COMPACTION_LOCK, lock_owner, _LOCK_TTL_S):
        store.close()
        raise StoreError(f"{store.path} is being compacted by another live process; wait for it to finish")
    try:
        _clear_leftovers(store)
        store.refresh()
        covered = _covered(store)
        new = set(store.segments) - {BASE_NAME} - {info.name for info in covered}
        removed = _drop(store, covered, durable)
        if not new:
            store.refresh()
            return CompactionResult(store.path, False, store.n_items, store.n_rows, 0,
                                    time.perf_counter() - t0, removed)
        tmp = store.path / tmp_name(store.segment_backend.suffix)
        old = store.segments.get(BASE_NAME)
        index, written = _build(store, tmp, durable)
        crash_point("built")
        store.segment_backend.publish_base(store.path, tmp, None if old is None else old.attrs,
                                    int(index["compacted"]["generation"]), durable=durable)
        crash_point("published")
        store.refresh()
        removed += _drop(store, _covered(store), durable)
        store.refresh()
        return CompactionResult(store.path, True, store.n_items, store.n_rows, written,
                                time.perf_counter() - t0, removed)
    finally:
        release_claim(store.claims_dir, COMPACTION_LOCK, lock_owner)
        store.close()


def _clear_leftovers(store: Store) -> None:
    """Remove ``.tmp~`` bases of dead compactions in the store directory (their makers are gone)."""
    now = time.time()
    for entry in os.listdir(store.path):
        p = store.path / entry
        if entry.startswith(".tmp~") and leftover_is_dead(p, 3600.0, now):
            remove_path(p)

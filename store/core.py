"""Stores: ``create_store`` (write, resume), ``open_store`` (read), ``list_stores``.

A store is a directory of immutable *segments* (see ``store.layout``). A ``StoreWriter`` streams whole items into
an open segment written under a temporary name and commits it by renaming it into place: the rename is the
commit, so an item is done iff it is in a published segment, and a process killed at any moment leaves only
complete segments (plus ``.tmp~`` leftovers that readers ignore and ``gc`` removes). Each writer writes its own
segments, so several processes (or machines on a shared filesystem) can write one store at once.

Reads are ordered by (item key, row), whatever the segments and writers were, so a 2-writer run reads back
identical to a 1-writer run.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from store.backends import BACKENDS, EmbeddingsReader, SegmentBackend, SegmentWriter, create_backend
from store.checksums import ALGORITHM, chunk_checksum, rows_crc
from store.claims import DEFAULT_CLAIM_TTL_S, release_claim, try_claim
from store.errors import FingerprintMismatch, ItemNotFound, NotAStoreError, StoreError
from store.layout import (
    CLAIMS_DIR,
    FAILED_DIR,
    MANIFEST_FILE,
    SEGMENT_FORMAT,
    SEGMENT_FORMAT_VERSION,
    SEGMENTS_DIR,
    STORE_FILE,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    dir_size,
    escape_key,
    fsync_dir,
    fsync_tree,
    hostname,
    io_pool,
    now_iso,
    read_json,
    remove_path,
    safe_name,
    sanitize_name,
    tmp_name,
    write_json_atomic,
)
from store.schema import LABEL_PREFIX, QUALITY_PREFIX, ROW_COLUMNS, ItemRows, Manifest, _jsonable

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 2 << 20  # chunks of 1-2 MiB: the largest power-of-two row count that fits
DEFAULT_SEGMENT_BYTES = 64 << 20
ITEM_COLUMNS = ("item", "subject", "session", "trial", "fold")  # constant within an item
_STR_COLUMNS = tuple(k for k, v in ROW_COLUMNS.items() if v == "str")
Order = Literal["item", "segment"]


def default_chunk_rows(dim: int, dtype: Any) -> int:
    """Rows per chunk: the largest power of two whose chunk is at most 2 MiB (so 1-2 MiB), at least 1."""
    row_bytes = max(1, int(dim) * np.dtype(dtype).itemsize)
    rows = max(1, DEFAULT_CHUNK_BYTES // row_bytes)
    return 1 << (rows.bit_length() - 1)


def default_segment_rows(chunk_rows: int, dim: int, dtype: Any) -> int:
    """Rows per segment before a flush: a whole number of chunks, about 64 MiB, at least one chunk."""
    chunk_bytes = chunk_rows * max(1, int(dim) * np.dtype(dtype).itemsize)
    return chunk_rows * max(1, DEFAULT_SEGMENT_BYTES // chunk_bytes)


# --- read side -------------------------------------------------------------------------------------------------


@dataclass
class SegmentInfo:
    """A published segment and its index attribute (``items``, ``columns``, ``checksums``, ...)."""

    name: str
    path: Path
    attrs: dict[str, Any]

    @property
    def n_rows(self) -> int:
        return int(self.attrs["n_rows"])

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.attrs["items"]

    @property
    def columns(self) -> dict[str, str]:
        """Label and quality columns of this segment: ``{"labels/valence": "float64", "quality/x": "bool"}``."""
        return dict(self.attrs.get("columns", {}))


@dataclass(frozen=True)
class _Loc:
    segment: str
    start: int
    n_rows: int
    info: Mapping[str, Any]


@dataclass
class StoreData:
    """Rows read from a store: ``embeddings`` (n, dim) or None, and the row table ``rows`` in the same order."""

    embeddings: np.ndarray | None
    rows: pd.DataFrame

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> Any:
        """``data["embeddings"]`` or a row-table column, e.g. ``data["item"]``."""
        return self.embeddings if name == "embeddings" else self.rows[name]

    @property
    def label_names(self) -> list[str]:
        return [c[len(LABEL_PREFIX) :] for c in self.rows.columns if c.startswith(LABEL_PREFIX)]

    @property
    def quality_names(self) -> list[str]:
        return [c[len(QUALITY_PREFIX) :] for c in self.rows.columns if c.startswith(QUALITY_PREFIX)]

    def label(self, name: str) -> np.ndarray:
        return self.rows[LABEL_PREFIX + name].to_numpy()

    def mask(self, *names: str) -> np.ndarray:
        """Rows whose quality flags ``names`` (default: every bool quality column) are all true.

        A float quality column counts as true where it is finite and non-zero.
        """
        names = names or tuple(n for n in self.quality_names if self.rows[QUALITY_PREFIX + n].dtype == bool)
        out = np.ones(len(self.rows), dtype=bool)
        for name in names:
            col = self.rows[QUALITY_PREFIX + name].to_numpy()
            out &= col if col.dtype == bool else (np.isfinite(col) & (col != 0))
        return out


def _read_store_info(path: Path) -> dict[str, Any]:
    try:
        info = read_json(path / STORE_FILE)
    except FileNotFoundError as exc:
        raise NotAStoreError(
            f"no store at {path} (no {STORE_FILE}); `pipeline stores ls DIR` lists the stores under a directory"
        ) from exc
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path / STORE_FILE} is unreadable: {exc}") from exc
    if info.get("format") != STORE_FORMAT:
        raise StoreError(f"{path / STORE_FILE} is not a {STORE_FORMAT} marker (format={info.get('format')!r})")
    if int(info.get("format_version", 0)) > STORE_FORMAT_VERSION:
        raise StoreError(
            f"{path} has store format {info['format_version']}, newer than this code reads "
            f"({STORE_FORMAT_VERSION}); update the package"
        )
    if info.get("backend") not in BACKENDS:
        raise StoreError(f"{path}: unknown backend {info.get('backend')!r}; known: {', '.join(BACKENDS)}")
    return info


def _perm(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for each (s, l), vectorised."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)


class Store:
    """A store opened for reading. Segment indexes are read once and cached (segments are immutable);
    ``refresh()`` picks up segments committed since by other writers.

    Attributes: ``path``, ``backend`` (name), ``manifest``, ``fingerprint``, ``dim``, ``dtype`` (stored dtype).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._info = _read_store_info(self.path)
        self.backend: str = self._info["backend"]
        self._backend: SegmentBackend = create_backend(self.backend)
        try:
            raw = read_json(self.path / MANIFEST_FILE)
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path / MANIFEST_FILE} is unreadable: {exc}") from exc
        self._manifest_raw: dict[str, Any] = raw
        self.manifest = Manifest.from_dict(raw)
        self.fingerprint: str = str(raw.get("fingerprint") or self.manifest.fingerprint())
        self.dim = int(self.manifest.dim)
        self.dtype = np.dtype(self.manifest.dtype)
        self._segments: dict[str, SegmentInfo] = {}
        self._bad_segments: dict[str, str] = {}
        self._loc: dict[str, _Loc] = {}
        self._dups: dict[str, list[str]] = {}
        self._tables: dict[str, dict[str, np.ndarray]] = {}
        self._failed_cache: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._handles: list[Any] = []
        self._scan_segments()

    # -- identity
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def segments_dir(self) -> Path:
        return self.path / SEGMENTS_DIR

    @property
    def failed_dir(self) -> Path:
        return self.path / FAILED_DIR

    @property
    def claims_dir(self) -> Path:
        return self.path / CLAIMS_DIR

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, backend={self.backend!r}, items={len(self._loc)}, "
            f"dim={self.dim}, fingerprint={self.fingerprint!r})"
        )

    # -- index
    def refresh(self) -> None:
        """Pick up segments and failure records committed since this object was opened."""
        self._scan_segments()

    def _segment_names(self) -> list[str]:
        try:
            names = os.listdir(self.segments_dir)
        except FileNotFoundError:
            return []
        suffix = self._backend.suffix
        return sorted(n for n in names if not n.startswith(".") and n.endswith(suffix))

    def _scan_segments(self) -> None:
        names = self._segment_names()
        known = set(self._segments) | set(self._bad_segments)
        current = set(names)
        if current == known:
            return
        removed = known - current
        for name in removed:
            self._segments.pop(name, None)
            self._bad_segments.pop(name, None)
            self._tables.pop(name, None)
        if removed:
            self._loc.clear()
            self._dups.clear()
            for name in sorted(self._segments):
                self._index_segment(self._segments[name])
        for name in sorted(current - known):
            path = self.segments_dir / name
            try:
                attrs = self._backend.read_attrs(path)
                if attrs.get("format") != SEGMENT_FORMAT or not isinstance(attrs.get("items"), list):
                    raise StoreError(f"not a {SEGMENT_FORMAT} (format={attrs.get('format')!r})")
            except Exception as exc:  # an unreadable segment is reported by verify, not fatal to readers
                self._bad_segments[name] = f"{type(exc).__name__}: {exc}"
                log.warning("store %s: segment %s is unreadable and ignored: %s", self.path, name, exc)
                continue
            self._add_segment(SegmentInfo(name, path, attrs))

    def _add_segment(self, info: SegmentInfo) -> None:
        self._segments[info.name] = info
        self._index_segment(info)

    def _index_segment(self, info: SegmentInfo) -> None:
        for it in info.items:
            key = it["key"]
            loc = _Loc(info.name, int(it["start"]), int(it["n_rows"]), it)
            old = self._loc.get(key)
            if old is None:
                self._loc[key] = loc
                continue
            segs = self._dups.get(key, [old.segment])
            self._dups[key] = sorted(set(segs) | {info.name})
            if info.name < old.segment:  # the lexicographically first segment wins
                self._loc[key] = loc

    def _failed_records(self) -> dict[str, dict[str, Any]]:
        try:
            names = [n for n in os.listdir(self.failed_dir) if n.endswith(".json") and not n.startswith(".")]
        except FileNotFoundError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        seen = set()
        for name in names:
            path = self.failed_dir / name
            try:
                mtime = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                continue
            seen.add(name)
            cached = self._failed_cache.get(name)
            if cached is None or cached[0] != mtime:
                try:
                    rec = read_json(path)
                    rec = rec if isinstance(rec, dict) and isinstance(rec.get("key"), str) else None
                except (OSError, ValueError):
                    rec = None
                cached = self._failed_cache[name] = (mtime, rec)
            if cached[1] is not None:
                out[cached[1]["key"]] = cached[1]
        for name in set(self._failed_cache) - seen:
            del self._failed_cache[name]
        return out

    # -- status
    def status(self, key: str) -> Literal["done", "failed", "absent"]:
        """``done`` if the item is committed, ``failed`` if its last attempt failed, else ``absent``."""
        if key in self._loc:
            return "done"
        if (self.failed_dir / (escape_key(key) + ".json")).exists():
            return "failed"
        return "absent"

    def items(self, status: Literal["done", "failed"] = "done") -> list[str]:
        """Sorted keys of the committed (``done``) or ``failed`` items."""
        if status == "done":
            return sorted(self._loc)
        if status == "failed":
            return sorted(k for k in self._failed_records() if k not in self._loc)
        raise ValueError(f"status must be 'done' or 'failed', not {status!r}")

    def failures(self) -> dict[str, str]:
        """Failed (and not since committed) items: key -> error text, sorted by key."""
        recs = self._failed_records()
        return {k: str(recs[k].get("error", "")) for k in sorted(recs) if k not in self._loc}

    def item_info(self, key: str) -> dict[str, Any]:
        """Status, n_rows, timing_s, meta (and segment, subject, ... when done; error when failed)."""
        loc = self._loc.get(key)
        if loc is not None:
            info = {k: v for k, v in loc.info.items() if k != "start"}
            info.update(status="done", segment=loc.segment)
            return info
        rec = self._failed_records().get(key)
        if rec is not None:
            return {"key": key, "status": "failed", "n_rows": 0, "timing_s": rec.get("timing_s"), "meta": {},
                    "error": rec.get("error", ""), "writer": rec.get("writer"), "time": rec.get("time")}
        return {"key": key, "status": "absent", "n_rows": 0, "timing_s": None, "meta": {}}

    @property
    def n_rows(self) -> int:
        return sum(loc.n_rows for loc in self._loc.values())

    @property
    def n_items(self) -> int:
        return len(self._loc)

    def duplicates(self) -> dict[str, list[str]]:
        """Items committed in more than one segment -> the segments (readers use the first)."""
        return {k: list(v) for k, v in sorted(self._dups.items())}

    # -- row tables
    def _runs(self, items: Sequence[str] | None, order: Order) -> list[tuple[str, _Loc]]:
        if items is None:
            keys = sorted(self._loc)
        else:
            if isinstance(items, str):
                raise TypeError("items must be a sequence of keys, not one string")
            keys = sorted(set(items))
            missing = [k for k in keys if k not in self._loc]
            if missing:
                more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
                raise ItemNotFound(
                    f"store {self.path}: not committed: {', '.join(map(repr, missing[:5]))}{more}; "
                    f"see Store.items() / status()"
                )
        runs = [(k, self._loc[k]) for k in keys]
        if order == "segment":
            runs.sort(key=lambda r: (r[1].segment, r[1].start))
        elif order != "item":
            raise ValueError(f"order must be 'item' or 'segment', not {order!r}")
        return runs

    def _table(self, name: str) -> dict[str, np.ndarray]:
        """The segment's row table as numpy columns (DataFrame column names); cached. Never reads embeddings."""
        table = self._tables.get(name)
        if table is not None:
            return table
        info = self._segments[name]
        extra = list(info.columns)
        cols = self._backend.read_columns(info.path, ["rows/t_start_s", "rows/t_end_s", *extra])
        table = _table_from_index(info.items, cols)
        self._tables[name] = table
        return table

    def _column_kinds(self, segments: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        labels: set[str] = set()
        quality: dict[str, str] = {}
        for name in segments:
            for col, dt in self._segments[name].columns.items():
                group, _, cname = col.partition("/")
                if group == "labels":
                    labels.add(cname)
                elif group == "quality":
                    quality[cname] = "bool" if (dt == "bool" and quality.get(cname, "bool") == "bool") else "float32"
        return sorted(labels), dict(sorted(quality.items()))

    def _assemble(self, runs: Sequence[tuple[str, _Loc]], columns: Sequence[str] | None) -> pd.DataFrame:
        segs = sorted({loc.segment for _, loc in runs})
        label_names, quality_kinds = self._column_kinds(segs) if segs else self._column_kinds(sorted(self._segments))
        names = _frame_columns(label_names, quality_kinds)
        if columns is not None:
            unknown = [c for c in columns if c not in names]
            if unknown:
                raise StoreError(f"unknown column(s) {unknown}; this store has: {', '.join(names)}")
            names = [c for c in names if c in set(columns)]
        if not runs:
            return _frame({}, names, label_names, quality_kinds, 0)
        tables, offsets, off = [], {}, 0
        for s in segs:
            t = self._table(s)
            tables.append(t)
            offsets[s] = off
            off += len(t["row"])
        starts = np.array([offsets[loc.segment] + loc.start for _, loc in runs], dtype=np.int64)
        lengths = np.array([loc.n_rows for _, loc in runs], dtype=np.int64)
        perm = _perm(starts, lengths)
        identity = len(perm) == off and bool(np.all(perm == np.arange(off)))
        data = {}
        for col in names:
            parts = [_column_or_fill(t, col, quality_kinds) for t in tables]
            whole = parts[0] if len(parts) == 1 else np.concatenate(parts)
            data[col] = whole if identity else whole[perm]
        return _frame(data, names, label_names, quality_kinds, len(perm))

    def rows(
        self, items: Sequence[str] | None = None, *, columns: Sequence[str] | None = None, order: Order = "item"
    ) -> pd.DataFrame:
        """The row table (no embeddings): ROW_COLUMNS, ``label_*`` (float64), ``q_*`` (bool or float32).

        ``order="item"`` (default): by (item key, row). ``order="segment"``: the order of ``to_dask(order="segment")``.
        """
        return self._assemble(self._runs(items, order), columns)

    # -- embeddings
    def read(
        self,
        items: Sequence[str] | None = None,
        *,
        embeddings: bool = True,
        columns: Sequence[str] | None = None,
        dtype: Any = np.float32,
        order: Order = "item",
    ) -> StoreData:
        """Rows (and embeddings, as ``dtype``; None keeps the stored dtype) of ``items`` (default: all done)."""
        runs = self._runs(items, order)
        table = self._assemble(runs, columns)
        if not embeddings:
            return StoreData(None, table)
        out = np.empty((len(table), self.dim), dtype=self.dtype if dtype is None else np.dtype(dtype))
        by_segment: dict[str, list[tuple[int, int, int]]] = {}
        dst = 0
        for _, loc in runs:
            by_segment.setdefault(loc.segment, []).append((loc.start, dst, loc.n_rows))
            dst += loc.n_rows
        for seg, seg_runs in by_segment.items():
            merged = _merge_runs(seg_runs)
            with self._backend.embeddings_reader(self._segments[seg].path) as reader:
                _read_runs(reader, merged, out)
        return StoreData(out, table)

    def iter_items(
        self, items: Sequence[str] | None = None, *, dtype: Any = np.float32
    ) -> Iterator[tuple[str, np.ndarray, pd.DataFrame]]:
        """(key, embeddings (n, dim), row table) per committed item, by key."""
        runs = self._runs(items, "item")
        label_names, quality_kinds = self._column_kinds(sorted({loc.segment for _, loc in runs}))
        names = _frame_columns(label_names, quality_kinds)
        readers: dict[str, EmbeddingsReader] = {}
        filled: dict[str, dict[str, np.ndarray]] = {}
        try:
            for key, loc in runs:
                if loc.segment not in filled:
                    if len(filled) >= 16:
                        filled.pop(next(iter(filled)))
                    table = self._table(loc.segment)
                    filled[loc.segment] = {c: _column_or_fill(table, c, quality_kinds) for c in names}
                sl = slice(loc.start, loc.start + loc.n_rows)
                data = {c: v[sl] for c, v in filled[loc.segment].items()}
                reader = readers.get(loc.segment)
                if reader is None:
                    if len(readers) >= 16:
                        readers.pop(next(iter(readers))).close()
                    reader = readers[loc.segment] = self._backend.embeddings_reader(self._segments[loc.segment].path)
                emb = np.empty((loc.n_rows, self.dim), dtype=self.dtype if dtype is None else np.dtype(dtype))
                reader.read(loc.start, loc.start + loc.n_rows, emb)
                yield key, emb, _frame(data, names, label_names, quality_kinds, loc.n_rows)
        finally:
            for reader in readers.values():
                reader.close()

    def to_dask(self, *, order: Order = "item", dtype: Any = None) -> Any:
        """All committed embeddings as a lazy ``dask.array`` (n, dim), rows in the order of ``rows(order=...)``.

        ``order="item"`` matches ``read()``/``rows()``; ``order="segment"`` is the segments' own order (one
        block per segment, cheapest graph) and matches ``rows(order="segment")``. Duplicate copies of an item
        are left out in both. ``dtype=None`` keeps the stored dtype. HDF5 files stay open until ``close()``.
        """
        import dask.array as da

        runs = self._runs(None, order)
        if not runs:
            return da.zeros((0, self.dim), dtype=self.dtype if dtype is None else dtype, chunks=(1, self.dim))
        arrays: dict[str, Any] = {}
        blocks = []
        for seg, start, _dst, n in _merge_consecutive(runs):
            if seg not in arrays:
                arr, handle = self._backend.to_dask(
                    self._segments[seg].path, name=f"mmer-{self.fingerprint}-{seg}-{uuid.uuid4().hex[:6]}"
                )
                arrays[seg] = arr
                if handle is not None:
                    self._handles.append(handle)
            blocks.append(arrays[seg][start : start + n])
        x = blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=0)
        return x if dtype is None else x.astype(dtype)

    # -- health and summary
    def verify(self, *, checksums: bool = True) -> list[str]:
        """Problems found, one line each; [] = healthy. Lines starting ``warning:`` are not errors."""
        from store.maintenance import verify_store

        return verify_store(self, checksums=checksums)

    def size_bytes(self) -> int:
        return dir_size(self.path)

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": m.kind,
            "dataset": m.dataset,
            "extractor": m.extractor,
            "backend": self.backend,
            "items_done": len(self._loc),
            "items_failed": len(self.failures()),
            "rows": self.n_rows,
            "dim": self.dim,
            "dtype": str(self.dtype),
            "segments": len(self._segments),
            "size_bytes": self.size_bytes(),
            "fingerprint": self.fingerprint,
            "created_at": m.created_at,
        }

    def subject_counts(self) -> pd.DataFrame:
        """Per subject: committed items and rows (from the segment indexes; no arrays are read)."""
        counts: dict[str, list[int]] = {}
        for loc in self._loc.values():
            c = counts.setdefault(str(loc.info.get("subject", "")), [0, 0])
            c[0] += 1
            c[1] += loc.n_rows
        frame = pd.DataFrame(
            [(s, c[0], c[1]) for s, c in sorted(counts.items())], columns=["subject", "items", "rows"]
        )
        return frame

    # -- lifecycle
    def close(self) -> None:
        for handle in self._handles:
            try:
                handle.close()
            except Exception:  # closing is best effort
                pass
        self._handles.clear()
        self._tables.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _table_from_index(items: Sequence[Mapping[str, Any]], cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    counts = np.array([int(it["n_rows"]) for it in items], dtype=np.int64)
    n = int(counts.sum())

    def rep(values: list[Any], dtype: Any) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), counts) if len(values) else np.empty(0, dtype)

    starts = np.cumsum(counts) - counts
    table = {
        "item": rep([it["key"] for it in items], object),
        "subject": rep([str(it.get("subject", "")) for it in items], object),
        "session": rep([int(it.get("session", 1)) for it in items], np.int32),
        "trial": rep([str(it.get("trial", "")) for it in items], object),
        "row": (np.arange(n, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32),
        "t_start_s": np.asarray(cols["rows/t_start_s"], dtype=np.float64),
        "t_end_s": np.asarray(cols["rows/t_end_s"], dtype=np.float64),
        "fold": rep([int(it.get("fold", -1)) for it in items], np.int16),
    }
    for name, values in cols.items():
        group, _, cname = name.partition("/")
        if group == "labels":
            table[LABEL_PREFIX + cname] = np.asarray(values, dtype=np.float64)
        elif group == "quality":
            values = np.asarray(values)
            table[QUALITY_PREFIX + cname] = values if values.dtype == bool else values.astype(np.float32)
    return table


def _frame_columns(label_names: Sequence[str], quality_kinds: Mapping[str, str]) -> list[str]:
    return [*ROW_COLUMNS, *(LABEL_PREFIX + n for n in label_names), *(QUALITY_PREFIX + n for n in quality_kinds)]


def _column_or_fill(table: Mapping[str, np.ndarray], col: str, quality_kinds: Mapping[str, str]) -> np.ndarray:
    values = table.get(col)
    n = len(table["row"])
    if col.startswith(QUALITY_PREFIX) and col[len(QUALITY_PREFIX) :] in quality_kinds:
        kind = quality_kinds[col[len(QUALITY_PREFIX) :]]
        if values is None:
            return np.zeros(n, bool) if kind == "bool" else np.full(n, np.nan, np.float32)
        return values if kind == "bool" else values.astype(np.float32, copy=False)
    if values is None:
        return np.full(n, np.nan, np.float64)
    return values


def _frame(
    data: Mapping[str, np.ndarray], names: Sequence[str], label_names: Sequence[str],
    quality_kinds: Mapping[str, str], n: int,
) -> pd.DataFrame:
    out = {}
    for col in names:
        values = data.get(col)
        if values is None:  # empty table: typed empty columns
            if col in ROW_COLUMNS:
                dt = ROW_COLUMNS[col]
                values = np.empty(0, object if dt == "str" else dt)
            elif col.startswith(LABEL_PREFIX):
                values = np.empty(0, np.float64)
            else:
                values = np.empty(0, bool if quality_kinds.get(col[len(QUALITY_PREFIX) :]) == "bool" else np.float32)
        if col in _STR_COLUMNS:
            out[col] = pd.array(values, dtype="str")
        else:
            out[col] = values
    return pd.DataFrame(out, columns=list(names))


def _merge_runs(runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(src_start, dst_start, n) runs sorted by source; adjacent runs contiguous in both are merged."""
    out: list[tuple[int, int, int]] = []
    for src, dst, n in sorted(runs):
        if out and out[-1][0] + out[-1][2] == src and out[-1][1] + out[-1][2] == dst:
            s, d, m = out[-1]
            out[-1] = (s, d, m + n)
        else:
            out.append((src, dst, n))
    return out


def _merge_consecutive(runs: Sequence[tuple[str, _Loc]]) -> list[tuple[str, int, int, int]]:
    """(segment, src_start, dst_start, n) in output order, merging runs that continue the previous one."""
    out: list[tuple[str, int, int, int]] = []
    dst = 0
    for _, loc in runs:
        if out and out[-1][0] == loc.segment and out[-1][1] + out[-1][3] == loc.start:
            seg, s, d, m = out[-1]
            out[-1] = (seg, s, d, m + loc.n_rows)
        else:
            out.append((loc.segment, loc.start, dst, loc.n_rows))
        dst += loc.n_rows
    return out


def _read_runs(reader: EmbeddingsReader, runs: list[tuple[int, int, int]], out: np.ndarray) -> None:
    """Read runs of one segment into ``out``: many scattered runs covering most of a span read the span once."""
    runs = [r for r in runs if r[2] > 0]
    if not runs:
        return
    lo = runs[0][0]
    hi = max(s + n for s, _, n in runs)
    needed = sum(n for _, _, n in runs)
    if len(runs) > 4 and needed * 2 >= hi - lo:
        buf = np.empty((hi - lo, out.shape[1]), dtype=reader.dtype)
        reader.read(lo, hi, buf)
        for s, d, n in runs:
            out[d : d + n] = buf[s - lo : s - lo + n]
        return
    for s, d, n in runs:
        reader.read(s, s + n, out[d : d + n])


# --- write side ------------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    key: str
    start: int
    n_rows: int
    subject: str
    session: int
    trial: str
    fold: int
    t_start_s: np.ndarray
    t_end_s: np.ndarray
    labels: dict[str, np.ndarray]
    quality: dict[str, np.ndarray]
    timing_s: float | None
    meta: dict[str, Any] = field(default_factory=dict)


class StoreWriter(Store):
    """Writes items into a store; see ``create_store``. Not thread-safe: one writer per thread or process.

    Items stream into an open, uncommitted segment (a ``.tmp~`` name under ``segments/``): ``write_item`` writes
    the item's full chunks straight from the caller's array (the rows of a partial chunk wait in a one-chunk
    staging buffer). The open segment is committed (renamed into place) when it holds ``segment_rows`` rows, when
    ``flush_interval_s`` has passed since the last commit (checked on each call), on ``flush()``, ``close()`` and
    when a ``with`` block exits. An item is ``done`` only once committed; a killed process leaves only the
    uncommitted ``.tmp~`` segment, which readers ignore.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        writer_id: str | None = None,
        chunk_rows: int | None = None,
        segment_rows: int | None = None,
        flush_interval_s: float = 30.0,
        claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
        durable: bool = True,
        compression: str | None = None,
    ) -> None:
        super().__init__(path)
        if writer_id is None:
            writer_id = sanitize_name(f"{hostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        if not safe_name(writer_id):
            raise StoreError(f"writer_id {writer_id!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]* (it names files)")
        self.writer_id = writer_id
        self.chunk_rows = int(chunk_rows or self._info.get("chunk_rows") or default_chunk_rows(self.dim, self.dtype))
        if self.chunk_rows < 1:
            raise StoreError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        self.segment_rows = int(segment_rows or default_segment_rows(self.chunk_rows, self.dim, self.dtype))
        self.flush_interval_s = float(flush_interval_s)
        self.claim_ttl_s = float(claim_ttl_s)
        self.durable = bool(durable)
        compression = compression if compression is not None else self._info.get("compression")
        self._backend = create_backend(self.backend, compression)
        self._pending: dict[str, _Pending] = {}
        self._claims: set[str] = set()
        self._seq = self._next_seq()
        self._last_flush = time.monotonic()
        self._closed = False
        # the open segment
        self._seg: SegmentWriter | None = None
        self._seg_rows = 0
        self._n_chunks = 0
        self._checksums: list[int] = []
        self._staging: np.ndarray | None = None
        self._fill = 0

    def _next_seq(self) -> int:
        prefix = f"{self.writer_id}-"
        seqs = [0]
        for name in self._segment_names():
            stem = name[: -len(self._backend.suffix)]
            if stem.startswith(prefix) and stem[len(prefix) :].isdigit():
                seqs.append(int(stem[len(prefix) :]))
        return max(seqs) + 1

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"writer {self.writer_id} of {self.path} is closed")

    @property
    def pending(self) -> list[str]:
        """Keys written but not yet committed (in the open segment)."""
        return list(self._pending)

    # -- claims
    def claim(self, key: str) -> bool:
        """True if this writer may do ``key``: it is not committed and no live writer holds its claim.

        The claim is held until the item commits (or fails, or the writer closes). Claims of dead processes on
        this host, or older than ``claim_ttl_s``, are taken over.
        """
        self._check_open()
        if key in self._claims:
            return True
        if key in self._pending:
            return False
        self._scan_segments()
        if key in self._loc:
            return False
        if not try_claim(self.claims_dir, key, self.writer_id, self.claim_ttl_s):
            return False
        self._scan_segments()  # a writer may have committed it and released its claim just before ours
        if key in self._loc:
            release_claim(self.claims_dir, key, self.writer_id)
            return False
        self._claims.add(key)
        return True

    def release(self, key: str) -> None:
        """Give up this writer's claim of ``key`` (no-op if it holds none)."""
        if key in self._claims:
            release_claim(self.claims_dir, key, self.writer_id)
            self._claims.discard(key)

    # -- writing
    def write_item(self, rows: ItemRows, timing_s: float | None = None) -> None:
        """Add all rows of one item to the open segment; the item commits whole with it (or not at all).

        The embeddings are written (cast to the store dtype) before this returns, so ``rows``' arrays may be
        reused by the caller afterwards.
        """
        self._check_open()
        key = rows.key
        if not isinstance(key, str) or not key:
            raise StoreError(f"item key must be a non-empty string, got {key!r}")
        emb = rows.embeddings
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise StoreError(
                f"item {key}: embeddings have shape {emb.shape}; this store's manifest says dim={self.dim}"
            )
        if emb.dtype.kind not in "fiub":
            raise StoreError(f"item {key}: embeddings dtype {emb.dtype} is not numeric")
        for group, names in (("label", rows.labels), ("quality", rows.quality)):
            bad = [n for n in names if not safe_name(n)]
            if bad:
                raise StoreError(f"item {key}: {group} names {bad} must match [A-Za-z0-9_][A-Za-z0-9_.-]*")
        if key in self._loc:
            raise StoreError(
                f"item {key} is already committed in {self.path} (segment {self._loc[key].segment}); "
                "skip done items with status()/claim()"
            )
        if key in self._pending:
            raise StoreError(f"item {key} was already written to this writer's open segment")
        try:
            meta = _jsonable(dict(rows.meta))
            json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"item {key}: meta is not JSON-able: {exc}") from exc
        quality = {}
        for name, values in rows.quality.items():
            values = np.asarray(values)
            quality[name] = values.astype(bool) if values.dtype == bool else values.astype(np.float32)
        pending = _Pending(
            key=key, start=self._seg_rows, n_rows=rows.n_rows, subject=str(rows.subject),
            session=int(rows.session), trial=str(rows.trial), fold=int(rows.fold),
            t_start_s=np.array(rows.t_start_s, np.float64), t_end_s=np.array(rows.t_end_s, np.float64),
            labels={n: np.array(v, np.float64) for n, v in rows.labels.items()}, quality=quality,
            timing_s=None if timing_s is None else float(timing_s), meta=meta,
        )
        try:
            self._append_embeddings(emb)
        except BaseException as exc:
            dropped = self._abort_segment()
            raise StoreError(
                f"{self.path}: writing item {key} failed ({type(exc).__name__}: {exc}); the open segment was "
                f"discarded with its {len(dropped)} uncommitted item(s), which stay absent and will be redone"
            ) from exc
        self._pending[key] = pending
        self._seg_rows += rows.n_rows
        if self._seg_rows >= self.segment_rows or time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def _append_embeddings(self, emb: np.ndarray) -> None:
        """Full chunks go straight from ``emb`` to the segment; a partial chunk's rows wait in ``_staging``."""
        if self._seg is None:
            tmp = self.segments_dir / tmp_name(self._backend.suffix)
            self._seg = self._backend.open_segment(tmp, self.dim, self.dtype, self.chunk_rows)
        cr, k, pos = self.chunk_rows, emb.shape[0], 0
        direct: list[np.ndarray] = []
        while pos < k:
            if self._fill == 0 and k - pos >= cr:
                direct.append(emb[pos : pos + cr])
                pos += cr
                continue
            if direct:
                self._emit(direct)
                direct = []
            if self._staging is None:
                self._staging = np.empty((cr, self.dim), self.dtype)
            take = min(cr - self._fill, k - pos)
            self._staging[self._fill : self._fill + take] = emb[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == cr:
                self._emit([self._staging])
                self._fill = 0
        if direct:
            self._emit(direct)

    def _emit(self, blocks: list[np.ndarray]) -> None:
        """Write full chunks; when the backend allows, the writes run in pool threads while this thread computes
        the checksums (both release the GIL). Returns once every write is done: the caller may reuse its array."""
        seg = self._seg
        assert seg is not None
        first = self._n_chunks
        self._n_chunks += len(blocks)
        stored = [np.ascontiguousarray(b, dtype=self.dtype) for b in blocks]
        if not seg.parallel_chunks:
            for i, block in enumerate(stored):
                seg.write_chunk(first + i, block)
            self._checksums.extend(chunk_checksum(b) for b in stored)
            return
        futures = [io_pool().submit(seg.write_chunk, first + i, block) for i, block in enumerate(stored)]
        try:
            self._checksums.extend(chunk_checksum(b) for b in stored)
        finally:
            for future in futures:
                future.result()

    def _abort_segment(self) -> list[str]:
        """Discard the open segment and its uncommitted items (claims released); returns their keys."""
        dropped = list(self._pending)
        if self._seg is not None:
            try:
                self._seg.abort()
            except Exception:  # the segment is garbage either way; gc removes leftovers
                log.debug("aborting segment %s failed", self._seg.path, exc_info=True)
        for key in dropped:
            self.release(key)
        self._reset_segment()
        return dropped

    def _reset_segment(self) -> None:
        self._seg = None
        self._seg_rows = 0
        self._n_chunks = 0
        self._checksums = []
        self._fill = 0
        self._pending.clear()

    def mark_failed(self, key: str, error: str, timing_s: float | None = None) -> None:
        """Record that ``key`` failed with ``error`` (replacing an older record); releases its claim."""
        self._check_open()
        if key in self._loc or key in self._pending:
            log.warning("store %s: item %s is %s; not marking it failed", self.path, key,
                        "committed" if key in self._loc else "written, not yet committed")
            return
        record = {"key": key, "error": str(error), "timing_s": None if timing_s is None else float(timing_s),
                  "writer": self.writer_id, "host": hostname(), "pid": os.getpid(), "time": now_iso()}
        write_json_atomic(self.failed_dir / (escape_key(key) + ".json"), record, durable=self.durable)
        self.release(key)
        if self._pending and time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Commit the open segment with its items (no-op when there is none)."""
        self._check_open()
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        seg = self._seg
        assert seg is not None
        items = list(self._pending.values())
        n = self._seg_rows
        tail = self._staging[: self._fill] if (self._staging is not None and self._fill) else np.empty(
            (0, self.dim), self.dtype
        )
        checksums = self._checksums + ([chunk_checksum(tail)] if len(tail) else [])
        columns, kinds = _build_columns(items, n)
        attrs = {
            "format": SEGMENT_FORMAT,
            "format_version": SEGMENT_FORMAT_VERSION,
            "store_fingerprint": self.fingerprint,
            "writer": self.writer_id,
            "host": hostname(),
            "pid": os.getpid(),
            "created_at": now_iso(),
            "n_rows": n,
            "dim": self.dim,
            "dtype": self.dtype.name,
            "chunk_rows": self.chunk_rows if self._n_chunks else max(1, n),
            "items": [
                {"key": it.key, "start": it.start, "n_rows": it.n_rows, "subject": it.subject,
                 "session": it.session, "trial": it.trial, "fold": it.fold, "timing_s": it.timing_s,
                 "meta": it.meta}
                for it in items
            ],
            "columns": kinds,
            "checksums": {"algorithm": ALGORITHM, "embeddings_chunks": checksums, "rows": rows_crc(columns)},
        }
        try:
            seg.finish(n, tail, columns, attrs, durable=self.durable)
            final = self._publish(seg.path)
        except BaseException as exc:
            dropped = self._abort_segment()
            raise StoreError(
                f"{self.path}: committing a segment failed ({type(exc).__name__}: {exc}); its {len(dropped)} "
                "uncommitted item(s) stay absent and will be redone"
            ) from exc
        # Committed. Index it, then tidy up failure records and claims.
        self._add_segment(SegmentInfo(final.name, final, json.loads(json.dumps(attrs))))
        for it in items:
            failed = self.failed_dir / (escape_key(it.key) + ".json")
            if failed.exists():
                remove_path(failed)
            self.release(it.key)
        self._reset_segment()

    def _publish(self, tmp: Path) -> Path:
        """Rename ``tmp`` to this writer's next segment name without ever replacing an existing segment."""
        for _ in range(1000):
            final = self.segments_dir / f"{self.writer_id}-{self._seq:06d}{self._backend.suffix}"
            self._seq += 1
            if os.path.lexists(final):
                continue
            try:
                if tmp.is_dir():
                    os.rename(tmp, final)  # fails on an existing non-empty directory
                else:
                    os.link(tmp, final)  # fails on an existing file, unlike rename
                    os.unlink(tmp)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
            if self.durable:
                fsync_dir(self.segments_dir)
            return final
        raise StoreError(f"{self.segments_dir}: could not find a free segment name for writer {self.writer_id}")

    def close(self) -> None:
        """Commit the open segment, release this writer's claims. Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            if self._seg is not None:
                self._abort_segment()
            for key in list(self._claims):
                self.release(key)
            self._closed = True
            super().close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # the written items are whole: commit them even when the block raised


def _build_columns(items: Sequence[_Pending], n: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    counts = np.array([it.n_rows for it in items], dtype=np.int64)

    def rep(values: list[Any], dtype: Any) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), counts)

    def cat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(0, dtype)

    starts = np.cumsum(counts) - counts
    columns: dict[str, np.ndarray] = {
        "rows/item": rep([it.key for it in items], object),
        "rows/subject": rep([it.subject for it in items], object),
        "rows/session": rep([it.session for it in items], np.int32),
        "rows/trial": rep([it.trial for it in items], object),
        "rows/row": (np.arange(n, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32),
        "rows/t_start_s": cat([it.t_start_s for it in items], np.float64),
        "rows/t_end_s": cat([it.t_end_s for it in items], np.float64),
        "rows/fold": rep([it.fold for it in items], np.int16),
    }
    kinds: dict[str, str] = {}
    for name in sorted({name for it in items for name in it.labels}):
        columns[f"labels/{name}"] = cat(
            [it.labels.get(name, np.full(it.n_rows, np.nan)) for it in items], np.float64
        )
        kinds[f"labels/{name}"] = "float64"
    for name in sorted({name for it in items for name in it.quality}):
        present = [it.quality[name] for it in items if name in it.quality]
        is_bool = all(v.dtype == bool for v in present)
        fill = (lambda k: np.zeros(k, bool)) if is_bool else (lambda k: np.full(k, np.nan, np.float32))
        columns[f"quality/{name}"] = cat(
            [it.quality[name] if name in it.quality else fill(it.n_rows) for it in items],
            bool if is_bool else np.float32,
        )
        kinds[f"quality/{name}"] = "bool" if is_bool else "float32"
    return columns, kinds


# --- entry points ----------------------------------------------------------------------------------------------


def _create_layout(
    path: Path, manifest: Manifest, backend: str, chunk_rows: int | None, compression: str | None, durable: bool
) -> None:
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise NotAStoreError(f"{path} exists and is not a store (no {STORE_FILE}); choose another path")
    tmp = parent / f".{path.name}{tmp_name()}"
    try:
        tmp.mkdir()
        for sub in (SEGMENTS_DIR, FAILED_DIR, CLAIMS_DIR):
            (tmp / sub).mkdir(parents=True)
        data = manifest.to_dict()
        (tmp / MANIFEST_FILE).write_text(json.dumps(data, indent=1, sort_keys=True))
        info = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, "backend": backend,
                "chunk_rows": chunk_rows, "compression": compression, "fingerprint": data["fingerprint"],
                "created_at": now_iso()}
        (tmp / STORE_FILE).write_text(json.dumps(info, indent=1, sort_keys=True))
        if durable:
            fsync_tree(tmp)
        try:
            os.rename(tmp, path)  # atomic; replaces only an empty directory
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not (path / STORE_FILE).exists():
                raise
            # another process created the store first: use theirs
    finally:
        if tmp.exists():
            remove_path(tmp)
    if durable:
        fsync_dir(parent)


def _field_value(d: Mapping[str, Any], dotted: str) -> Any:
    value: Any = d
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def create_store(
    path: str | Path,
    manifest: Manifest,
    *,
    backend: Literal["zarr", "hdf5"] | str | None = "zarr",
    chunk_rows: int | None = None,
    writer_id: str | None = None,
    segment_rows: int | None = None,
    flush_interval_s: float = 30.0,
    compression: str | None = None,
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
    durable: bool = True,
) -> StoreWriter:
    """Create the store at ``path`` (or open it for appending when it exists with the same fingerprint).

    A store that exists with a different fingerprint raises ``FingerprintMismatch`` naming the differing fields.
    ``chunk_rows``: rows per chunk (default: 1-2 MiB chunks). ``segment_rows``: rows per commit
    (default: ~64 MiB). ``durable``: fsync every segment before publishing it (protects against power loss
    too, not just process kills). ``compression``: None (default), ``"zstd"`` (zarr), ``"gzip"``/``"lzf"`` (hdf5).
    """
    path = Path(path)
    if isinstance(manifest, Mapping):
        manifest = Manifest.from_dict(manifest)
    if int(manifest.dim) < 1:
        raise StoreError(f"manifest.dim must be >= 1, got {manifest.dim}")
    try:
        kind = np.dtype(manifest.dtype).kind
    except TypeError:
        kind = ""
    if kind != "f":
        raise StoreError(f"manifest.dtype must be a float type (float16 or float32), got {manifest.dtype!r}")
    if not manifest.created_at:
        manifest = dataclasses.replace(manifest, created_at=now_iso())
    if not (path / STORE_FILE).exists():
        name = backend or "zarr"
        if name not in BACKENDS:
            raise StoreError(f"unknown store backend {name!r}; known: {', '.join(BACKENDS)}")
        create_backend(name, compression)  # validates the compression before anything is written
        _create_layout(path, manifest, name, chunk_rows, compression, durable)
    info = _read_store_info(path)
    if backend is not None and info["backend"] != backend:
        raise StoreError(f"{path} is a {info['backend']} store; it was opened with backend={backend!r}")
    stored = read_json(path / MANIFEST_FILE)
    requested = manifest.fingerprint()
    if stored.get("fingerprint") != requested:
        diffs = Manifest.from_dict(stored).differences(manifest)
        old, new = Manifest.from_dict(stored).fingerprint_fields(), manifest.fingerprint_fields()
        details = "; ".join(
            f"{d}: {_field_value(old, d)!r} (store) vs {_field_value(new, d)!r} (requested)" for d in diffs[:8]
        )
        raise FingerprintMismatch(path, str(stored.get("fingerprint")), requested, diffs, details)
    return StoreWriter(
        path, writer_id=writer_id, chunk_rows=chunk_rows, segment_rows=segment_rows,
        flush_interval_s=flush_interval_s, claim_ttl_s=claim_ttl_s, durable=durable, compression=compression,
    )


def open_store(path: str | Path) -> Store:
    """Open the store at ``path`` read-only (backend from its ``store.json``)."""
    return Store(path)


def is_store(path: str | Path) -> bool:
    return (Path(path) / STORE_FILE).is_file()


def list_stores(directory: str | Path) -> list[Path]:
    """Stores at or under ``directory`` (not descending into stores or hidden directories), sorted."""
    root = Path(directory)
    if is_store(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if STORE_FILE in filenames and Path(dirpath) != root:
            found.append(Path(dirpath))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)

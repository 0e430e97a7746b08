"""``Store``: a store opened for reading, its segment index and the reading of rows and embeddings.

Reads are ordered by (item key, row), whatever the segments and writers were, so a 2-writer run reads back
identical to a 1-writer run.
"""

from __future__ import annotations

import copy
import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from store.backends import BACKENDS, EmbeddingsReader, SegmentBackend, create_backend
from store.errors import ItemNotFound, NotAStoreError, StoreError
from store.layout import (
    BASE_NAME,
    CLAIMS_DIR,
    FAILED_DIR,
    MANIFEST_FILE,
    SEGMENT_FORMAT,
    SEGMENTS_DIR,
    STORE_FILE,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    dir_size,
    escape_key,
    read_json,
)
from store.rows import StoreData, _column_or_fill, _frame, _frame_columns, table_from_index
from store.schema import Manifest
from store.segments import ItemLocation, SegmentInfo
from store.verify import verify_store

log = logging.getLogger(__name__)

Order = Literal["item", "segment"]




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
        self._loc: dict[str, ItemLocation] = {}
        self._dups: dict[str, list[str]] = {}
        self._tables: dict[str, dict[str, np.ndarray]] = {}
        self._failed_cache: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._handles: list[Any] = []
        self._base_stamp: tuple[int, int, int] | None = None
        self._scan_segments()

    # -- identity
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def feature_names(self) -> list[str] | None:
        """Names of the ``dim`` embedding columns from the manifest (e.g. ``Fp1_delta``), or None."""
        names = [str(v) for v in (self.manifest.feature_names or [])]
        return names if len(names) == self.dim else None

    @property
    def compacted(self) -> bool:
        """True once ``compact_store`` has given the store a compacted base (``xr.open_zarr(path)`` etc. work)."""
        return BASE_NAME in self._segments

    @property
    def compression(self) -> str | None:
        """The codec the store's segments (and its compacted base) are written with (``store.json``), or None."""
        value = self._info.get("compression")
        return None if value is None else str(value)

    @property
    def manifest_dict(self) -> dict[str, Any]:
        """The manifest exactly as ``manifest.json`` holds it (a copy; ``manifest`` is the parsed one)."""
        return copy.deepcopy(self._manifest_raw)

    @property
    def store_info(self) -> Mapping[str, Any]:
        """The ``store.json`` marker (format, backend, chunk_rows, compression, fingerprint, ...); a read-only view."""
        return MappingProxyType(self._info)

    @property
    def segments_dir(self) -> Path:
        return self.path / SEGMENTS_DIR

    @property
    def failed_dir(self) -> Path:
        return self.path / FAILED_DIR

    @property
    def claims_dir(self) -> Path:
        return self.path / CLAIMS_DIR

    @property
    def segments(self) -> Mapping[str, SegmentInfo]:
        """The readable segments (and the compacted base, as ``BASE_NAME``) by name; a read-only view."""
        return MappingProxyType(self._segments)

    @property
    def bad_segments(self) -> Mapping[str, str]:
        """Segments readers ignore because their index is unreadable: name -> the error; a read-only view."""
        return MappingProxyType(self._bad_segments)

    @property
    def segment_backend(self) -> SegmentBackend:
        """The backend that reads this store's segment files (a ``StoreWriter`` writes with its own)."""
        return self._backend

    def segment_of(self, key: str) -> str | None:
        """The segment readers take committed item ``key`` from (the first of its copies), or None."""
        loc = self._loc.get(key)
        return None if loc is None else loc.segment

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

    def _scan_base(self) -> bool:
        """Load the compacted base when it changed since the last scan; True if it did."""
        stamp = self._backend.base_stamp(self.path)
        if stamp == self._base_stamp:
            return False
        self._base_stamp = stamp
        self._segments.pop(BASE_NAME, None)
        self._bad_segments.pop(BASE_NAME, None)
        self._tables.pop(BASE_NAME, None)
        if stamp is None:
            return True
        try:
            attrs = self._backend.read_base_attrs(self.path)
            if attrs is None or attrs.get("format") != SEGMENT_FORMAT or not isinstance(attrs.get("items"), list):
                raise StoreError("the compacted base has no valid mmer_compacted index")
        except Exception as exc:  # reported by verify; the segments still serve
            self._bad_segments[BASE_NAME] = f"{type(exc).__name__}: {exc}"
            log.warning("store %s: compacted base is unreadable and ignored: %s", self.path, exc)
            return True
        self._segments[BASE_NAME] = SegmentInfo(BASE_NAME, self._backend.base_path(self.path), attrs)
        return True

    def _scan_segments(self) -> None:
        names = self._segment_names()
        base_changed = self._scan_base()
        known = (set(self._segments) | set(self._bad_segments)) - {BASE_NAME}
        current = set(names)
        if current == known and not base_changed:
            return
        removed = known - current
        for name in removed:
            self._segments.pop(name, None)
            self._bad_segments.pop(name, None)
            self._tables.pop(name, None)
        if removed or base_changed:
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

    def add_committed_segment(self, info: SegmentInfo) -> None:
        """Index a segment this process has just published (its index in hand, so it is not read back)."""
        self._add_segment(info)

    def _add_segment(self, info: SegmentInfo) -> None:
        self._segments[info.name] = info
        self._index_segment(info)

    def _index_segment(self, info: SegmentInfo) -> None:
        for it in info.items:
            key = it["key"]
            loc = ItemLocation(info.name, int(it["start"]), int(it["n_rows"]), it)
            old = self._loc.get(key)
            if old is None:
                self._loc[key] = loc
                continue
            segs = self._dups.get(key, [old.segment])
            self._dups[key] = sorted(set(segs) | {info.name})
            if info.name < old.segment:  # the lexicographically first segment wins
                self._loc[key] = loc

    def failure_records(self) -> dict[str, dict[str, Any]]:
        """Every readable failure record by key, those of items committed since included (``failures()`` not)."""
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
            return sorted(k for k in self.failure_records() if k not in self._loc)
        raise ValueError(f"status must be 'done' or 'failed', not {status!r}")

    def failures(self) -> dict[str, str]:
        """Failed (and not since committed) items: key -> error text, sorted by key."""
        recs = self.failure_records()
        return {k: str(recs[k].get("error", "")) for k in sorted(recs) if k not in self._loc}

    def item_info(self, key: str) -> dict[str, Any]:
        """Status, n_rows, timing_s, meta (and segment, subject, ... when done; error when failed)."""
        loc = self._loc.get(key)
        if loc is not None:
            info = {k: v for k, v in loc.info.items() if k != "start"}
            info.update(status="done", segment=loc.segment)
            return info
        rec = self.failure_records().get(key)
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
    def locations(self, items: Sequence[str] | None = None, order: Order = "item") -> list[tuple[str, ItemLocation]]:
        """(key, where its rows are) of ``items`` (default: every committed item) in the order ``read`` and
        ``rows`` use; ``ItemNotFound`` names the keys that are not committed."""
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
        names = ["rows/t_start_s", "rows/t_end_s", *info.columns]
        physical = self._backend.read_columns(info.path, [info.physical(n) for n in names])
        cols = {n: physical[info.physical(n)] for n in names}
        table = table_from_index(info.items, cols)
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

    def _assemble(self, runs: Sequence[tuple[str, ItemLocation]], columns: Sequence[str] | None) -> pd.DataFrame:
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
        return self._assemble(self.locations(items, order), columns)

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
        runs = self.locations(items, order)
        table = self._assemble(runs, columns)
        if not embeddings:
            return StoreData(None, table, self.feature_names)
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
        return StoreData(out, table, self.feature_names)

    def iter_items(
        self, items: Sequence[str] | None = None, *, dtype: Any = np.float32
    ) -> Iterator[tuple[str, np.ndarray, pd.DataFrame]]:
        """(key, embeddings (n, dim), row table) per committed item, by key."""
        runs = self.locations(items, "item")
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

    def to_dask(self, *, order: Order = "item", dtype: Any = None, rows: bool = False) -> Any:
        """All committed embeddings as a lazy ``dask.array`` (n, dim), rows in the order of ``rows(order=...)``;
        with ``rows=True`` a ``StoreData(dask array, row table)`` (``x, table = store.to_dask(rows=True)``).

        ``order="item"`` matches ``read()``/``rows()``; ``order="segment"`` is the segments' own order (one
        block per segment, cheapest graph) and matches ``rows(order="segment")``. Duplicate copies of an item
        are left out in both. ``dtype=None`` keeps the stored dtype. HDF5 files stay open until ``close()``.
        """
        import dask.array as da

        if rows:
            return StoreData(self.to_dask(order=order, dtype=dtype), self.rows(order=order), self.feature_names)
        runs = self.locations(None, order)
        if not runs:
            return da.zeros((0, self.dim), dtype=self.dtype if dtype is None else dtype, chunks=(1, self.dim))
        arrays: dict[str, Any] = {}
        blocks = []
        for seg, start, _dst, n in merge_consecutive(runs):
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

    def to_xarray(self, *, dtype: Any = None) -> Any:
        """An ``xarray.Dataset``: lazy (dask) ``embeddings (row, dim)``, every row-table column on ``row``, the
        feature names as the ``dim`` coordinate, the manifest in ``attrs["mmer_manifest"]``; the same variables
        (and values) ``xr.open_zarr`` gives on a compacted zarr store."""
        import xarray as xr

        data = self.to_dask(dtype=dtype, rows=True)
        variables = {"embeddings": (("row", "dim"), data.embeddings)}
        variables.update({c: ("row", _plain(data.rows[c])) for c in data.rows.columns})
        coords = {"dim": np.array(self.feature_names, dtype=object)} if self.feature_names else {}
        return xr.Dataset(variables, coords=coords, attrs={"mmer_manifest": self._manifest_raw})

    # -- health and summary
    def verify(self, *, checksums: bool = True) -> list[str]:
        """Problems found, one line each; [] = healthy. Lines starting ``warning:`` are not errors."""
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


def _plain(column: pd.Series) -> np.ndarray:
    """A row-table column as numpy (pandas strings as an object array of ``str``)."""
    values = column.to_numpy()
    return values.astype(object) if values.dtype.kind in "OUT" or str(column.dtype) == "str" else values


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


def merge_consecutive(runs: Sequence[tuple[str, ItemLocation]]) -> list[tuple[str, int, int, int]]:
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

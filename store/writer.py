"""``StoreWriter``: buffers whole items into an open segment and publishes it; failure records and claims.

A ``StoreWriter`` streams whole items into an open segment written under a temporary name and commits it by
renaming it into place: the rename is the commit, so an item is done iff it is in a published segment, and a
process killed at any moment leaves only complete segments (plus ``.tmp~`` leftovers that readers ignore and
``gc`` removes). Each writer writes its own segments, so several processes (or machines on a shared filesystem)
can write one store at once.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from store.backends import SegmentWriter, create_backend
from store.checksums import ALGORITHM, chunk_checksum, rows_crc
from store.claims import DEFAULT_CLAIM_TTL_S, release_claim, try_claim
from store.errors import StoreError
from store.layout import (
    SEGMENT_FORMAT,
    SEGMENT_FORMAT_VERSION,
    escape_key,
    fsync_dir,
    hostname,
    io_pool,
    now_iso,
    remove_path,
    safe_name,
    sanitize_name,
    tmp_name,
    write_json_atomic,
)
from store.reader import SegmentInfo, Store
from store.schema import ItemRows, _jsonable
from store.sizing import default_chunk_rows, default_segment_rows

log = logging.getLogger(__name__)


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


class StoreWriter:
    """Writes items into a store; see ``create_store``. Not thread-safe: one writer per thread or process.

    It holds a ``Store`` (``writer.store``) for what is committed (``status``, ``items`` and ``claim`` ask it) and
    its own backend for what it writes; reading goes through ``writer.store`` or ``open_store``.

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
        self.store = Store(path)
        self.path = self.store.path
        self.backend: str = self.store.backend
        self.manifest = self.store.manifest
        self.fingerprint: str = self.store.fingerprint
        self.dim = self.store.dim
        self.dtype = self.store.dtype
        info = self.store.store_info
        if writer_id is None:
            writer_id = sanitize_name(f"{hostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        if not safe_name(writer_id):
            raise StoreError(f"writer_id {writer_id!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]* (it names files)")
        self.writer_id = writer_id
        self.chunk_rows = int(chunk_rows or info.get("chunk_rows") or default_chunk_rows(self.dim, self.dtype))
        if self.chunk_rows < 1:
            raise StoreError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        self.segment_rows = int(segment_rows or default_segment_rows(self.chunk_rows, self.dim, self.dtype))
        self.flush_interval_s = float(flush_interval_s)
        self.claim_ttl_s = float(claim_ttl_s)
        self.durable = bool(durable)
        compression = compression if compression is not None else self.store.compression
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
        for name in [*self.store.segments, *self.store.bad_segments]:
            stem = name[: -len(self._backend.suffix)]
            if stem.startswith(prefix) and stem[len(prefix) :].isdigit():
                seqs.append(int(stem[len(prefix) :]))
        return max(seqs) + 1

    @property
    def segments_dir(self) -> Path:
        return self.store.segments_dir

    @property
    def failed_dir(self) -> Path:
        return self.store.failed_dir

    @property
    def claims_dir(self) -> Path:
        return self.store.claims_dir

    def _committed(self, key: str) -> bool:
        return self.store.segment_of(key) is not None

    def status(self, key: str) -> Literal["done", "failed", "absent"]:
        """``done`` if the item is committed (as of this writer's last look), ``failed`` if its last attempt
        failed, else ``absent``; see ``Store.status``."""
        return self.store.status(key)

    def items(self, status: Literal["done", "failed"] = "done") -> list[str]:
        """Sorted keys of the committed (``done``) or ``failed`` items; see ``Store.items``."""
        return self.store.items(status)

    def refresh(self) -> None:
        """Pick up segments and failure records other writers committed since."""
        self.store.refresh()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, writer_id={self.writer_id!r}, backend={self.backend!r})"

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
        self.store.refresh()
        if self._committed(key):
            return False
        if not try_claim(self.claims_dir, key, self.writer_id, self.claim_ttl_s):
            return False
        self.store.refresh()  # a writer may have committed it and released its claim just before ours
        if self._committed(key):
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
        if self._committed(key):
            raise StoreError(
                f"item {key} is already committed in {self.path} (segment {self.store.segment_of(key)}); "
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
        if self._committed(key) or key in self._pending:
            log.warning("store %s: item %s is %s; not marking it failed", self.path, key,
                        "committed" if self._committed(key) else "written, not yet committed")
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
        self.store.add_committed_segment(SegmentInfo(final.name, final, json.loads(json.dumps(attrs))))
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
            self.store.close()

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

"""``verify``: a store's structure and checksums, read through the plain zarr/h5py readers (``open_plain``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from store.backends import SegmentBackend
from store.checksums import ALGORITHM, chunk_checksum, rows_crc
from store.layout import MANIFEST_FILE, SEGMENT_FORMAT, STORE_FILE, read_json
from store.schema import ROW_COLUMNS, Manifest
from store.segments import SegmentInfo

WARNING = "warning: "
_MAX_CHUNK_REPORTS = 5


class VerifiedStore(Protocol):
    """What verify reads of a store: the public accessors of ``store.reader.Store``."""

    path: Path
    backend: str
    fingerprint: str
    dim: int
    dtype: np.dtype

    @property
    def failed_dir(self) -> Path: ...
    @property
    def segments(self) -> Mapping[str, SegmentInfo]: ...
    @property
    def bad_segments(self) -> Mapping[str, str]: ...
    @property
    def segment_backend(self) -> SegmentBackend: ...
    def refresh(self) -> None: ...
    def duplicates(self) -> dict[str, list[str]]: ...


def is_warning(problem: str) -> bool:
    return problem.startswith(WARNING)


def verify_store(store: VerifiedStore, *, checksums: bool = True) -> list[str]:
    """Every problem of ``store``, one line each (``warning:`` lines are not errors). [] = healthy."""
    problems: list[str] = []
    path = store.path
    try:
        info = read_json(path / STORE_FILE)
        if info.get("backend") != store.backend:
            problems.append(f"{STORE_FILE}: backend {info.get('backend')!r} changed while open")
    except (OSError, ValueError) as exc:
        problems.append(f"{STORE_FILE}: unreadable ({exc})")
    try:
        raw = read_json(path / MANIFEST_FILE)
        recomputed = Manifest.from_dict(raw).fingerprint()
        if raw.get("fingerprint") != recomputed:
            problems.append(
                f"{MANIFEST_FILE}: recorded fingerprint {raw.get('fingerprint')!r} does not match its contents "
                f"({recomputed}); the manifest was edited or is corrupt"
            )
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"{MANIFEST_FILE}: unreadable ({exc})")
    store.refresh()
    for name, error in sorted(store.bad_segments.items()):
        problems.append(f"segments/{name}: unreadable ({error})")
    for name, seg in sorted(store.segments.items()):
        problems += [f"segments/{name}: {p}" for p in _verify_segment(store, seg, checksums)]
    for key, segs in store.duplicates().items():
        problems.append(
            f"{WARNING}item {key!r} is committed in {len(segs)} segments ({', '.join(segs)}); readers use "
            f"{segs[0]}; `pipeline stores gc` drops segments whose every item is such a duplicate"
        )
    try:
        names = sorted(n for n in os.listdir(store.failed_dir) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        names = []
    for name in names:
        try:
            rec = read_json(store.failed_dir / name)
            if not (isinstance(rec, dict) and isinstance(rec.get("key"), str) and "error" in rec):
                raise ValueError("needs 'key' and 'error'")
        except (OSError, ValueError) as exc:
            problems.append(f"status/failed/{name}: bad failure record ({exc})")
    return problems


def _verify_segment(store: VerifiedStore, seg: SegmentInfo, checksums: bool) -> list[str]:
    try:
        with store.segment_backend.open_plain(seg.path) as arrays:
            if seg.is_base:  # flat names -> the segment names the index uses; the feature-name coordinate aside
                logical = {flat: name for name, flat in seg.attrs["compacted"]["arrays"].items()}
                arrays = {logical.get(k, k): v for k, v in arrays.items() if k in logical or k == "__attrs__"}
            return _check_arrays(store, seg, arrays, checksums)
    except Exception as exc:  # any failure to read is the finding
        return [f"unreadable with plain {store.backend} ({type(exc).__name__}: {exc})"]


def _check_arrays(store: VerifiedStore, seg: SegmentInfo, arrays: Any, checksums: bool) -> list[str]:
    out: list[str] = []
    attrs = arrays.get("__attrs__")
    if not isinstance(attrs, dict) or attrs.get("format") != SEGMENT_FORMAT:
        return ["segment attribute mmer_segment is missing or not a segment index"]
    if attrs.get("store_fingerprint") != store.fingerprint:
        out.append(f"written for fingerprint {attrs.get('store_fingerprint')!r}, store is {store.fingerprint!r}")
    n = int(attrs["n_rows"])
    emb = arrays.get("embeddings")
    if emb is None:
        return [*out, "no embeddings array"]
    if tuple(emb.shape) != (n, store.dim):
        out.append(f"embeddings shape {tuple(emb.shape)} != ({n}, {store.dim})")
    if np.dtype(emb.dtype) != store.dtype:
        out.append(f"embeddings dtype {emb.dtype} != manifest dtype {store.dtype}")
    # items: contiguous, in order, covering 0..n
    pos = 0
    for it in attrs["items"]:
        if int(it["start"]) != pos or int(it["n_rows"]) < 0:
            out.append(f"item {it['key']!r}: starts at row {it['start']}, expected {pos}")
        pos = int(it["start"]) + int(it["n_rows"])
    if pos != n:
        out.append(f"items cover {pos} rows, segment has {n}")
    expected = {f"rows/{c}" for c in ROW_COLUMNS} | set(attrs.get("columns", {}))
    present = {k for k in arrays if k not in ("__attrs__", "embeddings")}
    if expected - present:
        out.append(f"missing arrays: {', '.join(sorted(expected - present))}")
    if present - expected:
        out.append(f"unexpected arrays: {', '.join(sorted(present - expected))}")
    columns = {}
    for name in sorted(expected & present):
        values = arrays[name][:]
        if len(values) != n:
            out.append(f"{name} has {len(values)} rows, expected {n}")
        columns[name] = np.asarray(values)
    if out:
        return out
    counts = np.array([int(it["n_rows"]) for it in attrs["items"]], dtype=np.int64)
    starts = np.cumsum(counts) - counts
    row = np.arange(n) - np.repeat(starts, counts)
    if not np.array_equal(columns["rows/row"], row):
        out.append("rows/row is not 0..n-1 within each item")
    for col, field_, cast in (("item", "key", str), ("subject", "subject", str), ("trial", "trial", str),
                              ("session", "session", int), ("fold", "fold", int)):
        want = np.repeat(np.array([cast(it.get(field_)) for it in attrs["items"]], dtype=object), counts)
        got = columns[f"rows/{col}"]
        if not np.array_equal(np.asarray([cast(v) for v in got], dtype=object), want):
            out.append(f"rows/{col} disagrees with the segment's item index")
    if not checksums:
        return out
    recorded = attrs.get("checksums", {})
    if recorded.get("algorithm") != ALGORITHM:
        return [*out, f"unknown checksum algorithm {recorded.get('algorithm')!r}"]
    if rows_crc(columns) != recorded.get("rows"):
        out.append("row table checksum mismatch (rows/labels/quality arrays are corrupt)")
    cr = int(attrs.get("chunk_rows") or max(1, n))
    want = list(recorded.get("embeddings_chunks", []))
    n_chunks = -(-n // cr) if n else 0
    if len(want) != n_chunks:
        return [*out, f"{len(want)} embedding checksums recorded for {n_chunks} chunks"]
    bad = [c for c in range(n_chunks) if chunk_checksum(emb[c * cr : min((c + 1) * cr, n)]) != want[c]]
    if bad:
        shown = ", ".join(str(c) for c in bad[:_MAX_CHUNK_REPORTS]) + (" ..." if len(bad) > _MAX_CHUNK_REPORTS else "")
        out.append(f"embeddings checksum mismatch in {len(bad)} of {n_chunks} chunks ({cr} rows each): {shown}")
    return out

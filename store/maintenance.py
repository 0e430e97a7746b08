"""``verify`` (structure + checksums, through the plain zarr/h5py readers) and ``gc`` (uncommitted leftovers)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from store.checksums import ALGORITHM, chunk_checksum, rows_crc
from store.claims import CLAIM_SUFFIX, DEFAULT_CLAIM_TTL_S, is_stale, read_claim
from store.layout import (
    MANIFEST_FILE,
    SEGMENT_FORMAT,
    STALE_PREFIX,
    STORE_FILE,
    TMP_PREFIX,
    escape_key,
    holder_alive,
    parse_tmp_name,
    read_json,
    remove_path,
)
from store.schema import ROW_COLUMNS, Manifest

if TYPE_CHECKING:
    from store.reader import SegmentInfo, Store

WARNING = "warning: "
_MAX_CHUNK_REPORTS = 5


def is_warning(problem: str) -> bool:
    return problem.startswith(WARNING)


def verify_store(store: Store, *, checksums: bool = True) -> list[str]:
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
    for name, error in sorted(store._bad_segments.items()):
        problems.append(f"segments/{name}: unreadable ({error})")
    for name in sorted(store._segments):
        problems += [f"segments/{name}: {p}" for p in _verify_segment(store, store._segments[name], checksums)]
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


def _verify_segment(store: Store, seg: SegmentInfo, checksums: bool) -> list[str]:
    try:
        with store._backend.open_plain(seg.path) as arrays:
            if seg.is_base:  # flat names -> the segment names the index uses; the feature-name coordinate aside
                logical = {flat: name for name, flat in seg.attrs["compacted"]["arrays"].items()}
                arrays = {logical.get(k, k): v for k, v in arrays.items() if k in logical or k == "__attrs__"}
            return _check_arrays(store, seg, arrays, checksums)
    except Exception as exc:  # any failure to read is the finding
        return [f"unreadable with plain {store.backend} ({type(exc).__name__}: {exc})"]


def _check_arrays(store: Store, seg: SegmentInfo, arrays: Any, checksums: bool) -> list[str]:
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


# --- gc --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GcAction:
    path: Path
    reason: str


def _leftover_is_dead(path: Path, min_age_s: float, now: float) -> bool:
    """A ``.tmp~host~pid~...`` leftover may go when its maker is dead on this host, or it is older than
    ``min_age_s`` and its maker is on another host (or unknown)."""
    parsed = parse_tmp_name(path.name)
    if parsed is not None:
        alive = holder_alive(parsed[0], parsed[1])
        if alive is not None:
            return not alive
    try:
        return now - os.lstat(path).st_mtime > min_age_s
    except FileNotFoundError:
        return False


def collect_garbage(
    directory: str | Path,
    *,
    dry_run: bool = False,
    min_age_s: float = 3600.0,
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
) -> list[GcAction]:
    """Remove what no reader uses, in the store at ``directory`` or every store under it:

    uncommitted segment/record leftovers (``.tmp~*``) of dead writers (or older than ``min_age_s`` when made on
    another host), stale claims and claims of committed items, failure records superseded by a commit,
    half-created stores, and segments whose every item is a duplicate readers take from an earlier segment.
    Returns what was (or, with ``dry_run``, would be) removed.
    """
    from store.core import list_stores, open_store

    root = Path(directory)
    now = time.time()
    actions: list[GcAction] = []
    walk = [] if (root / STORE_FILE).exists() else os.walk(root)
    for dirpath, dirnames, _files in walk:  # half-created stores: ".<name>.tmp~host~pid~uuid"
        for d in list(dirnames):
            p = Path(dirpath) / d
            if d.startswith(".") and TMP_PREFIX in d and _leftover_is_dead(p, min_age_s, now):
                actions.append(GcAction(p, "half-created store (its creator is gone)"))
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (Path(dirpath) / d / STORE_FILE).exists()]
    for path in list_stores(root):
        store = open_store(path)
        try:
            actions += _store_garbage(store, min_age_s, claim_ttl_s, now)
        finally:
            store.close()
    if not dry_run:
        for action in actions:
            remove_path(action.path)
    return actions


def _store_garbage(store: Store, min_age_s: float, claim_ttl_s: float, now: float) -> list[GcAction]:
    actions: list[GcAction] = []
    for sub in (store.path, store.segments_dir, store.failed_dir, store.claims_dir):
        try:
            names = sorted(os.listdir(sub))
        except FileNotFoundError:
            continue
        for name in names:
            p = sub / name
            if name.startswith(TMP_PREFIX) and _leftover_is_dead(p, min_age_s, now):
                actions.append(GcAction(p, "uncommitted leftover of a dead writer"))
            elif name.startswith(STALE_PREFIX) and now - os.lstat(p).st_mtime > 60:
                actions.append(GcAction(p, "leftover of a claim takeover"))
    try:
        claim_names = sorted(n for n in os.listdir(store.claims_dir) if n.endswith(CLAIM_SUFFIX) and n[0] != ".")
    except FileNotFoundError:
        claim_names = []
    for name in claim_names:
        p = store.claims_dir / name
        rec = read_claim(p)
        if rec is not None and rec.key in store._loc:
            actions.append(GcAction(p, f"claim of committed item {rec.key!r}"))
        elif is_stale(p, rec, claim_ttl_s, now):
            actions.append(GcAction(p, "stale claim (holder dead or older than the TTL)"))
    for key in sorted(store._failed_records()):
        if key in store._loc:
            actions.append(GcAction(store.failed_dir / (escape_key(key) + ".json"), f"failure of {key!r} superseded"))
    dups = store.duplicates()
    for name, seg in sorted(store._segments.items()):
        if seg.is_base:
            continue
        keys = [it["key"] for it in seg.items]
        if keys and all(k in dups and store._loc[k].segment != name for k in keys):
            actions.append(GcAction(seg.path, "every item is a duplicate of an earlier segment"))
    return actions

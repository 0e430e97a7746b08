"""``gc``: remove what no reader of a store uses (uncommitted leftovers, stale claims, superseded records)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from store.claims import CLAIM_SUFFIX, DEFAULT_CLAIM_TTL_S, is_stale, read_claim
from store.layout import (
    STALE_PREFIX,
    STORE_FILE,
    TMP_PREFIX,
    escape_key,
    leftover_is_dead,
    list_stores,
    remove_path,
)
from store.reader import Store


@dataclass(frozen=True)
class GcAction:
    path: Path
    reason: str


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
    root = Path(directory)
    now = time.time()
    actions: list[GcAction] = []
    walk = [] if (root / STORE_FILE).exists() else os.walk(root)
    for dirpath, dirnames, _files in walk:  # half-created stores: ".<name>.tmp~host~pid~uuid"
        for d in list(dirnames):
            p = Path(dirpath) / d
            if d.startswith(".") and TMP_PREFIX in d and leftover_is_dead(p, min_age_s, now):
                actions.append(GcAction(p, "half-created store (its creator is gone)"))
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not (Path(dirpath) / d / STORE_FILE).exists()]
    for path in list_stores(root):
        store = Store(path)
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
            if name.startswith(TMP_PREFIX) and leftover_is_dead(p, min_age_s, now):
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
        if rec is not None and store.segment_of(rec.key) is not None:
            actions.append(GcAction(p, f"claim of committed item {rec.key!r}"))
        elif is_stale(p, rec, claim_ttl_s, now):
            actions.append(GcAction(p, "stale claim (holder dead or older than the TTL)"))
    for key in sorted(store.failure_records()):
        if store.segment_of(key) is not None:
            actions.append(GcAction(store.failed_dir / (escape_key(key) + ".json"), f"failure of {key!r} superseded"))
    dups = store.duplicates()
    for name, seg in sorted(store.segments.items()):
        if seg.is_base:
            continue
        keys = [it["key"] for it in seg.items]
        if keys and all(k in dups and store.segment_of(k) != name for k in keys):
            actions.append(GcAction(seg.path, "every item is a duplicate of an earlier segment"))
    return actions

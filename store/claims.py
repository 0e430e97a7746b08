"""Work claims: ``claims/<escaped key>.claim`` says which live writer is doing an item.

A claim is created complete-or-not-at-all: its JSON is written to a temporary file that is then hard-linked to
the claim name (``link`` fails if the name exists, like ``O_CREAT|O_EXCL``, and is atomic on local filesystems
and NFS alike). A claim is stale when its holder is a dead process on this host, or it is older than the TTL;
a stale claim may be taken over. Claims are advisory: the worst a race can do is let two writers do one item,
and readers resolve such duplicates deterministically (``verify`` warns about them).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.layout import (
    STALE_PREFIX,
    escape_key,
    holder_alive,
    hostname,
    process_start_time,
    sanitize_name,
    tmp_name,
)

CLAIM_SUFFIX = ".claim"
DEFAULT_CLAIM_TTL_S = 6 * 3600.0
_UNREADABLE_GRACE_S = 60.0


@dataclass(frozen=True)
class ClaimRecord:
    key: str
    writer: str
    host: str
    pid: int
    pid_start: float | None
    time: float

    @classmethod
    def mine(cls, key: str, writer: str) -> ClaimRecord:
        return cls(key, writer, sanitize_name(hostname()), os.getpid(), process_start_time(), time.time())

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "writer": self.writer, "host": self.host, "pid": self.pid,
                "pid_start": self.pid_start, "time": self.time}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClaimRecord:
        return cls(str(d["key"]), str(d["writer"]), str(d["host"]), int(d["pid"]),
                   None if d.get("pid_start") is None else float(d["pid_start"]), float(d["time"]))


def claim_path(claims_dir: Path, key: str) -> Path:
    return Path(claims_dir) / (escape_key(key) + CLAIM_SUFFIX)


def read_claim(path: Path) -> ClaimRecord | None:
    """The claim at ``path``; None when it is missing or unreadable."""
    try:
        with open(path, "rb") as fh:
            return ClaimRecord.from_json(json.loads(fh.read()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_stale(path: Path, record: ClaimRecord | None, ttl_s: float, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if record is None:  # unreadable: only stale once it has been so for a while
        try:
            return now - os.stat(path).st_mtime > _UNREADABLE_GRACE_S
        except FileNotFoundError:
            return True
    if now - record.time > ttl_s:
        return True
    alive = holder_alive(record.host, record.pid, record.pid_start)
    return alive is False


def _create(path: Path, record: ClaimRecord) -> bool:
    tmp = path.with_name(tmp_name(CLAIM_SUFFIX))
    with open(tmp, "w") as fh:
        json.dump(record.to_json(), fh)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def try_claim(claims_dir: Path, key: str, writer: str, ttl_s: float = DEFAULT_CLAIM_TTL_S) -> bool:
    """Create the claim of ``key`` for ``writer``; take over a stale one. False if someone live holds it."""
    path = claim_path(claims_dir, key)
    record = ClaimRecord.mine(key, writer)
    if _create(path, record):
        return True
    held = read_claim(path)
    if held is not None and held.writer == writer and held.pid == record.pid and held.host == record.host:
        return True  # ours already
    if not is_stale(path, held, ttl_s):
        return False
    # Take over: move the stale claim aside, check we moved what we judged stale, then create ours.
    aside = path.with_name(f"{STALE_PREFIX}{uuid.uuid4().hex[:12]}{CLAIM_SUFFIX}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return _create(path, record)
    moved = read_claim(aside)
    if moved != held:  # someone replaced it between our read and our rename: put theirs back
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        os.unlink(aside)
        return False
    os.unlink(aside)
    return _create(path, record)


def release_claim(claims_dir: Path, key: str, writer: str) -> None:
    """Remove ``writer``'s claim of ``key`` (someone else's claim is left alone)."""
    path = claim_path(claims_dir, key)
    held = read_claim(path)
    if held is not None and held.writer == writer and held.pid == os.getpid():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

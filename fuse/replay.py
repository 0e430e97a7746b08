"""Replays that cannot lie: a run records the stores it read (absolute path, fingerprint, feature-changing manifest
fields) in its config; a replay of that config reads exactly those paths and refuses a store that differs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fuse.config import FuseConfig
from fuse.inputs import FuseDataError, ModalityData, describe_store
from store.schema import FINGERPRINT_FIELDS, Manifest


class StoreMismatchError(FuseDataError):
    """A replayed config meets a store other than the one its run read (moved, replaced or made another way)."""


def record_inputs(cfg: FuseConfig, modalities: Sequence[ModalityData]) -> FuseConfig:
    """``cfg`` as a replay needs it: the stores read as absolute paths, the cache absolute, and ``expect_stores``
    (role -> path, fingerprint, feature-changing manifest fields) of each store."""
    read = [m for m in modalities if m.path]
    expect = {m.role: {"path": str(Path(m.path).resolve()), "fingerprint": m.fingerprint,
                       "fields": {k: m.manifest.get(k) for k in FINGERPRINT_FIELDS}} for m in modalities}
    return dataclasses.replace(
        cfg,
        stores=tuple(str(Path(m.path).resolve()) for m in read) or cfg.stores,
        cache=str(Path(cfg.cache).resolve()) if cfg.cache else "",
        expect_stores=expect,
    )


def check_recorded_paths(expect: Mapping[str, Mapping[str, Any]]) -> None:
    """Every store the recorded run read is still where it was (before anything is read)."""
    for role, rec in expect.items():
        if rec.get("path") and not Path(rec["path"]).exists():
            raise StoreMismatchError(
                f"replay: the {role} store this run read, {rec['path']}, is not there (moved or deleted); pass "
                "--stores PATH (repeatable) to run this config on stores of your choice")


def check_stores(expect: Mapping[str, Mapping[str, Any]], paths: Mapping[str, str]) -> None:
    """Refuse stores whose fingerprint differs from the recorded one, naming the store and the differing fields."""
    for role, rec in expect.items():
        if role not in paths:
            raise StoreMismatchError(f"replay: the run read a {role} store ({rec.get('path')}); none found now")
        found = describe_store(paths[role])
        if found["fingerprint"] == rec.get("fingerprint"):
            continue
        differing = _differences(rec.get("fields") or {}, paths[role])
        raise StoreMismatchError(
            f"replay: {role} store {paths[role]} has fingerprint {found['fingerprint']}, the recorded run read "
            f"{rec.get('fingerprint')} ({rec.get('path')}); differing fields: {', '.join(differing) or 'unknown'}; "
            "pass --stores PATH to run this config on other stores on purpose")
    extra = sorted(set(paths) - set(expect))
    if extra:
        raise StoreMismatchError(f"replay: found a {' and a '.join(extra)} store the recorded run did not read: "
                                 f"{', '.join(paths[r] for r in extra)}")


def _differences(fields: Mapping[str, Any], path: str) -> list[str]:
    from store import open_store

    current = open_store(path).manifest
    try:
        recorded = Manifest.from_dict(fields)
    except (TypeError, ValueError, KeyError):
        return []
    return recorded.differences(current)

"""Errors the store raises; each says what to do. Callers catch ``StoreError`` for any of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class StoreError(Exception):
    """Base class of every error raised by ``store``."""


class NotAStoreError(StoreError, FileNotFoundError):
    """``path`` holds no store (no ``store.json``)."""


class ItemNotFound(StoreError, KeyError):
    """An item asked for is not committed in the store."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class CorruptSegmentError(StoreError):
    """A published segment cannot be read as written (missing or truncated chunk, bad metadata)."""


class FingerprintMismatch(StoreError):
    """The store at ``path`` was made with a different feature-changing configuration than the one requested.

    ``differences`` lists the dotted manifest fields that differ, e.g. ``["config.fps", "model.id"]``.
    """

    def __init__(self, path: Path, stored: str, requested: str, differences: Sequence[str], details: str = "") -> None:
        self.path = Path(path)
        self.stored = stored
        self.requested = requested
        self.differences = list(differences)
        fields = ", ".join(self.differences) or "(no field differs; the stored manifest's fingerprint is stale)"
        msg = (
            f"store {self.path} was made with a different configuration (fingerprint {stored} != {requested}); "
            f"differing fields: {fields}."
        )
        if details:
            msg += f" {details}"
        msg += " Write to a new store path, or delete this store to rebuild it."
        super().__init__(msg)

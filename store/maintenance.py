"""The old home of ``verify`` and ``gc``: re-exports ``store.verify`` and ``store.gc`` so old imports keep working."""

from __future__ import annotations

from store.gc import GcAction, collect_garbage
from store.layout import leftover_is_dead as _leftover_is_dead
from store.verify import WARNING, is_warning, verify_store

__all__ = ["WARNING", "GcAction", "_leftover_is_dead", "collect_garbage", "is_warning", "verify_store"]

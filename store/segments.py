"""``SegmentInfo``: a published segment of a store and its index attribute (what readers, verify and gc see);
``ItemLocation``: where a committed item's rows are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    @property
    def is_base(self) -> bool:
        """True for the compacted base (``store.compaction``), whose arrays have flat names."""
        return "compacted" in self.attrs

    def physical(self, name: str) -> str:
        """Where array ``name`` (e.g. ``rows/t_start_s``) is stored: the same name in a segment, the flat name
        (``t_start_s``) in the compacted base."""
        return self.attrs.get("compacted", {}).get("arrays", {}).get(name, name)


@dataclass(frozen=True)
class ItemLocation:
    """Where a committed item's rows are: rows ``start : start + n_rows`` of ``segment``; ``info`` is the item's
    entry in that segment's index (key, subject, session, trial, fold, timing_s, meta, ...)."""

    segment: str
    start: int
    n_rows: int
    info: Mapping[str, Any]

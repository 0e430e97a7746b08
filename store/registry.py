"""Old home of the generic registry, kept for old imports: it lives in the top-level ``registry`` package."""

from __future__ import annotations

from registry import Registry, UnknownNameError

__all__ = ["Registry", "UnknownNameError"]

"""The fuse registries (strategies, classifiers, protocols), apart from the heavy modules that fill them.

``fuse.strategies``, ``fuse.classifiers`` and ``fuse.protocols`` register their built-ins here at import and check
them against the light name tuples of ``fuse.config``; ``FuseConfig`` validates names against both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from store.registry import Registry

STRATEGIES: Registry[Any] = Registry("fusion strategy")
CLASSIFIERS: Registry[Any] = Registry("classifier")
PROTOCOLS: Registry[Any] = Registry("protocol")


def check_builtins(registry: Registry[Any], names: Iterable[str]) -> None:
    """Raise RuntimeError unless ``registry`` holds exactly the built-in ``names`` (fuse.config's light tuple)."""
    if set(registry.names()) != set(names):
        raise RuntimeError(f"{registry.kind} registry holds {registry.names()}, but fuse.config lists "
                           f"{sorted(names)}: update the tuple in fuse/config.py")

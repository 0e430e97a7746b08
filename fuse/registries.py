"""The fuse registries (strategies, classifiers, protocols), apart from the heavy modules that fill them.

``fuse.strategies``, ``fuse.classifiers`` and ``fuse.protocols`` register their built-ins here at import and check
them against the light name tuples of ``fuse.config``; ``FuseConfig`` validates names against both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from registry import Registry

STRATEGIES: Registry[Any] = Registry("fusion strategy")
CLASSIFIERS: Registry[Any] = Registry("classifier")
PROTOCOLS: Registry[Any] = Registry("protocol")


def check_builtins(registry: Registry[Any], names: Iterable[str]) -> None:
    """Raise RuntimeError when a built-in name of fuse.config's light tuple is not registered (a stale tuple).

    Plug-ins may have registered more; ``tests/fuse/test_config_names.py`` checks that the tuples equal the built-ins.
    """
    missing = sorted(set(names) - set(registry.names()))
    if missing:
        raise RuntimeError(f"fuse.config lists {registry.kind} name(s) {', '.join(missing)} that are not registered "
                           f"(registered: {', '.join(registry.names())}): update the tuple in fuse/config.py")

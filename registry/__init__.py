"""A name -> factory registry in the style of ``timm.create_model``: register, list, create.

The bottom layer: every package may import it, it imports nothing of the project (and no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry is asked for a name it does not hold; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to factories. ``create(name, **kwargs)`` builds an object; ``names()`` lists what exists."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **info: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@REGISTRY.register("name", dim=768)`` registers a factory (class or function)."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            self._info[name] = dict(info)
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T], **info: Any) -> None:
        """Register ``factory`` under ``name`` without the decorator syntax."""
        self.register(name, **info)(factory)

    def remove(self, name: str) -> None:
        """Unregister ``name`` (a plug-in or a test's temporary entry)."""
        self._check(name)
        del self._factories[name], self._info[name]

    def names(self) -> list[str]:
        return sorted(self._factories)

    def info(self, name: str) -> dict[str, Any]:
        self._check(name)
        return dict(self._info[name])

    def get(self, name: str) -> Callable[..., T]:
        self._check(name)
        return self._factories[name]

    def create(self, name: str, /, **kwargs: Any) -> T:
        """Build the object registered as ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        """Iterate over the registered names, sorted."""
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._factories)

    def _check(self, name: str) -> None:
        if name not in self._factories:
            known = ", ".join(self.names()) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}")

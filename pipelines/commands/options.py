"""CLI options declared once: one table row per option holds its typer declaration and the config field it sets."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from typer.models import OptionInfo

F = TypeVar("F", bound=Callable[..., Any])
Convert = Callable[[Any], Any]
REQUIRED = inspect.Parameter.empty  # the default of an option that must be given


@dataclass(frozen=True)
class Opt:
    """One option: parameter name, type, typer declaration, default, and the config field(s) its value sets.

    ``to`` is the dotted config path (default: the parameter's name); ``convert`` maps the value to the config value
    (None: the field is not set); ``also`` sets more fields from the same value; ``cli_only`` options set none."""

    name: str
    type: Any
    option: OptionInfo
    default: Any = None
    to: str | None = None
    convert: Convert | None = None
    also: Mapping[str, Convert] = field(default_factory=dict)
    cli_only: bool = False

    def fields(self) -> list[tuple[str, Convert | None]]:
        """(dotted config path, converter) pairs this option sets."""
        if self.cli_only:
            return []
        return [(self.to or self.name, self.convert), *self.also.items()]


def with_options(table: Sequence[Opt]) -> Callable[[F], F]:
    """Give a ``**opts`` command function the typer signature of ``table`` (the options in table order)."""
    params = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                annotation=Annotated[o.type, o.option]) for o in table]

    def wrap(func: F) -> F:
        func.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        return func

    return wrap


def build_overrides(table: Sequence[Opt], values: Mapping[str, Any]) -> dict[str, Any]:
    """The config layer of the given option values: every field an option sets, None left out, dotted paths nested."""
    out: dict[str, Any] = {}
    for opt in table:
        for path, convert in opt.fields():
            value = values[opt.name]
            value = convert(value) if convert else value
            if value is None:
                continue
            *parents, leaf = path.split(".")
            node = out
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
    return out


def as_str(value: Any) -> str | None:
    """A path option as a string (None when not given)."""
    return str(value) if value else None


def as_strs(values: Sequence[Any] | None) -> list[str] | None:
    """A repeatable option as a list of strings (None when not given)."""
    return [str(v) for v in values] if values else None


def as_list(values: Sequence[Any] | None) -> list[Any] | None:
    """A repeatable option as a list (None when not given)."""
    return list(values) if values else None


def as_csv(value: str | None) -> list[str] | None:
    """A comma-separated option as a list of its non-empty, stripped items (None when not given)."""
    return [m.strip() for m in value.split(",") if m.strip()] if value else None


def given(value: Any) -> Any:
    """The value when truthy, else None: a flag sets its field only when given, so a config file's value stands."""
    return value or None


def negated(value: bool) -> bool | None:
    """A ``--no-X`` flag: sets its field to False when given, else leaves it unset."""
    return False if value else None

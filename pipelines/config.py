"""Typed configuration: frozen dataclasses loaded from YAML/TOML, overridden from the CLI, dumped resolved.

Every command builds its config the same way: defaults of the dataclass < values from ``--config FILE`` <
explicit CLI options. The resolved config is written next to every output so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomllib
import yaml

C = TypeVar("C")


class ConfigError(ValueError):
    """A config file or override that does not fit the config's fields or types."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) file into a dict; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Turn ``["a.b=3", "c=x"]`` into a nested dict, values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r}: expected KEY=VALUE")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into ``base`` (neither is modified)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(cls: type[C], *layers: Mapping[str, Any] | None, source: str = "config") -> C:
    """Build ``cls`` from dict layers (later layers win), checking every key and coercing types."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            merged = merge(merged, {k: v for k, v in layer.items() if v is not None})
    return _from_dict(cls, merged, source)


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> C:
    """Defaults < file < overrides, in one call."""
    file_layer = read_config_file(path) if path else None
    return build_config(cls, file_layer, overrides, source=str(path) if path else "config")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, JSON-able dict of a config dataclass (tuples become lists, paths strings)."""
    return _plain(dataclasses.asdict(cfg))


def dump_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (or JSON if the suffix says so)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_dict(cfg)
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class _Unset:
    """The type of ``UNSET``: one instance, falsy, kept by copies (``dataclasses.asdict`` deep-copies)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _Unset:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unset:
        return self


UNSET: Any = _Unset()  # an option field's default: not set, so the target's own default applies


OptionsT = TypeVar("OptionsT", bound="Options")


@dataclasses.dataclass(frozen=True)
class Options:
    """Typed keyword options for another object (an extractor): every field defaults to ``UNSET`` and only the
    fields that are set reach it (``given()``), so an unset option leaves the target's default and fingerprint."""

    def given(self) -> dict[str, Any]:
        """The set fields, by name, as given."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not UNSET}

    def __bool__(self) -> bool:
        return bool(self.given())

    def __repr__(self) -> str:  # the set fields only (subclasses: ``@dataclass(frozen=True, repr=False)``)
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.given().items())})"

    @classmethod
    def of(cls: type[OptionsT], value: OptionsT | Mapping[str, Any]) -> OptionsT:
        """``value`` itself, or the options a mapping names (an unknown name is a TypeError)."""
        return value if isinstance(value, cls) else cls(**dict(value))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not UNSET}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _from_dict(cls: type[C], data: Mapping[str, Any], source: str) -> C:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_options(tp):  # a mapping here, checked against its schema below, then typed (set fields only)
            value, tp = value.given() if isinstance(value, Options) else value, dict[str, Any]
        kwargs[name] = _coerce(tp, value, f"{source}: {cls.__name__}.{name}")
    for name, value in kwargs.items():  # fields whose keys are another object's options (metadata "options")
        schema_of = fields[name].metadata.get("options")
        if schema_of is not None and value:
            defaults = {f.name: f.default for f in fields.values() if f.default is not dataclasses.MISSING}
            schema = schema_of({**defaults, **kwargs})
            if schema is not None:
                kwargs[name] = check_options(value, schema, f"{source}: {cls.__name__}.{name}")
        if _is_options(hints[name]):
            kwargs[name] = _from_dict(hints[name], kwargs[name], f"{source}: {cls.__name__}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _is_options(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Options)


OptionSchema = dict[str, Any]  # option name -> its type


def options_schema(*targets: Any, exclude: Iterable[str] = ()) -> OptionSchema:
    """The named, typed options of dataclasses (their fields) and callables (their keyword parameters; ``self``,
    ``*args`` and ``**kwargs`` left out), minus ``exclude`` (options that other config fields already set)."""
    out: OptionSchema = {}
    for target in targets:
        if dataclasses.is_dataclass(target):
            hints = typing.get_type_hints(target)
            out.update({f.name: hints.get(f.name, Any) for f in dataclasses.fields(target)})
            continue
        func = target.__init__ if inspect.isclass(target) else target
        module = inspect.getmodule(func)
        for param in list(inspect.signature(func).parameters.values()):
            if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            out[param.name] = _annotation(param.annotation, vars(module) if module else {})
    for name in exclude:
        out.pop(name, None)
    return out


def _annotation(annotation: Any, namespace: Mapping[str, Any]) -> Any:
    """A parameter's type; a string annotation evaluated in its module (Any when it names a lazy import)."""
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        try:
            return eval(annotation, dict(namespace))  # noqa: S307 - annotations of our own modules
        except Exception:
            return Any
    return annotation


def check_options(options: Mapping[str, Any], schema: OptionSchema, where: str) -> dict[str, Any]:
    """``options`` checked against ``schema``: an unknown key or a value of the wrong type is a one-line
    ConfigError listing the valid keys (or naming the expected type); values come back coerced and plain."""
    unknown = sorted(set(options) - set(schema))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(schema))}")
    out = {}
    for key, value in options.items():
        coerced = _coerce(schema[key], value, f"{where}.{key}")
        out[key] = _plain(dataclasses.asdict(coerced)) if dataclasses.is_dataclass(coerced) else _plain(coerced)
    return out


def config_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key ``--set`` accepts for ``cls`` (nested dataclasses expanded)."""
    hints = typing.get_type_hints(cls)
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        if dataclasses.is_dataclass(tp):
            keys += config_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


SchemaOf = Callable[[Mapping[str, Any]], OptionSchema | None]


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (dataclass, union, literal, sequence, mapping or scalar); a ConfigError if it is not."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _coerce_dataclass(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(args, value, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list):
        return _coerce_sequence(origin, args, value, where)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(tp, value, where)


def _coerce_dataclass(tp: Any, value: Any, where: str) -> Any:
    """A nested config dataclass from a mapping (an instance passes through)."""
    if isinstance(value, tp):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return _from_dict(tp, value, where)


def _coerce_union(args: tuple[Any, ...], value: Any, where: str) -> Any:
    """The first member type of a union that accepts ``value`` (None when the union allows it)."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(arg, value, where)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")


def _coerce_sequence(origin: type, args: tuple[Any, ...], value: Any, where: str) -> Any:
    """A list or tuple (a comma-separated string or a single value is split or wrapped), each item coerced."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        value = [value]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(args[0], v, where) for v in value)
    if origin is tuple and args:
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    inner = args[0] if args else Any
    return origin(_coerce(inner, v, where) for v in value)


def _coerce_scalar(tp: Any, value: Any, where: str) -> Any:
    """A bool (true/yes/1, false/no/0), int, float, str or Path; other types pass the value through."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "yes", "1", "false", "no", "0"}:
            return value.lower() in {"true", "yes", "1"}
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        return _coerce_number(tp, value, where)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def _coerce_number(tp: type, value: Any, where: str) -> Any:
    """An int or float (never a bool; an int never from a fractional float)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    try:
        out = tp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from exc
    if tp is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return out

"""A restricted unpickler for dataset files that are pickles (DEAP ``.dat``, the dicts inside SEED-V ``.npz``).

``pickle.load`` on a user file runs whatever callable the file names. This module admits only what plain numpy
arrays need to be rebuilt; any other global makes loading stop *before* it is called, with a one-line error that
names the file and the refused global.

Admitted globals (Python 2 and Python 3, numpy 1 and numpy 2 spellings):

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (ndarray.__reduce__),
- ``numpy.ndarray`` and ``numpy.dtype`` (the array class and its dtype),
- ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar`` (numpy scalars such as ``np.float64(1)``),
- ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer`` (arrays pickled with protocol 5),
- ``_codecs.encode`` restricted to latin-1 (how Python 3's protocol-2 pickler stores bytes).

Containers (dict, list, tuple), numbers, strings and bytes need no global and load as usual.
"""

from __future__ import annotations

import _codecs
import io
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["ALLOWED_GLOBALS", "PickleLoadError", "UnsafePickleError", "safe_load", "safe_loads"]


class PickleLoadError(ValueError):
    """A pickle could not be loaded (truncated, corrupt, or refused). The message is one line naming the file."""


class UnsafePickleError(PickleLoadError, pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing it names was called."""


def _numpy_attr(*candidates: str) -> Any:
    """The first importable ``module:attr`` of ``candidates`` (numpy 2 moved ``numpy.core`` to ``numpy._core``)."""
    import importlib

    for candidate in candidates:
        module_name, attr = candidate.split(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {candidates} is importable")


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3's protocol-2 pickler uses it (``encode(text, 'latin1')``), and nothing more."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed (only latin1)")
    if not isinstance(obj, str):
        raise UnsafePickleError("_codecs.encode on a non-str argument is not allowed")
    return _codecs.encode(obj, "latin1", errors)


_RECONSTRUCT = _numpy_attr("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")
_SCALAR = _numpy_attr("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")
_FROMBUFFER = _numpy_attr("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")

ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], *, source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused to unpickle global {module}.{name}: only numpy arrays are allowed "
                "(the file is not a plain numpy pickle; nothing in it was run)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: refused a persistent id in the pickle (only numpy arrays allowed)")


def safe_load(file: str | Path | IO[bytes], *, source: str | None = None, encoding: str = "latin1") -> Any:
    """Load a pickle that may only contain numpy arrays, numbers, strings and containers.

    ``file`` is a path or a binary file object; ``source`` names it in errors (default: the path).
    ``encoding='latin1'`` reads Python 2 pickles (DEAP) and is harmless for Python 3 ones.
    Raises :class:`UnsafePickleError` for a forbidden global and :class:`PickleLoadError` for a truncated or
    corrupt file; both one line, naming the file.
    """
    if isinstance(file, (str, Path)):
        name = source or str(file)
        try:
            with open(file, "rb") as fh:
                return _load(fh, name, encoding)
        except OSError as exc:
            raise PickleLoadError(f"{name}: cannot read ({exc.strerror or exc})") from None
    return _load(file, source or getattr(file, "name", "<pickle>"), encoding)


def safe_loads(data: bytes | bytearray | memoryview, *, source: str, encoding: str = "latin1") -> Any:
    """:func:`safe_load` for a pickle held in memory (e.g. the bytes of a 0-d numpy array)."""
    return _load(io.BytesIO(bytes(data)), source, encoding)


def _load(fh: IO[bytes], source: str, encoding: str) -> Any:
    try:
        return _RestrictedUnpickler(fh, source=source, encoding=encoding).load()
    except UnsafePickleError as exc:
        message = str(exc)
        raise UnsafePickleError(message if message.startswith(source) else f"{source}: {message}") from None
    except UnicodeDecodeError as exc:  # pragma: no cover - only with a non-latin1 encoding argument
        raise PickleLoadError(f"{source}: cannot decode a Python 2 string ({exc.reason}); use encoding='latin1'") from None
    except EOFError:
        raise PickleLoadError(f"{source}: truncated pickle (the file ends before the data does)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if "truncated" in detail:
            raise PickleLoadError(f"{source}: truncated pickle ({detail})") from None
        raise PickleLoadError(f"{source}: corrupt or unsupported pickle ({detail})") from None

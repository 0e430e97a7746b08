"""Helpers shared by the readers: strict CSV reading, a small per-file cache, numeric sorting, image reading."""

from __future__ import annotations

import csv
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from extract.datasets.base import DatasetError

V = TypeVar("V")


def read_csv_rows(path: Path, required: Sequence[str], *, expected: str | None = None) -> list[dict[str, str]]:
    """Rows of a CSV as dicts of stripped strings; the header must contain every column of ``required``.

    Errors are one-line :class:`DatasetError` naming the file: missing file, empty file, wrong header.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if not header or missing:
                want = expected or ",".join(required)
                raise DatasetError(
                    f"{path}: wrong CSV header {','.join(header) or '(empty file)'!r}; expected {want!r}"
                    + (f" (missing {', '.join(missing)})" if header else "")
                )
            reader.fieldnames = header
            return [
                {k: (v or "").strip() for k, v in row.items() if k is not None}
                for row in reader
                if any((v or "").strip() for k, v in row.items() if k is not None)
            ]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text CSV ({exc.reason})") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from None


def parse_int(value: str, path: Path, what: str, line: int | None = None) -> int:
    """``int(value)`` (accepting ``"7.0"``) or a DatasetError naming the file, line and column."""
    try:
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        where = f" line {line}" if line is not None else ""
        raise DatasetError(f"{path}:{where} {what} {value!r} is not an integer") from None


def parse_float(value: str, path: Path, what: str, line: int | None = None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        where = f" line {line}" if line is not None else ""
        raise DatasetError(f"{path}:{where} {what} {value!r} is not a number") from None


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (numbers compared as numbers)."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


def read_image_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3); grayscale is expanded. DatasetError when it cannot be decoded."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DatasetError(f"{path}: image file not found")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DatasetError(f"{path}: cannot decode image (truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class FileCache(Generic[V]):
    """A tiny thread-safe LRU of loaded files (e.g. one DEAP subject's 100 MB ``.dat``), ``maxsize`` entries."""

    def __init__(self, maxsize: int = 2) -> None:
        self.maxsize = max(int(maxsize), 0)
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a loader ran (tests check the cache works)

    def get(self, key: Hashable, loader: Callable[[], V]) -> V:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = loader()
        with self._lock:
            self.loads += 1
            if self.maxsize:
                self._entries[key] = value
                self._entries.move_to_end(key)
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

"""The Zarr v3 documents and chunk bytes the zarr backend writes directly (the spec fixes them): group and
array metadata, the ``vlen-utf8`` encoding, one-chunk columns, and the layout checks of the raw readers."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_SEP = "."
_EMB = "embeddings"
_GROUPS = ("rows", "labels", "quality")
_LE_BYTES = {"name": "bytes", "configuration": {"endian": "little"}}
_EMPTY = 2**64 - 1  # shard index entry of an absent inner chunk


def _group_meta(attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": dict(attributes or {})}


def dimension_names(name: str, ndim: int) -> list[str]:
    """``row`` first; ``embeddings`` (n, dim) gets ``dim``; other trailing axes ``<name>_dim<i>``."""
    base = name.rsplit("/", 1)[-1]
    if base == _EMB and ndim == 2:
        return ["row", "dim"]
    return ["row", *(f"{base}_dim{i}" for i in range(1, ndim))]


def _array_meta(
    shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype | str, inner: tuple[int, ...] | None = None,
    dims: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Array metadata as zarr-python writes it; with ``inner``, ``chunks`` is the shard shape and ``inner`` the
    chunk shape inside it. ``dims``: the ``dimension_names`` (what xarray names the axes)."""
    if dtype == "string":
        data_type, fill, codecs = "string", "", [{"name": "vlen-utf8", "configuration": {}}]
    else:
        dt = np.dtype(dtype)
        data_type = dt.name
        fill = False if dt.kind == "b" else (0.0 if dt.kind == "f" else 0)
        codecs = [{"name": "bytes"}] if dt.itemsize == 1 else [dict(_LE_BYTES)]
    if inner is not None:
        codecs = [{
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": list(inner),
                "codecs": codecs,
                "index_codecs": [dict(_LE_BYTES), {"name": "crc32c"}],
                "index_location": "end",
            },
        }]
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": _SEP}},
        "fill_value": fill,
        "codecs": codecs,
        "attributes": {},
        "storage_transformers": [],
    }
    if dims is not None:
        meta["dimension_names"] = list(dims)
    return meta


def _write_bytes(path: Path, *parts: bytes | memoryview) -> None:
    with open(path, "wb") as fh:
        for part in parts:
            fh.write(part)


def _write_json(path: Path, obj: Any) -> None:
    _write_bytes(path, json.dumps(obj, allow_nan=True).encode())


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _crc32c(data: bytes) -> int | None:
    try:
        import google_crc32c  # zarr's own dependency for its crc32c codec
    except ImportError:  # pragma: no cover - zarr requires it
        return None
    return int(google_crc32c.value(data))


def _encode_vlen_utf8(values: np.ndarray) -> bytes:
    """The ``vlen-utf8`` codec: uint32 count, then per value uint32 byte length + UTF-8 bytes (all little-endian).

    Row columns repeat one value per item, so runs of equal values are encoded once and repeated.
    """
    n = len(values)
    if n == 0:
        return struct.pack("<I", 0)
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    parts = [struct.pack("<I", n)]
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        raw = str(values[lo]).encode("utf-8")
        parts.append((struct.pack("<I", len(raw)) + raw) * (hi - lo))
    return b"".join(parts)


def _plain_codecs(codecs: Sequence[Mapping[str, Any]]) -> bool:
    if len(codecs) != 1 or codecs[0].get("name") != "bytes":
        return False
    return (codecs[0].get("configuration") or {}).get("endian", "little") == "little"


def _raw_layout(meta: Mapping[str, Any]) -> str | None:
    """``"plain"`` (uncompressed chunks), ``"sharded"`` (uncompressed inner chunks in shards), or None."""
    if meta.get("data_type") == "string" or meta.get("storage_transformers"):
        return None
    if meta.get("chunk_grid", {}).get("name") != "regular" or meta.get("chunk_key_encoding", {}).get("name") != (
        "default"
    ):
        return None
    codecs = meta.get("codecs", [])
    if _plain_codecs(codecs):
        return "plain"
    if len(codecs) == 1 and codecs[0].get("name") == "sharding_indexed":
        conf = codecs[0].get("configuration", {})
        index = [c.get("name") for c in conf.get("index_codecs", [])]
        if _plain_codecs(conf.get("codecs", [])) and index in (["bytes"], ["bytes", "crc32c"]):
            return "sharded"
    return None


def fill_value(meta: Mapping[str, Any]) -> Any:
    """The array's ``fill_value`` as a numpy scalar (the JSON spellings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
    and ``"0x..."`` bit patterns included)."""
    value = meta.get("fill_value", 0)
    if meta.get("data_type") == "string":
        return "" if value is None else str(value)
    dtype = np.dtype(meta["data_type"])
    if isinstance(value, str):
        if value.startswith("0x"):
            raw = int(value, 16).to_bytes(dtype.itemsize, "big")
            return np.frombuffer(raw, dtype=dtype.newbyteorder(">"))[0].astype(dtype)
        value = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(value, value)
    return np.asarray(0 if value is None else value).astype(dtype)[()]


def _row_chunked(meta: Mapping[str, Any], chunks: Sequence[int]) -> bool:
    """Chunked along rows only (every trailing axis whole), which is what the raw readers handle."""
    shape = meta["shape"]
    return len(shape) >= 1 and list(chunks[1:]) == list(shape[1:])


def _read_chunks(meta: Mapping[str, Any], layout: str) -> list[int]:
    if layout == "sharded":
        return list(meta["codecs"][0]["configuration"]["chunk_shape"])
    return list(meta["chunk_grid"]["configuration"]["chunk_shape"])


def _chunk_key(meta: Mapping[str, Any], idx: Sequence[int]) -> str:
    sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
    return "c" + "".join(f"{sep}{i}" for i in idx)


def _write_column(apath: Path, values: np.ndarray, dims: Sequence[str] | None = None) -> None:
    """One array of any dtype and shape (n, ...) as ONE chunk ``c.0[.0...]`` (strings: 1-D, ``vlen-utf8``)."""
    apath.mkdir()
    shape = tuple(int(d) for d in values.shape)
    n = shape[0]
    chunks = (max(1, n), *(max(1, d) for d in shape[1:]))
    dims = dims if dims is not None else dimension_names(apath.name, len(shape))
    key = "c" + "".join(f"{_SEP}0" for _ in shape)
    if values.dtype.kind in "OUT":
        _write_json(apath / "zarr.json", _array_meta(shape, chunks, "string", dims=dims))
        if n:
            _write_bytes(apath / key, _encode_vlen_utf8(values))
        return
    data = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
    _write_json(apath / "zarr.json", _array_meta(shape, chunks, data.dtype, dims=dims))
    if data.size:
        _write_bytes(apath / key, memoryview(data).cast("B"))

"""Golden: the Zarr v3 metadata we write by hand equals what zarr-python writes for every dtype/shape class we
use (sharded embeddings, one-chunk columns of each dtype, strings, N-D row arrays, the consolidated root)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from store.backends.zarr_backend import _array_meta, _write_column
from store.backends.zarr_base import root_meta

SEP = {"name": "default", "separator": "."}


def _zarr_json(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_sharded_embeddings_metadata(tmp_path: Path, dtype: str) -> None:
    zarr.create_array(tmp_path / "e", shape=(100, 8), chunks=(16, 8), shards=(64, 8), dtype=dtype, compressors=None,
                      filters=None, fill_value=0, chunk_key_encoding=SEP, dimension_names=["row", "dim"])
    ours = _array_meta((100, 8), (64, 8), np.dtype(dtype), inner=(16, 8), dims=["row", "dim"])
    assert ours == _zarr_json(tmp_path / "e")


@pytest.mark.parametrize(("dtype", "shape"), [
    ("int16", (7,)), ("int32", (7,)), ("int64", (7,)), ("float32", (7,)), ("float64", (7,)), ("bool", (7,)),
    ("uint8", (7,)), ("uint8", (7, 4, 4, 3)), ("float32", (7, 4)), ("str", (7,)),
])
def test_column_metadata(tmp_path: Path, dtype: str, shape: tuple) -> None:
    values = np.array([f"k{i}" for i in range(7)], dtype=object) if dtype == "str" else np.zeros(shape, dtype)
    dims = ["row", *(f"c_dim{i}" for i in range(1, len(shape)))]
    _write_column(tmp_path / "ours", values, dims)
    zarr.create_array(tmp_path / "theirs", shape=shape, chunks=shape, dtype=str if dtype == "str" else dtype,
                      compressors=None, filters=None, chunk_key_encoding=SEP, dimension_names=dims)
    assert _zarr_json(tmp_path / "ours") == _zarr_json(tmp_path / "theirs")
    got = zarr.open_array(tmp_path / "ours", mode="r")[:]
    assert list(got) == list(values) if dtype == "str" else np.array_equal(got, values)


def test_consolidated_root_metadata(tmp_path: Path) -> None:
    root = tmp_path / "g"
    zarr.create_group(root, attributes={"a": 1})
    metas = {}
    for name, values in (("item", np.array(["x", "y"], dtype=object)), ("t", np.zeros(2))):
        _write_column(root / name, values, ["row"])
        metas[name] = _zarr_json(root / name)
    with pytest.warns(UserWarning, match="Consolidated"):
        zarr.consolidate_metadata(root)
    assert root_meta({"a": 1}, metas) == _zarr_json(root)


def test_absent_chunks_read_as_the_fill_value(tmp_path: Path) -> None:
    from store.backends.zarr_backend import ZarrBackend

    seg = tmp_path / "seg"
    z = zarr.create_array(seg / "embeddings", shape=(40, 4), chunks=(4, 4), shards=(8, 4), dtype="float32",
                          compressors=None, filters=None, fill_value=float("nan"), chunk_key_encoding=SEP)
    z[:8] = 1.0  # shards 1..4 never written
    out = np.empty((40, 4), np.float32)
    with ZarrBackend().embeddings_reader(seg) as reader:
        reader.read(0, 40, out)
    assert (out[:8] == 1).all() and np.isnan(out[8:]).all()

"""Compaction: one standard group that plain zarr / xarray / dask / h5py open in one call, equal to our reader;
writing after compaction; a SIGKILL at every step of a compaction loses nothing and a rerun finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_testlib import assert_same, make_manifest, worker_items

from store import compact_store, create_store, open_store

WORKER = Path(__file__).with_name("compact_worker.py")
FEATURES = [f"ch{i}_delta" for i in range(16)]


def _write(path: Path, backend: str, items: list, writer_id: str = "w", **kw: object) -> None:
    manifest = make_manifest(dim=16, feature_names=FEATURES)
    with create_store(path, manifest, backend=backend, writer_id=writer_id, chunk_rows=8, segment_rows=40,
                      durable=False, **kw) as w:
        for item in items:
            if w.status(item.key) != "done":
                w.write_item(item)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = {}
    for backend in ("zarr", "hdf5"):
        path = tmp_path_factory.mktemp("ref") / f"ref-{backend}.store"
        _write(path, backend, worker_items(60))
        out[backend] = open_store(path).read()
    return out


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_compact_then_write_more_then_compact(tmp_path: Path, backend: str, reference: dict) -> None:
    items = worker_items(60)
    path = tmp_path / "s.store"
    _write(path, backend, items[:30])
    with create_store(path, make_manifest(dim=16, feature_names=FEATURES), backend=backend, writer_id="w") as w:
        w.mark_failed(items[30].key, "boom")
    result = compact_store(path)
    assert result.compacted and result.items == 30 and result.removed_segments > 0
    store = open_store(path)
    assert store.compacted and list(store._segments) == ["(compacted)"] and store.verify() == []
    assert store.items("failed") == [items[30].key]
    # resume + --retry-failed + new items land in segments beside the base and read back merged
    _write(path, backend, items, writer_id="w2")
    store = open_store(path)
    assert store.items("failed") == [] and len(store._segments) > 1
    assert_same(store.read(), reference[backend])
    assert not compact_store(path).removed_segments == 0
    store = open_store(path)
    assert list(store._segments) == ["(compacted)"] and store.verify() == []
    assert_same(store.read(), reference[backend])
    assert not compact_store(path).compacted  # nothing new: a no-op


def test_plain_tools_open_a_compacted_zarr_store_in_one_call(tmp_path: Path, reference: dict) -> None:
    import dask.array as da
    import xarray as xr
    import zarr

    path = tmp_path / "s.store"
    _write(path, "zarr", worker_items(60))
    compact_store(path)
    emb, rows = open_store(path).read(dtype=None)
    group = zarr.open_group(path, mode="r")
    assert np.array_equal(group["embeddings"][:], emb, equal_nan=True)
    assert list(group["item"][:]) == list(rows["item"])
    assert group.attrs["mmer_layout"] == "mmer-compacted/1"
    assert group.attrs["mmer_manifest"]["fingerprint"] == open_store(path).fingerprint
    x = da.from_zarr(str(path), component="embeddings")
    assert x.shape == (len(rows), 16) and np.array_equal(x.compute(), emb, equal_nan=True)
    ds = xr.open_zarr(path)
    assert ds["embeddings"].dims == ("row", "dim") and list(ds["dim"].values) == FEATURES
    assert np.array_equal(ds["embeddings"].values, emb, equal_nan=True)
    table = ds.drop_vars(["embeddings", "dim"]).reset_index("row").to_dataframe()
    for col in rows.columns:
        assert np.array_equal(np.asarray(table[col]), np.asarray(rows[col]), equal_nan=rows[col].dtype.kind == "f")
    xr.testing.assert_equal(open_store(path).to_xarray().load(), ds.load())
    x2, rows2 = open_store(path).to_dask(rows=True)
    assert np.array_equal(x2.compute(), emb, equal_nan=True)
    pd.testing.assert_frame_equal(rows2, rows)


def test_h5py_opens_the_compacted_hdf5_file(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "s.store"
    _write(path, "hdf5", worker_items(60))
    compact_store(path)
    emb, rows = open_store(path).read(dtype=None)
    with h5py.File(path / "store.h5", "r") as f:
        assert f.attrs["mmer_layout"] == "mmer-compacted/1"
        assert np.array_equal(f["embeddings"][:], emb, equal_nan=True)
        assert list(f["item"].asstr()[:]) == list(rows["item"])
        assert np.array_equal(f["label_valence"][:], rows["label_valence"], equal_nan=True)
        assert list(f["dim"].asstr()[:]) == FEATURES
        assert json.loads(f.attrs["mmer_manifest"])["feature_names"] == FEATURES


def test_feature_names_reach_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.store"
    _write(path, "zarr", worker_items(5))
    data = open_store(path).read()
    emb, rows = data
    assert data.feature_names == FEATURES and emb is data.embeddings and rows is data.rows
    assert list(open_store(path).to_xarray()["dim"].values) == FEATURES


def _crash(path: Path, step: str | None, delay_s: float = 0.0) -> int:
    env = dict(os.environ, MMER_STORE_CRASH_AT=step or "")
    proc = subprocess.Popen([sys.executable, str(WORKER), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    if step is None:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        try:
            proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)  # waits, and closes the pipes
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "steps"), [
    ("zarr", ["built", "kept", "unlinked", "swapping", "published", "dropping", None]),
    ("hdf5", ["built", "published", "dropping", None]),
])
def test_sigkill_during_compaction_loses_nothing(tmp_path: Path, backend: str, steps: list, reference: dict) -> None:
    items = worker_items(60)
    for i, step in enumerate(steps):
        path = tmp_path / f"c{i}.store"
        _write(path, backend, items[:40])
        compact_store(path)  # an earlier base that must survive, plus new segments
        _write(path, backend, items, writer_id="w2")
        rc = _crash(path, step, delay_s=0.8)
        if step is not None:
            assert rc == -signal.SIGKILL, step
        store = open_store(path)
        assert [p for p in store.verify() if not p.startswith("warning:")] == [], step
        assert_same(store.read(), reference[backend])  # every item served: old base or segments
        compact_store(path)  # the rerun finishes it
        store = open_store(path)
        assert list(store._segments) == ["(compacted)"] and store.verify() == [], step
        assert_same(store.read(), reference[backend])


def _crop_items(n_items: int, rows: int, dim: int) -> list:
    """uint8 'crops' that compress (smooth ramps plus a little noise), as a face crop store holds."""
    from store.schema import ItemRows

    out = []
    for i in range(n_items):
        rng = np.random.default_rng(i)
        base = (np.arange(dim) // 7 + i * 3) % 256
        emb = ((base[None, :] + (rng.random((rows, dim)) < 0.05)) % 256).astype(np.uint8)
        t = np.arange(rows, dtype=np.float64)
        out.append(ItemRows(key=f"s{i % 3:02d}/trial{i:02d}", embeddings=emb, subject=f"s{i % 3:02d}", session=1,
                            trial=f"trial{i:02d}", t_start_s=t, t_end_s=t + 1.0, labels={"valence": float(i)},
                            quality={"face_found": np.arange(rows) % 4 != 0}))
    return out


def _embedding_bytes(path: Path) -> int:
    """Bytes the embeddings take on disk: zarr chunk/shard files, or the hdf5 datasets' storage."""
    import h5py

    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "embeddings" in p.parts
                and p.name != "zarr.json")
    for h5 in path.rglob("*.h5"):
        with h5py.File(h5, "r") as f:
            total += f["embeddings"].id.get_storage_size()
    return total


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_a_compressed_store_stays_compressed_when_compacted(tmp_path: Path, backend: str) -> None:
    import h5py
    import zarr

    path, dim = tmp_path / "crops.store", 768
    manifest = make_manifest(dim=dim, dtype="uint8", kind="face_crops")
    with create_store(path, manifest, backend=backend, writer_id="w", chunk_rows=16, segment_rows=64,
                      durable=False) as w:
        for item in _crop_items(12, 20, dim):
            w.write_item(item)
    store = open_store(path)
    assert store.compression == ("zstd" if backend == "zarr" else "gzip") and len(store.segments) > 1
    before, seg_bytes = store.read(dtype=None), _embedding_bytes(path)
    assert seg_bytes < 0.5 * before.embeddings.nbytes  # the segments are compressed
    assert compact_store(path).compacted
    store = open_store(path)
    assert list(store.segments) == ["(compacted)"] and store.verify() == []
    after = store.read(dtype=None)
    assert after.embeddings.dtype == np.uint8 and np.array_equal(after.embeddings, before.embeddings)
    pd.testing.assert_frame_equal(after.rows, before.rows)
    assert _embedding_bytes(path) <= 1.2 * seg_bytes  # the base kept the codec
    if backend == "zarr":
        group = zarr.open_group(path, mode="r")
        assert "zstd" in json.dumps(json.loads((path / "embeddings" / "zarr.json").read_text())["codecs"])
        assert np.array_equal(group["embeddings"][:], before.embeddings)
        assert list(group["item"][:]) == list(before.rows["item"])
    else:
        with h5py.File(path / "store.h5", "r") as f:
            assert f["embeddings"].compression == "gzip"
            assert np.array_equal(f["embeddings"][:], before.embeddings)
            assert list(f["item"].asstr()[:]) == list(before.rows["item"])
    # more items land in segments beside the compressed base, and the next compaction folds them in
    with create_store(path, manifest, backend=backend, writer_id="w2", chunk_rows=16, durable=False) as w:
        extra = _crop_items(14, 20, dim)[12:]
        for item in extra:
            w.write_item(item)
    merged = open_store(path).read(dtype=None)
    assert compact_store(path).compacted
    store = open_store(path)
    assert list(store.segments) == ["(compacted)"] and store.verify() == []
    assert np.array_equal(store.read(dtype=None).embeddings, merged.embeddings)

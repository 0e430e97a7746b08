"""README's "read without our code" blocks, run verbatim against stores made by ``pipeline extract`` (EEG of the
fixture DEAP, zarr and hdf5) and a multi-segment float16 store compacted by ``pipeline stores compact``: each block
returns every row, equal to ``open_store(p).read()``. Also: what ``read()`` / ``to_xarray()`` / ``to_dask()`` hand
over (feature names included), and writing to a compacted store through ``pipeline extract``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_testlib import make_item, make_manifest
from typer.testing import CliRunner

from pipelines.cli import app
from store import create_store, open_store

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```python\n# plain: (\w+)\n(.*?)```", re.DOTALL)
PLAIN_TOOLS = {"xarray", "zarr", "dask", "pandas", "h5py"}


def readme_blocks() -> dict[str, str]:
    """The README's ``# plain: <tool>`` python blocks, verbatim."""
    return {name: code for name, code in BLOCK.findall(README.read_text(encoding="utf-8"))}


def extract(root: Path, out: Path, fmt: str, *args: str) -> Path:
    result = CliRunner().invoke(app, ["extract", "-d", "deap", "--root", str(root), "-m", "eeg", "--out", str(out),
                                      "--format", fmt, "--gpu", "-1", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    (path,) = (out / "deap").glob("eeg-*.zarr" if fmt == "zarr" else "eeg-*.h5")
    return path


@pytest.fixture(scope="module")
def deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures.deap import write_deap

    return write_deap(tmp_path_factory.mktemp("deap") / "DEAP", subjects=2, trials=2, seconds=2.0, video=False)


@pytest.fixture(scope="module")
def stores(deap: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``eeg-zarr`` / ``eeg-hdf5``: made by ``pipeline extract``; ``face-zarr`` / ``face-hdf5``: float16 with NaN
    rows, a label only some items have, several segments, compacted by ``pipeline stores compact``."""
    out = {f"eeg-{fmt}": extract(deap, tmp_path_factory.mktemp(f"eeg-{fmt}"), fmt) for fmt in ("zarr", "hdf5")}
    items = [make_item(f"s{i % 3}/t{i:02d}", 3 + i % 4, 8, labels=("valence",) if i % 2 else ("valence", "arousal"))
             for i in range(12)]
    for item in items[::5]:
        item.embeddings[1] = np.nan
    for fmt in ("zarr", "hdf5"):
        path = tmp_path_factory.mktemp(f"face-{fmt}") / "face.store"
        with create_store(path, make_manifest(dim=8), backend=fmt, chunk_rows=4, segment_rows=10) as w:
            for item in items[::-1]:
                w.write_item(item)
        assert len(list((path / "segments").iterdir())) > 1
        result = CliRunner().invoke(app, ["stores", "compact", str(path)])
        assert result.exit_code == 0 and "compacted 12 items" in result.output, result.output
        out[f"face-{fmt}"] = path
    return out


def as_numpy(values: object) -> np.ndarray:
    a = np.asarray(values)
    return a.astype(object).astype(str) if a.dtype.kind in "OUST" else a


def assert_rows_equal(plain: object, ours: pd.DataFrame, *, every_column: bool) -> None:
    columns = list(plain.columns) if isinstance(plain, pd.DataFrame) else list(plain)  # type: ignore[attr-defined]
    if every_column:
        assert sorted(columns) == sorted(ours.columns)
    assert columns and set(columns) <= set(ours.columns)
    for col in columns:
        a, b = as_numpy(plain[col]), as_numpy(ours[col])  # type: ignore[index]
        assert a.shape == (len(ours),), col
        np.testing.assert_array_equal(a, b, err_msg=col)


def test_readme_has_a_block_per_plain_tool() -> None:
    assert set(readme_blocks()) == PLAIN_TOOLS


@pytest.mark.parametrize("tool", sorted(PLAIN_TOOLS))
@pytest.mark.parametrize("kind", ["eeg", "face"])
def test_readme_block_reads_every_row(stores: dict[str, Path], tool: str, kind: str) -> None:
    path = stores[f"{kind}-{'hdf5' if tool == 'h5py' else 'zarr'}"]
    ours = open_store(path).read()
    scope: dict[str, object] = {"store": str(path)}
    exec(compile(readme_blocks()[tool], f"README.md[{tool}]", "exec"), scope)  # noqa: S102 -- the README's own code
    emb = np.asarray(scope["emb"])
    assert emb.shape == ours.embeddings.shape and emb.dtype == open_store(path).dtype
    np.testing.assert_array_equal(emb.astype(np.float32), ours.embeddings)  # NaN rows included
    assert_rows_equal(scope["rows"], ours.rows, every_column=tool != "dask")


def test_feature_names_reach_what_users_get(stores: dict[str, Path]) -> None:
    import h5py
    import xarray as xr

    zarr_store, h5_store = stores["eeg-zarr"], stores["eeg-hdf5"]
    data = open_store(zarr_store).read()
    names = data.feature_names
    assert names is not None and len(names) == data.embeddings.shape[1] == 32 * 5
    assert names[:2] == ["Fp1_delta", "Fp1_theta"] and names[5] == "AF3_delta"
    ds = xr.open_zarr(zarr_store)
    assert list(ds["dim"].values) == names and ds["embeddings"].dims == ("row", "dim")
    assert list(ds["embeddings"].sel(dim="AF3_delta").values) == list(data.embeddings[:, 5])
    for path in (zarr_store, h5_store):
        assert open_store(path).read().feature_names == names
        assert list(open_store(path).to_xarray()["dim"].values) == names
    with h5py.File(h5_store / "store.h5", "r") as f:
        assert list(f["dim"].asstr()[:]) == names
    # the hdf5 store of the same extraction hands over the same Dataset as xr.open_zarr of the zarr one
    xr.testing.assert_equal(open_store(h5_store).to_xarray().load(), ds.load())
    assert open_store(stores["face-zarr"]).read().feature_names is None
    assert "dim" not in xr.open_zarr(stores["face-zarr"]).coords


@pytest.mark.parametrize("kind", ["eeg-zarr", "face-hdf5"])
def test_read_unpacks_and_keeps_its_attributes(stores: dict[str, Path], kind: str) -> None:
    import dask.array as da

    store = open_store(stores[kind])
    data = store.read()
    emb, rows = data
    assert emb is data.embeddings and rows is data.rows and len(data) == len(rows) == store.n_rows
    assert emb.dtype == np.float32 and emb.shape == (store.n_rows, store.dim)
    assert list(data["item"]) == list(rows["item"]) and data["embeddings"] is emb
    assert "valence" in data.label_names and np.array_equal(data.label("valence"), rows["label_valence"],
                                                            equal_nan=True)
    assert data.mask().shape == (len(rows),)
    x, table = store.to_dask(rows=True)
    assert isinstance(x, da.Array) and x.shape == emb.shape
    np.testing.assert_array_equal(x.compute().astype(np.float32), emb)
    pd.testing.assert_frame_equal(table, rows)
    ds = store.to_xarray()
    np.testing.assert_array_equal(ds["embeddings"].values.astype(np.float32), emb)
    assert_rows_equal({c: ds[c].values for c in rows.columns}, rows, every_column=True)


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_extract_into_a_compacted_store_equals_one_run(deap: Path, stores: dict[str, Path], tmp_path: Path,
                                                       fmt: str) -> None:
    """Resume, new items and --retry-failed on a store ``pipeline extract`` compacted read back identical to the
    store of one uninterrupted run, with our reader and with the plain tools."""
    path = extract(deap, tmp_path, fmt, "--limit", "2")
    first = open_store(path)
    assert first.compacted and first.n_items == 2 and len(first._segments) == 1
    failed = "deap/s02/trial01"
    with create_store(path, first.manifest, backend=None) as writer:
        writer.mark_failed(failed, "injected failure")
    extract(deap, tmp_path, fmt)  # resumes: 1 new item, the failed one skipped
    assert open_store(path).items("failed") == [failed] and open_store(path).n_items == 3
    extract(deap, tmp_path, fmt, "--retry-failed")
    store, reference = open_store(path), open_store(stores[f"eeg-{fmt}"])
    assert store.compacted and list(store._segments) == ["(compacted)"] and store.verify() == []
    assert store.fingerprint == reference.fingerprint and store.items("failed") == []
    ours, ref = store.read(dtype=None), reference.read(dtype=None)
    np.testing.assert_array_equal(ours.embeddings, ref.embeddings)
    pd.testing.assert_frame_equal(ours.rows, ref.rows)
    if fmt == "zarr":
        import xarray as xr

        xr.testing.assert_identical(xr.open_zarr(path).drop_attrs().load(),
                                    xr.open_zarr(stores["eeg-zarr"]).drop_attrs().load())


def test_to_xarray_before_compaction_equals_open_zarr_after(tmp_path: Path) -> None:
    import xarray as xr

    path = tmp_path / "s.store"
    names = [f"c{i}_alpha" for i in range(6)]
    with create_store(path, make_manifest(dim=6, feature_names=names), chunk_rows=4, segment_rows=8) as w:
        for i in range(7):
            w.write_item(make_item(f"s{i % 2}/t{i}", 2 + i % 3, 6, quality={"face_found": "bool", "det": "float"}))
    before = open_store(path).to_xarray().load()
    assert not open_store(path).compacted and list(before["dim"].values) == names
    CliRunner().invoke(app, ["stores", "compact", str(path)])
    xr.testing.assert_equal(before, xr.open_zarr(path).load())

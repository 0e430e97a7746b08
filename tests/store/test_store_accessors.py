"""The public accessors verify, gc and compaction read a store through (no private state)."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_testlib import make_item, make_manifest

from store import Store, StoreWriter, collect_garbage, compact_store, create_store, open_store


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_segments_bad_segments_segment_of_and_failure_records(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "s"
    late = create_store(path, make_manifest(dim=4), backend=backend, writer_id="late")
    with create_store(path, make_manifest(dim=4), backend=backend, writer_id="w") as writer:
        writer.mark_failed("b/2", "bad input")
        writer.write_item(make_item("a/1", 3, 4))
    late.mark_failed("a/1", "stale news")  # this writer has not seen a/1 commit: the record is superseded
    late.close()
    store = open_store(path)
    first = "w-000001" + store.segment_backend.suffix
    assert list(store.segments) == [first] and store.bad_segments == {}
    assert store.segment_of("a/1") == first and store.segment_of("b/2") is None
    assert sorted(store.failure_records()) == ["a/1", "b/2"]  # every record, the superseded one included
    assert store.failures() == {"b/2": "bad input"}
    with pytest.raises(TypeError):
        store.segments["x"] = store.segments[first]  # type: ignore[index]
    (store.segments_dir / f"w-000009{store.segment_backend.suffix}").write_bytes(b"not a segment")
    store.refresh()
    assert list(store.bad_segments) == [f"w-000009{store.segment_backend.suffix}"] and list(store.segments) == [first]
    assert any(p.startswith(f"segments/w-000009{store.segment_backend.suffix}: unreadable") for p in store.verify())
    store.close()
    reasons = [a.reason for a in collect_garbage(path, dry_run=True)]
    assert reasons == ["failure of 'a/1' superseded"]


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_locations_manifest_dict_and_store_info(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "s"
    with create_store(path, make_manifest(dim=4), backend=backend, writer_id="w", compression=None) as writer:
        for key, n in (("b/2", 2), ("a/1", 3)):
            writer.write_item(make_item(key, n, 4))
        writer.flush()
    store = open_store(path)
    locs = store.locations()
    assert [k for k, _ in locs] == ["a/1", "b/2"] and [loc.n_rows for _, loc in locs] == [3, 2]
    assert [loc.start for _, loc in locs] == [2, 0] and {loc.segment for _, loc in locs} == {store.segment_of("a/1")}
    assert [k for k, _ in store.locations(["b/2"])] == ["b/2"] and locs[0][1].info["key"] == "a/1"
    assert [k for k, _ in store.locations(order="segment")] == ["b/2", "a/1"]
    raw = store.manifest_dict
    assert raw["fingerprint"] == store.fingerprint and raw["dim"] == 4
    raw["dim"] = 99  # a copy: the store is untouched
    assert store.manifest_dict["dim"] == 4
    assert store.store_info["backend"] == backend and store.compression is None
    with pytest.raises(TypeError):
        store.store_info["backend"] = "x"  # type: ignore[index]
    assert compact_store(path).compacted
    assert open_store(path).manifest_dict == store.manifest_dict


def test_a_writer_holds_a_store_instead_of_being_one(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with create_store(path, make_manifest(dim=4), writer_id="w") as writer:
        assert isinstance(writer, StoreWriter) and not isinstance(writer, Store)
        assert isinstance(writer.store, Store) and writer.store.path == writer.path == path
        assert not hasattr(writer, "read") and not hasattr(writer, "to_dask")  # reading goes through writer.store
        writer.write_item(make_item("a/1", 3, 4))
        assert writer.status("a/1") == "absent" and writer.pending == ["a/1"]
        writer.flush()
        assert writer.status("a/1") == "done" and writer.items() == ["a/1"]
        assert writer.store.read().embeddings.shape == (3, 4)  # its new segment is indexed at commit
        writer.mark_failed("c/3", "boom")
        assert writer.items("failed") == ["c/3"] and not writer.claim("a/1") and writer.claim("c/3")
        assert (writer.dim, writer.fingerprint) == (4, writer.store.fingerprint)


def test_old_import_paths_name_the_same_objects() -> None:
    import store.core
    import store.gc
    import store.layout
    import store.maintenance
    import store.reader
    import store.segments
    import store.verify

    assert store.maintenance.collect_garbage is store.gc.collect_garbage
    assert store.maintenance.GcAction is store.gc.GcAction
    assert store.maintenance.verify_store is store.verify.verify_store
    assert store.maintenance.is_warning is store.verify.is_warning
    assert store.maintenance._leftover_is_dead is store.layout.leftover_is_dead
    assert store.core.list_stores is store.layout.list_stores and store.core.is_store is store.layout.is_store
    assert store.reader.SegmentInfo is store.segments.SegmentInfo

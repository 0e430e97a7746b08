"""The public accessors verify, gc and compaction read a store through (no private state)."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_testlib import make_item, make_manifest

from store import collect_garbage, create_store, open_store


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

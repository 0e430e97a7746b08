"""The conformance suite every segment backend passes (zarr-python's ``StoreTests`` pattern).

A backend's test module subclasses ``StoreConformance`` and sets ``backend``; a third backend gets the whole
suite by doing the same. Backend-specific hooks: ``compression`` (one it supports), ``plain_segment`` (open a
segment with the plain library, as someone without our code would) and ``corrupt_embeddings``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_testlib import assert_same, expected, make_item, make_manifest

from store import (
    BACKENDS,
    FingerprintMismatch,
    ItemNotFound,
    NotAStoreError,
    StoreError,
    collect_garbage,
    create_store,
    list_stores,
    open_store,
)
from store.schema import ROW_COLUMNS, ItemRows


class StoreConformance:
    backend: ClassVar[str | None] = None
    compression: ClassVar[str] = ""

    # -- hooks
    def plain_segment(self, path: Path) -> dict[str, Any]:
        """Every array of a segment as numpy (strings as str), plus "attrs", read with the plain library."""
        raise NotImplementedError

    def corrupt_embeddings(self, path: Path) -> None:
        """Change one stored embedding value of a segment behind the store's back."""
        raise NotImplementedError

    # -- helpers
    def create(self, path: Path, manifest: Any = None, **kw: Any) -> Any:
        kw.setdefault("durable", False)
        return create_store(path, manifest or make_manifest(), backend=self.backend, **kw)

    def segments(self, path: Path) -> list[Path]:
        return sorted(p for p in (path / "segments").iterdir() if not p.name.startswith("."))

    # -- tests
    def test_backend_is_registered(self) -> None:
        assert self.backend in BACKENDS
        assert BACKENDS.create(self.backend).name == self.backend

    def test_roundtrip_orders_by_item_and_row(self, tmp_path: Path) -> None:
        items = [make_item(f"s{i % 2:02d}/t{i:02d}", n, 8) for i, n in [(3, 5), (1, 0), (2, 7), (0, 3)]]
        items.append(make_item("s09/t09", 4, 8, labels=("arousal",), quality={"score": "float"}))
        with self.create(tmp_path / "a.store", chunk_rows=4, segment_rows=6) as w:
            for it in items:
                w.write_item(it, timing_s=0.5)
        store = open_store(tmp_path / "a.store")
        assert store.backend == self.backend
        assert store.items() == sorted(it.key for it in items)
        assert store.n_rows == sum(it.n_rows for it in items)
        data = store.read()
        assert_same(data, expected(items, "float16"))
        assert list(data.rows.columns[: len(ROW_COLUMNS)]) == list(ROW_COLUMNS)
        assert data.rows["q_face_found"].dtype == bool and data.rows["q_score"].dtype == np.float32
        assert data.embeddings.dtype == np.float32
        native = store.read(dtype=None)
        assert native.embeddings.dtype == np.float16
        assert np.array_equal(native.embeddings.astype(np.float32), data.embeddings)
        assert store.verify() == []
        info = store.item_info("s00/t02")
        assert info["status"] == "done" and info["n_rows"] == 7 and info["timing_s"] == 0.5
        assert info["meta"] == {"source": "s00/t02.avi", "n": 7}
        assert store.item_info("nope")["status"] == "absent"

    def test_subsets_columns_and_iteration(self, tmp_path: Path) -> None:
        items = [make_item(f"s01/t{i}", 3 + i, 8) for i in range(5)]
        with self.create(tmp_path / "a.store", chunk_rows=2, segment_rows=5) as w:
            for it in reversed(items):
                w.write_item(it)
        store = open_store(tmp_path / "a.store")
        want = ["s01/t3", "s01/t1"]
        sub = store.read(want)
        assert_same(sub, expected([items[1], items[3]], "float16"))
        rows = store.rows(want, columns=["item", "row", "label_valence"])
        assert list(rows.columns) == ["item", "row", "label_valence"] and len(rows) == 4 + 6
        assert sub.embeddings.shape == (10, 8)
        assert store.read(want, embeddings=False).embeddings is None
        with pytest.raises(ItemNotFound, match="nope"):
            store.read(["nope"])
        with pytest.raises(StoreError, match="unknown column"):
            store.rows(columns=["bogus"])
        seen = list(store.iter_items())
        assert [k for k, _, _ in seen] == sorted(it.key for it in items)
        for (key, emb, frame), it in zip(seen, items, strict=True):
            assert key == it.key and len(frame) == it.n_rows
            np.testing.assert_array_equal(emb, it.embeddings.astype(np.float16).astype(np.float32))
            assert (frame["item"] == key).all()
        assert data_mask(store) is not None

    def test_to_dask_matches_read_in_both_orders(self, tmp_path: Path) -> None:
        items = [make_item(f"s01/t{i:02d}", 1 + i % 4, 8) for i in range(12)]
        path = tmp_path / "a.store"
        with self.create(path, writer_id="b", chunk_rows=2, segment_rows=4) as wb:
            for it in items[::2]:
                wb.write_item(it)
        with self.create(path, writer_id="a", chunk_rows=2, segment_rows=4) as wa:
            for it in items[1::2][::-1]:
                wa.write_item(it)
        store = open_store(path)
        x = store.to_dask()
        assert x.shape == (sum(it.n_rows for it in items), 8)
        np.testing.assert_array_equal(x.compute(), store.read(dtype=None).embeddings)
        seg = store.to_dask(order="segment", dtype=np.float32).compute()
        by_segment = store.read(order="segment")
        np.testing.assert_array_equal(seg, by_segment.embeddings)
        pd.testing.assert_frame_equal(store.rows(order="segment"), by_segment.rows)
        assert list(by_segment.rows["item"].unique()) != sorted(by_segment.rows["item"].unique())
        store.close()

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
    @given(
        sizes=st.lists(st.integers(0, 9), min_size=0, max_size=7),
        dim=st.integers(1, 6),
        dtype=st.sampled_from(["float16", "float32"]),
        chunk_rows=st.integers(1, 5),
        segment_rows=st.integers(1, 16),
        label_sets=st.lists(st.sets(st.sampled_from(["a", "b"])), min_size=7, max_size=7),
        quality_sets=st.lists(st.sets(st.sampled_from(["f", "s"])), min_size=7, max_size=7),
        order=st.permutations(range(7)),
    )
    def test_property_roundtrip(
        self, sizes: list[int], dim: int, dtype: str, chunk_rows: int, segment_rows: int,
        label_sets: list[set[str]], quality_sets: list[set[str]], order: list[int],
    ) -> None:
        items = [
            make_item(f"s{i % 3}/t{i}", n, dim, labels=sorted(label_sets[i]),
                      quality={q: ("bool" if q == "f" else "float") for q in sorted(quality_sets[i])})
            for i, n in enumerate(sizes)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "p.store"
            with self.create(path, make_manifest(dim=dim, dtype=dtype), chunk_rows=chunk_rows,
                             segment_rows=segment_rows) as w:
                for i in order:
                    if i < len(items):
                        w.write_item(items[i])
            store = open_store(path)
            assert_same(store.read(), expected(items, dtype, dim))
            assert store.verify() == []
            self.check_plain_readers_agree(store)

    def check_plain_readers_agree(self, store: Any) -> None:
        """Rebuild the whole row table and embeddings from the plain library alone, following the README."""
        frames, embs = [], []
        for seg in self.segments(store.path):
            arrays = self.plain_segment(seg)
            n = arrays["attrs"]["n_rows"]
            assert arrays["embeddings"].shape == (n, store.dim)
            table = {c: arrays[f"rows/{c}"] for c in ROW_COLUMNS}
            for name, values in arrays.items():
                if name.startswith("labels/"):
                    table["label_" + name[7:]] = values
                elif name.startswith("quality/"):
                    table["q_" + name[8:]] = values
            frames.append(pd.DataFrame(table))
            embs.append(arrays["embeddings"])
        if not frames:
            assert store.read().rows.empty
            return
        plain = pd.concat(frames, ignore_index=True)
        emb = np.concatenate(embs)
        order = np.lexsort((plain["row"].to_numpy(), plain["item"].to_numpy().astype(str)))
        ours = store.read(dtype=None)
        np.testing.assert_array_equal(emb[order], ours.embeddings)
        for col in [*ROW_COLUMNS, *(c for c in plain.columns if c.startswith("label_"))]:
            a, b = plain[col].to_numpy()[order], ours.rows[col].to_numpy()
            if col in ("item", "subject", "trial"):
                a, b = a.astype(str), b.astype(str)
            np.testing.assert_array_equal(a, b, err_msg=col)

    def test_resume_continues_and_equals_one_run(self, tmp_path: Path) -> None:
        items = [make_item(f"s01/t{i:02d}", 2 + i % 5, 8) for i in range(10)]
        ref = tmp_path / "ref.store"
        with self.create(ref) as w:
            for it in items:
                w.write_item(it)
        path = tmp_path / "a.store"
        with self.create(path, chunk_rows=3) as w:
            for it in items[:4]:
                w.write_item(it)
        with self.create(path, chunk_rows=3) as w:
            assert [w.status(it.key) for it in items[3:5]] == ["done", "absent"]
            for it in items:
                if w.status(it.key) != "done":
                    w.write_item(it)
            with pytest.raises(StoreError, match="already committed"):
                w.write_item(items[0])
        assert_same(open_store(path).read(), open_store(ref).read())

    def test_fingerprint_mismatch_names_the_field(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        self.create(path).close()
        other = make_manifest(config={"fps": 10.0, "crop": 224})
        with pytest.raises(FingerprintMismatch, match=r"config\.fps") as err:
            self.create(path, other)
        assert err.value.differences == ["config.fps"]
        assert "5.0 (store) vs 10.0 (requested)" in str(err.value)
        with pytest.raises(FingerprintMismatch, match="model.id"):
            self.create(path, make_manifest(model={"id": "big", "sha256": "abc"}))
        # informative fields do not change the fingerprint
        self.create(path, make_manifest(dataset_root="/elsewhere", created_at="2020")).close()

    def test_backend_mismatch_and_not_a_store(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        self.create(path).close()
        other = next(b for b in BACKENDS if b != self.backend)
        with pytest.raises(StoreError, match=f"is a {self.backend} store"):
            create_store(path, make_manifest(), backend=other)
        create_store(path, make_manifest(), backend=None).close()  # None: whatever it is
        (tmp_path / "junk").mkdir()
        (tmp_path / "junk" / "file").write_text("x")
        with pytest.raises(NotAStoreError):
            open_store(tmp_path / "junk")
        with pytest.raises(NotAStoreError):
            self.create(tmp_path / "junk")

    def test_failed_items_and_retry(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        with self.create(path) as w:
            w.write_item(make_item("s01/ok", 3, 8))
            w.mark_failed("s01/bad", "ValueError: no face track", timing_s=1.5)
            w.mark_failed("s01/worse", "boom")
        store = open_store(path)
        assert store.status("s01/bad") == "failed" and store.status("s01/ok") == "done"
        assert store.failures() == {"s01/bad": "ValueError: no face track", "s01/worse": "boom"}
        assert store.items("failed") == ["s01/bad", "s01/worse"]
        assert store.item_info("s01/bad")["timing_s"] == 1.5
        with self.create(path) as w:  # --retry-failed: redo only the failed ones
            for key in w.items("failed"):
                w.write_item(make_item(key, 2, 8))
        store = open_store(path)
        assert store.failures() == {} and store.items() == ["s01/bad", "s01/ok", "s01/worse"]
        assert not list((path / "status" / "failed").iterdir())
        assert store.verify() == []

    def test_claims(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        w1 = self.create(path, writer_id="w1")
        w2 = self.create(path, writer_id="w2")
        assert w1.claim("s01/a") and w1.claim("s01/a")
        assert not w2.claim("s01/a")
        w1.write_item(make_item("s01/a", 2, 8))
        assert not w2.claim("s01/a")  # still claimed (uncommitted)
        w1.flush()
        assert not w2.claim("s01/a")  # done
        assert not list((path / "claims").glob("*.claim"))
        # a claim of a dead process on this host is stale and taken over
        assert w1.claim("s01/b")
        claim = next((path / "claims").glob("*.claim"))
        rec = json.loads(claim.read_text())
        rec.update(pid=_dead_pid(), pid_start=None)
        claim.write_text(json.dumps(rec))
        assert w2.claim("s01/b")
        # a claim from another host is honoured until it is older than the TTL
        assert w2.claim("s01/c")
        claim = next(p for p in (path / "claims").glob("*.claim") if "s01%2Fc" in p.name)
        rec = json.loads(claim.read_text())
        rec.update(host="elsewhere", writer="w9")
        claim.write_text(json.dumps(rec))
        w2._claims.discard("s01/c")
        assert not w1.claim("s01/c")
        rec["time"] -= 7 * 3600
        claim.write_text(json.dumps(rec))
        assert w1.claim("s01/c")
        w1.close()
        w2.close()
        assert not list((path / "claims").glob("*.claim"))

    def test_verify_detects_corruption(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        with self.create(path, chunk_rows=4) as w:
            for i in range(3):
                w.write_item(make_item(f"s01/t{i}", 6, 8))
        store = open_store(path)
        assert store.verify() == []
        seg = self.segments(path)[0]
        self.corrupt_embeddings(seg)
        problems = open_store(path).verify()
        assert any("checksum mismatch" in p and seg.name in p for p in problems), problems
        assert open_store(path).verify(checksums=False) == []
        # an edited manifest is caught too
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["config"]["fps"] = 99
        (path / "manifest.json").write_text(json.dumps(manifest))
        assert any("manifest.json" in p for p in open_store(path).verify())

    def test_verify_detects_truncated_segment(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        with self.create(path, chunk_rows=4) as w:
            w.write_item(make_item("s01/t0", 9, 8))
        seg = self.segments(path)[0]
        biggest = max((p for p in ([seg] if seg.is_file() else seg.rglob("*")) if p.is_file()), key=os.path.getsize)
        with open(biggest, "r+b") as fh:
            fh.truncate(os.path.getsize(biggest) // 2)
        problems = open_store(path).verify()
        assert problems and not all(p.startswith("warning:") for p in problems), problems

    def test_duplicates_resolved_warned_and_collected(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        a, b, c = (self.create(path, writer_id=w) for w in "abc")
        a.write_item(make_item("s01/x", 3, 8))
        b.write_item(make_item("s01/x", 5, 8))  # a claim race: both did the item
        b.write_item(make_item("s01/y", 2, 8))
        a.close()
        b.close()
        store = open_store(path)
        assert store.duplicates() == {"s01/x": ["a-000001" + self.suffix(), "b-000001" + self.suffix()]}
        assert len(store.read(["s01/x"])) == 3  # the lexicographically first segment wins
        problems = store.verify()
        assert len(problems) == 1 and problems[0].startswith("warning:") and "s01/x" in problems[0]
        # a segment whose every item is a duplicate goes; one with other items stays
        c.write_item(make_item("s01/y", 2, 8))
        c.close()
        actions = collect_garbage(path)
        assert [x.path.name for x in actions] == ["c-000001" + self.suffix()]
        assert list(open_store(path).duplicates()) == ["s01/x"]

    def suffix(self) -> str:
        return BACKENDS.info(self.backend)["suffix"]

    def test_uncommitted_segments_are_invisible_and_collected(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        w = self.create(path, chunk_rows=2)
        w.write_item(make_item("s01/t0", 5, 8))
        assert w.pending == ["s01/t0"]
        tmp = [p for p in (path / "segments").iterdir() if p.name.startswith(".tmp~")]
        assert len(tmp) == 1  # chunks already stream into the uncommitted segment
        reader = open_store(path)
        assert reader.items() == [] and reader.status("s01/t0") == "absent" and reader.verify() == []
        assert collect_garbage(path, dry_run=True) == []  # its writer is alive
        # a leftover of a dead writer goes, with --dry-run only listed
        dead = path / "segments" / f".tmp~{_host()}~{_dead_pid()}~abc{self.suffix()}"
        os.rename(tmp[0], dead)
        w._seg = None
        w._pending.clear()
        listed = collect_garbage(tmp_path, dry_run=True)
        assert [a.path for a in listed] == [dead] and dead.exists()
        assert [a.path for a in collect_garbage(path, dry_run=True)] == [dead]
        collect_garbage(tmp_path)
        assert not dead.exists()
        w.close()

    def test_failed_write_discards_open_segment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "a.store"
        with self.create(path, chunk_rows=2) as w:
            w.write_item(make_item("s01/ok", 3, 8))
            w.flush()
            w.write_item(make_item("s01/lost", 1, 8))
            seg_cls = type(w._seg)

            def boom(self: Any, index: int, block: np.ndarray) -> None:
                raise OSError("disk full")

            monkeypatch.setattr(seg_cls, "write_chunk", boom)
            with pytest.raises(StoreError, match="disk full"):
                w.write_item(make_item("s01/bad", 4, 8))
            assert w.pending == []
            monkeypatch.undo()
            w.write_item(make_item("s01/later", 4, 8))
        store = open_store(path)
        assert store.items() == ["s01/later", "s01/ok"] and store.verify() == []
        assert not [p for p in (path / "segments").iterdir() if p.name.startswith(".")]

    def test_write_item_validation(self, tmp_path: Path) -> None:
        with self.create(tmp_path / "a.store") as w:
            with pytest.raises(StoreError, match="dim=8"):
                w.write_item(make_item("s01/a", 2, 5))
            with pytest.raises(StoreError, match="label names"):
                w.write_item(make_item("s01/a", 2, 8, labels=("bad/name",)))
            w.write_item(make_item("s01/a", 2, 8))
            with pytest.raises(StoreError, match="already written"):
                w.write_item(make_item("s01/a", 2, 8))
            with pytest.raises(StoreError, match="non-empty"):
                w.write_item(ItemRows(key="", embeddings=np.zeros((1, 8)), subject="s", session=1, trial="t",
                                      t_start_s=[0.0], t_end_s=[1.0]))
        w2 = self.create(tmp_path / "a.store")
        w2.close()
        with pytest.raises(StoreError, match="closed"):
            w2.write_item(make_item("s01/b", 2, 8))

    def test_flush_policy(self, tmp_path: Path) -> None:
        path = tmp_path / "a.store"
        w = self.create(path, flush_interval_s=0.0)
        w.write_item(make_item("s01/a", 2, 8))
        assert w.status("s01/a") == "done" and open_store(path).items() == ["s01/a"]
        w.close()
        w = self.create(path, segment_rows=5, flush_interval_s=1e9)
        w.write_item(make_item("s01/b", 3, 8))
        assert w.pending == ["s01/b"]
        w.write_item(make_item("s01/c", 3, 8))
        assert w.pending == [] and len(self.segments(path)) == 2
        w.close()

    def test_compression_roundtrip(self, tmp_path: Path) -> None:
        items = [make_item(f"s01/t{i}", 5 + i, 8) for i in range(4)]
        with self.create(tmp_path / "c.store", compression=self.compression, chunk_rows=4) as w:
            for it in items:
                w.write_item(it)
        store = open_store(tmp_path / "c.store")
        assert_same(store.read(), expected(items, "float16"))
        assert store.verify() == []
        np.testing.assert_array_equal(store.to_dask().compute(), store.read(dtype=None).embeddings)
        with pytest.raises(StoreError, match="no compression"):
            self.create(tmp_path / "d.store", compression="nope")

    def test_empty_store(self, tmp_path: Path) -> None:
        self.create(tmp_path / "e.store", make_manifest(dim=4, dtype="float32")).close()
        store = open_store(tmp_path / "e.store")
        data = store.read()
        assert data.embeddings.shape == (0, 4) and list(data.rows.columns) == list(ROW_COLUMNS)
        assert data.rows["session"].dtype == np.int32 and data.rows["item"].dtype == "str"
        assert store.to_dask().shape == (0, 4)
        assert store.verify() == [] and store.items() == [] and store.failures() == {}

    def test_list_stores_and_summary(self, tmp_path: Path) -> None:
        for name in ("b.store", "nested/a.store"):
            with self.create(tmp_path / name) as w:
                w.write_item(make_item("s01/t0", 4, 8))
                w.write_item(make_item("s02/t0", 2, 8))
                w.mark_failed("s03/t0", "x")
        assert list_stores(tmp_path) == [tmp_path / "b.store", tmp_path / "nested" / "a.store"]
        assert list_stores(tmp_path / "b.store") == [tmp_path / "b.store"]
        summary = open_store(tmp_path / "b.store").summary()
        assert summary["kind"] == "face" and summary["backend"] == self.backend
        assert (summary["items_done"], summary["items_failed"], summary["rows"], summary["dim"]) == (2, 1, 6, 8)
        assert summary["size_bytes"] > 0 and len(summary["fingerprint"]) == 16
        counts = open_store(tmp_path / "b.store").subject_counts()
        assert counts.to_dict("list") == {"subject": ["s01", "s02"], "items": [1, 1], "rows": [4, 2]}


def data_mask(store: Any) -> np.ndarray:
    data = store.read()
    mask = data.mask()
    assert mask.dtype == bool and len(mask) == len(data)
    np.testing.assert_array_equal(mask, data.rows["q_face_found"].to_numpy())
    return mask


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _host() -> str:
    from store.layout import hostname, sanitize_name

    return sanitize_name(hostname())

"""Test helpers shared by the store tests and the child-process worker: deterministic items, manifests, and an
independent re-implementation of what ``Store.read()`` must return."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from store.schema import ROW_COLUMNS, ItemRows, Manifest


def make_manifest(dim: int = 8, dtype: str = "float16", **overrides: Any) -> Manifest:
    fields: dict[str, Any] = dict(
        kind="face", dataset="deap", extractor="test/extractor", extractor_version="1", dim=dim, dtype=dtype,
        config={"fps": 5.0, "crop": 224}, model={"id": "tiny", "sha256": "abc"}, preprocessing={"norm": "clip"},
        input_fingerprint="inputs-1", dataset_root="/data/deap",
    )
    fields.update(overrides)
    return Manifest(**fields)


def item_seed(key: str) -> int:
    return zlib.crc32(key.encode())


def make_item(
    key: str,
    n: int,
    dim: int,
    *,
    labels: Sequence[str] = ("valence",),
    quality: dict[str, str] | None = None,
    subject: str | None = None,
    session: int = 1,
    fold: int = -1,
) -> ItemRows:
    """A deterministic item: everything derives from ``key`` (so a child process makes the same rows)."""
    rng = np.random.default_rng(item_seed(key))
    quality = {"face_found": "bool"} if quality is None else quality
    t = np.arange(n, dtype=np.float64) * 0.2 - 0.4
    q = {}
    for name, kind in quality.items():
        q[name] = rng.random(n) > 0.3 if kind == "bool" else rng.random(n).astype(np.float64)
    return ItemRows(
        key=key,
        embeddings=rng.standard_normal((n, dim)).astype(np.float32),
        subject=subject or key.split("/")[0],
        session=session,
        trial=key.split("/")[-1],
        t_start_s=t,
        t_end_s=t + 0.2,
        labels={name: float(rng.integers(1, 10)) for name in labels},
        quality=q,
        fold=fold,
        meta={"source": f"{key}.avi", "n": n},
    )


def worker_items(count: int, dim: int = 16) -> list[ItemRows]:
    """The items the crash/concurrency workers write: varied row counts (some not chunk-aligned, some empty)."""
    return [
        make_item(f"s{i % 4:02d}/trial{i:04d}", (i * 7) % 23, dim, labels=("valence", "arousal") if i % 3 else ("valence",))
        for i in range(count)
    ]


def expected(items: Sequence[ItemRows], dtype: str, dim: int | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """What ``read()`` must return for ``items``: sorted by key, union of columns, NaN / False fills."""
    items = sorted(items, key=lambda it: it.key)
    labels = sorted({n for it in items for n in it.labels})
    qnames = sorted({n for it in items for n in it.quality})
    qbool = {n: all(np.asarray(it.quality[n]).dtype == bool for it in items if n in it.quality) for n in qnames}
    cols: dict[str, list[np.ndarray]] = {c: [] for c in ROW_COLUMNS}
    for name in labels:
        cols["label_" + name] = []
    for name in qnames:
        cols["q_" + name] = []
    for it in items:
        n = it.n_rows
        cols["item"].append(np.array([it.key] * n, dtype=object))
        cols["subject"].append(np.array([it.subject] * n, dtype=object))
        cols["session"].append(np.full(n, it.session, np.int32))
        cols["trial"].append(np.array([it.trial] * n, dtype=object))
        cols["row"].append(np.arange(n, dtype=np.int32))
        cols["t_start_s"].append(np.asarray(it.t_start_s, np.float64))
        cols["t_end_s"].append(np.asarray(it.t_end_s, np.float64))
        cols["fold"].append(np.full(n, it.fold, np.int16))
        for name in labels:
            cols["label_" + name].append(np.asarray(it.labels.get(name, np.full(n, np.nan)), np.float64))
        for name in qnames:
            if qbool[name]:
                cols["q_" + name].append(np.asarray(it.quality.get(name, np.zeros(n, bool)), bool))
            else:
                cols["q_" + name].append(np.asarray(it.quality.get(name, np.full(n, np.nan)), np.float32))
    data = {}
    for name, parts in cols.items():
        dt = ROW_COLUMNS.get(name)
        empty = np.empty(0, object if dt == "str" else (dt or (bool if name.startswith("q_") and qbool[name[2:]] else (np.float32 if name.startswith("q_") else np.float64))))
        values = np.concatenate(parts) if parts else empty
        data[name] = pd.array(values, dtype="str") if dt == "str" else values
    frame = pd.DataFrame(data, columns=list(cols))
    dim = items[0].embeddings.shape[1] if items else (dim or 0)
    emb = (
        np.concatenate([np.asarray(it.embeddings).astype(dtype).astype(np.float32) for it in items])
        if items else np.empty((0, dim), np.float32)
    )
    return emb, frame


def assert_same(a: Any, b: Any) -> None:
    """Two StoreData (or (emb, frame) pairs) are identical: same rows, same order, same embeddings bits."""
    ea, fa = (a.embeddings, a.rows) if hasattr(a, "rows") else a
    eb, fb = (b.embeddings, b.rows) if hasattr(b, "rows") else b
    pd.testing.assert_frame_equal(fa.reset_index(drop=True), fb.reset_index(drop=True), check_exact=True)
    assert ea.shape == eb.shape and ea.dtype == eb.dtype
    np.testing.assert_array_equal(ea, eb)

"""A fake dataset and extractors for the extraction-job tests (importable by worker processes: ``--plugin``).

``fakeds`` has subjects s01..sNN x trials 1..T. Every item has a ``vec`` source file; items of the last trial of
the last subject have no ``img`` file (like DEAP's missing videos). A source whose content starts with ``BAD`` makes
the item fail with an ItemError; ``FAKE_SLEEP_S`` makes each item take that long (for the kill test);
``FAKE_ROW_SLEEP_S`` makes each of its rows take that long, reported to the job's progress row by row.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from extract.base import EXTRACTORS, FeatureExtractor, ItemError
from extract.datasets.base import DATASETS, DatasetReader, Item
from extract.progress import add_rows, expect_rows
from store.schema import ItemRows

ROWS_PER_ITEM = 5
DIM = 8


def write_fakeds(root: Path, subjects: int = 2, trials: int = 3) -> Path:
    """Write the fake dataset under ``root``; returns ``root``."""
    for s in range(1, subjects + 1):
        for t in range(1, trials + 1):
            stem = f"s{s:02d}_t{t:02d}"
            (root / "vec").mkdir(parents=True, exist_ok=True)
            (root / "vec" / f"{stem}.bin").write_bytes(f"vec {stem}".encode())
            if not (s == subjects and t == trials):
                (root / "img").mkdir(parents=True, exist_ok=True)
                (root / "img" / f"{stem}.bin").write_bytes(f"img {stem}".encode())
    (root / "labels.csv").write_text("subject,trial,valence\n")
    return root


class FakeReader(DatasetReader):
    name = "fakeds"
    modalities = ("vec", "img")

    def __init__(self, root: str | Path, label_offset: float = 0.0) -> None:
        super().__init__(root)
        self.label_offset = label_offset

    def _list_items(self) -> list[Item]:
        out = []
        for path in sorted((self.root / "vec").glob("*.bin")):
            subject, trial = path.stem.split("_")
            sources = {"vec": str(path)}
            img = self.root / "img" / path.name
            if img.exists():
                sources["img"] = str(img)
            out.append(Item(key=f"fakeds/{subject}/{trial}", dataset="fakeds", subject=subject, session=1,
                            trial=trial, labels={"valence": int(trial[1:]) + self.label_offset}, sources=sources))
        return out


class FakeExtractor(FeatureExtractor):
    """Deterministic rows from the item key; ``kind`` says which source it reads."""

    def __init__(self, kind: str = "vec", scale: float = 1.0) -> None:
        self.kind = kind
        self.scale = scale
        self.last_stage_s: dict[str, float] = {}
        self.pid = os.getpid()

    def manifest_parts(self) -> dict[str, Any]:
        return {"extractor": f"fake/{self.kind}", "extractor_version": "1", "dim": DIM, "dtype": "float32",
                "config": {"scale": self.scale}, "model": {"id": "fake"}, "preprocessing": {}}

    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        t0 = time.perf_counter()
        sleep = float(os.environ.get("FAKE_SLEEP_S", "0") or 0)
        if sleep:
            time.sleep(sleep)
        row_sleep = float(os.environ.get("FAKE_ROW_SLEEP_S", "0") or 0)
        if row_sleep:
            expect_rows(ROWS_PER_ITEM)
            for _ in range(ROWS_PER_ITEM):
                time.sleep(row_sleep)
                add_rows(1)
        data = Path(item.sources[self.kind]).read_bytes()
        if data.startswith(b"BAD"):
            raise ItemError(f"{item.key}: corrupt {self.kind} file {item.sources[self.kind]}")
        seed = int(hashlib.sha256(f"{self.kind}:{item.key}".encode()).hexdigest()[:8], 16)
        emb = np.random.default_rng(seed).standard_normal((ROWS_PER_ITEM, DIM)).astype(np.float32) * self.scale
        t = np.arange(ROWS_PER_ITEM, dtype=np.float64)
        self.last_stage_s = {"read": time.perf_counter() - t0, "features": 0.0}
        return ItemRows(key=item.key, embeddings=emb, subject=item.subject, session=item.session, trial=item.trial,
                        t_start_s=t, t_end_s=t + 1.0, labels=dict(item.labels),
                        quality={"input_nan": np.zeros(ROWS_PER_ITEM, bool)}, fold=item.fold,
                        meta={"pid": 0})


def store_table(path: Path | str) -> dict[str, np.ndarray]:
    """All committed rows of a store, sorted by (item, row), as plain arrays."""
    from store import open_store

    data = open_store(path).read(dtype=None)  # read() orders rows by (item, row) whatever the writers were
    out = {name: data.rows[name].to_numpy() for name in data.rows.columns}
    out["embeddings"] = data.embeddings
    return out


def assert_same_store(a: Path | str, b: Path | str) -> None:
    ta, tb = store_table(a), store_table(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name].shape == tb[name].shape, name
        if ta[name].dtype.kind == "f":
            np.testing.assert_array_equal(ta[name], tb[name], err_msg=name)  # NaN == NaN here
        else:
            assert (ta[name] == tb[name]).all(), name


if "fakeds" not in DATASETS:
    DATASETS.add("fakeds", FakeReader)
    EXTRACTORS.add("fakeds-vec", lambda **kw: FakeExtractor("vec", **kw), kind="vec")
    EXTRACTORS.add("fakeds-img", lambda **kw: FakeExtractor("img", **kw), kind="img")

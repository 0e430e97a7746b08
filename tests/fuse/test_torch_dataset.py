"""``fuse.torch_dataset.StoreDataset``: the rows of a (compacted or not) store as tensors, in read() order."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_testlib import make_manifest, worker_items  # noqa: E402

from fuse.torch_dataset import StoreDataset  # noqa: E402
from store import compact_store, create_store, open_store  # noqa: E402


def test_dataset_yields_embeddings_and_targets(tmp_path: Path) -> None:
    path = tmp_path / "s.store"
    with create_store(path, make_manifest(dim=16, feature_names=[f"f{i}" for i in range(16)]), chunk_rows=8) as w:
        for item in worker_items(12):
            w.write_item(item)
    compact_store(path)
    emb, rows = open_store(path).read()
    ds = StoreDataset(path, target="label_valence", mask="face_found")
    keep = rows["q_face_found"].to_numpy()
    assert len(ds) == int(keep.sum()) and ds.feature_names[0] == "f0"
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    assert np.array_equal(x.numpy(), emb[keep], equal_nan=True)
    assert np.array_equal(y.numpy(), rows["label_valence"].to_numpy()[keep].astype(np.float32))
    assert StoreDataset(path)[0].shape == (16,)

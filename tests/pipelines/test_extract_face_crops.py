"""The crop store: `pipeline extract --modality face_crops` writes the face path's aligned crops as uint8 rows,
compressed, fingerprinted like every store, and `fuse.finetune` reads them back as images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from extract.base import EXTRACTORS
from extract.datasets import create_dataset
from fuse.finetune.data import CropStoreError, load_crops
from pipelines.jobs import ExtractConfig, run_extract
from store import open_store

FACE_OPTIONS = {"detector_options": {"min_face_size": 40}}


@pytest.fixture(scope="module")
def deap_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures.deap import write_deap

    return write_deap(tmp_path_factory.mktemp("crops") / "DEAP", subjects=1, trials=2, seconds=2.0, seed=1,
                      frame_size=(320, 256), fps=25.0, missing_videos={})


def _extract(root: Path, out: Path, crop_size: int) -> Path:
    cfg = ExtractConfig(dataset="deap", root=root, out_dir=out, modality="face_crops", detector="mtcnn", fps=2.0,
                        crop_size=crop_size, face_options=FACE_OPTIONS, gpu=(-1,), progress=False)
    return Path(run_extract(cfg).store("face_crops").path)


def test_crop_store_holds_the_aligned_crops_compressed_and_fingerprinted(deap_root: Path, tmp_path: Path) -> None:
    path = _extract(deap_root, tmp_path / "cache", 64)
    store = open_store(path)
    try:
        assert store.manifest.kind == "face_crops" and str(store.dtype) == "uint8" and store.dim == 64 * 64 * 3
        manifest = store.manifest.to_dict()
        assert manifest["config"]["crop_size"] == 64 and manifest["extractor"] == "face_crops/mtcnn"
        assert "backbone" not in manifest["config"]  # no embedding model: the pixels themselves
        fingerprint = store.fingerprint
        raw = store.read(dtype=None)
    finally:
        store.close()
    found = raw.rows["q_face_found"].to_numpy(bool)
    assert len(raw.rows) == 8 and found.sum() >= 6  # 2 items x 2 s at 2 fps, a row per sampled frame
    assert not raw.embeddings[~found].any()  # a frame without the face keeps its row: zeros
    data = load_crops(path)
    assert data.crops.shape == (found.sum(), 64, 64, 3) and data.crops.dtype == np.uint8 and data.crop_size == 64
    assert set(data.rows["item"]) == {"deap/s01/trial01", "deap/s01/trial02"}  # face rows only
    # the rows are exactly the face path's aligned crops of that video
    reader = create_dataset("deap", deap_root)
    item = next(it for it in reader.items() if it.key == "deap/s01/trial01")
    ex = EXTRACTORS.create("face_crops", detector="mtcnn", fps=2.0, crop_size=64, device="cpu", **FACE_OPTIONS)
    try:
        expected = np.stack([r.crop for r in ex.pipeline.process_video(item.sources["video"]) if r.face_found])
    finally:
        ex.close()
    np.testing.assert_array_equal(data.crops[(data.rows["item"] == item.key).to_numpy()], expected)
    # compacted by extract into one zarr group that keeps the segments' zstd codec (no segments left)
    import zarr

    assert store.compacted and list(store.segments) == ["(compacted)"]
    metas = [json.loads(p.read_text()) for p in path.rglob("embeddings/zarr.json")]
    assert metas and all('"zstd"' in json.dumps(m["codecs"]) for m in metas)
    np.testing.assert_array_equal(zarr.open_group(path, mode="r")["embeddings"][:], raw.embeddings)
    pixels = [p for p in path.rglob("*") if p.is_file() and "embeddings" in p.parts and p.name != "zarr.json"]
    assert sum(p.stat().st_size for p in pixels) < raw.embeddings.nbytes
    assert path.name.endswith(f"-{str(fingerprint)[:8]}.zarr") and "64px" in path.name  # named by its fingerprint


def test_an_embedding_store_is_not_a_crop_store(tmp_path: Path) -> None:
    from fuse.synthetic import Planted, write_planted_stores

    write_planted_stores(tmp_path, Planted(n_subjects=2, n_trials=2, n_windows=2))
    face = next(p for p in tmp_path.rglob("*face*") if p.suffix in (".zarr", "") and p.is_dir())
    with pytest.raises(CropStoreError, match="face_crops"):
        load_crops(face)

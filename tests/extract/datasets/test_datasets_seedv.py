"""SEED-V reader: keys 0..44 -> session/trial, the real label sequences, feature shapes, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from extract.datasets import DatasetError, create_dataset
from extract.datasets.seedv import SESSION_LABELS, load_npz_dicts
from extract.fixtures.seedv import write_pickled_npz


def test_items_and_features_round_trip(seedv_root: Path) -> None:
    reader = create_dataset("seedv", root=seedv_root)
    items = reader.items()
    assert len(items) == 2 * 3 * 3
    assert items[0].key == "seedv/1/s1t01" and items[-1].key == "seedv/2/s3t03"
    raw = load_npz_dicts(seedv_root / "EEG_DE_features" / "2_123.npz")
    eye = load_npz_dicts(seedv_root / "Eye_movement_features" / "2_123.npz")
    for it in items:
        k = it.meta["npz_key"]
        assert (it.session, int(it.trial)) == (k // 15 + 1, k % 15 + 1)
        assert it.labels["emotion"] == SESSION_LABELS[it.session][int(it.trial) - 1]
        assert it.fold == (int(it.trial) - 1) // 5 + 1 and it.meta["window_s"] == 4.0
        de, em = reader.features(it, "eeg_de"), reader.features(it, "eye")
        assert de.shape == (it.meta["n_windows"], 310) and em.shape == (it.meta["n_windows"], 33)
        if it.subject == "2":
            np.testing.assert_array_equal(de, raw["data"][k])
            np.testing.assert_array_equal(em, eye["data"][k])
    it = next(i for i in items if i.key == "seedv/2/s2t03")
    assert it.subject == "2" and it.session == 2 and it.trial == "03" and it.meta["npz_key"] == 17


def test_features_carry_the_class(seedv_root: Path) -> None:
    reader = create_dataset("seedv", root=seedv_root)
    means = {}
    for it in reader.items():
        means.setdefault(it.labels["emotion"], []).append(reader.features(it, "eeg_de").mean(axis=0))
    centroids = {c: np.mean(v, axis=0) for c, v in means.items()}
    spread = np.mean([np.linalg.norm(centroids[a] - centroids[b]) for a in centroids for b in centroids if a < b])
    assert spread > 5.0  # 310-d class patterns at 0.8 sigma each: far apart compared with trial noise


def test_truncated_npz_skips_subject_and_shape_mismatch_names_file(seedv_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "SEED-V"
    shutil.copytree(seedv_root, root)
    bad = root / "EEG_DE_features" / "1_123.npz"
    bad.write_bytes(bad.read_bytes()[:300])
    reader = create_dataset("seedv", root=root)
    assert {it.subject for it in reader.items()} == {"2"}
    assert "not a readable npz" in reader.bad_files()[str(bad)]

    raw = load_npz_dicts(seedv_root / "Eye_movement_features" / "2_123.npz")
    raw["data"][0] = raw["data"][0][:, :30]  # 30 eye features instead of 33
    eye = root / "Eye_movement_features" / "2_123.npz"
    write_pickled_npz(eye, raw["data"], raw["label"])
    item = create_dataset("seedv", root=root).items()[0]
    with pytest.raises(DatasetError, match=r"2_123\.npz\[data\]\[0\]: shape \(\d+, 30\), expected \(\d+, 33\)"):
        create_dataset("seedv", root=root).features(item, "eye")


def test_missing_feature_folder_and_kind(seedv_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "SEED-V"
    shutil.copytree(seedv_root / "EEG_DE_features", root / "EEG_DE_features")
    reader = create_dataset("seedv", root=root)
    item = reader.items()[0]
    assert item.has("eeg_de") and not item.has("eye")
    with pytest.raises(DatasetError, match="Eye_movement_features: no file for subject 1"):
        reader.features(item, "eye")
    with pytest.raises(ValueError, match="kind"):
        reader.features(item, "raw")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no EEG_DE_features"):
        create_dataset("seedv", root=empty).items()

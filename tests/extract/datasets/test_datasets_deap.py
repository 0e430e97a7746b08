"""DEAP reader: items, the presentation-order join, EEG-only items, labels, caching and bad input."""

from __future__ import annotations

import csv
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from extract.datasets import DatasetError, create_dataset
from extract.datasets.deap import EEG_CHANNELS, PERIPHERAL_CHANNELS, binarize
from extract.fixtures.py2pickle import dump_py2


def _raw(root: Path, subject: str) -> dict:
    with open(root / "data_preprocessed_python" / f"{subject}.dat", "rb") as fh:
        return pickle.load(fh, encoding="latin1")  # our own fixture; the reader never does this


def _ratings(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata_csv" / "participant_ratings.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_items_list_every_trial_with_eeg_and_report_eeg_only(deap_root: Path) -> None:
    reader = create_dataset("deap", root=deap_root)
    items = reader.items()
    assert [it.key for it in items] == [f"deap/s0{s}/trial0{t}" for s in (1, 2) for t in (1, 2, 3)]
    assert {it.subject for it in items} == {"s01", "s02"} and {it.session for it in items} == {1}
    assert [it.trial for it in items[:3]] == ["01", "02", "03"]
    # the 2-subject fixture drops s02's last video: an EEG-only item, listed and reported, not an error
    assert reader.missing_video() == ["deap/s02/trial03"]
    eeg_only = items[-1]
    assert eeg_only.has("eeg") and not eeg_only.has("video") and reader.video_path(eeg_only) is None
    assert reader.video_path(items[0]) == deap_root / "face_video" / "s01" / "s01_trial01.avi"
    assert len(create_dataset("deap", root=deap_root, require_video=True).items()) == 5


def test_join_goes_through_experiment_id_not_presentation_order(deap_root: Path) -> None:
    reader = create_dataset("deap", root=deap_root)
    ratings = {(int(r["Participant_id"]), int(r["Trial"])): int(r["Experiment_id"]) for r in _ratings(deap_root)}
    wrong_pairs = 0
    for item in reader.items():
        raw = _raw(deap_root, item.subject)
        pid, yy = int(item.subject[1:]), int(item.trial)
        exp = ratings[(pid, yy)]
        assert item.meta["experiment_id"] == exp
        rec = reader.eeg(item)
        np.testing.assert_array_equal(rec.data, raw["data"][exp - 1, :32])
        assert rec.data.shape == (32, 128 * 5) and rec.sfreq == 128 and rec.onset_s == 3.0
        assert list(rec.channel_names) == list(EEG_CHANNELS)
        assert item.labels == pytest.approx(dict(zip(("valence", "arousal", "dominance", "liking"),
                                                     raw["labels"][exp - 1], strict=True)))
        if exp != yy:  # the classic bug would pair this face video with another video's EEG
            assert not np.array_equal(rec.data, raw["data"][yy - 1, :32])
            wrong_pairs += 1
    assert wrong_pairs >= 2  # the fixture's presentation order really is shuffled


def test_peripheral_channels_and_read_only_cache(deap_root: Path) -> None:
    reader = create_dataset("deap", root=deap_root, cache_subjects=2)
    items = reader.items()
    assert reader._cache.loads == 2  # listing read each subject's labels once
    for item in items:
        reader.eeg(item)
        per = reader.peripheral(item)
        assert per.data.shape == (8, 640) and list(per.channel_names) == list(PERIPHERAL_CHANNELS)
    assert reader._cache.loads == 2  # 6 trials, no reload
    rec = reader.eeg(items[0])
    with pytest.raises(ValueError):
        rec.data[0, 0] = 1.0  # the cached array is shared: callers get a read-only view


def test_labels_from_ratings_match_dat_labels(deap_root: Path) -> None:
    from_dat = create_dataset("deap", root=deap_root).items()
    from_csv = create_dataset("deap", root=deap_root, labels_from="ratings")
    assert [i.labels for i in from_csv.items()] == [pytest.approx(i.labels) for i in from_dat]
    assert from_csv._cache.loads == 0  # listing read no .dat


def test_binarize_threshold_and_side() -> None:
    values = [4.9, 5.0, 5.1]
    assert binarize(values).tolist() == [0, 1, 1]
    assert binarize(values, side=">").tolist() == [0, 0, 1]
    assert binarize(values, threshold=4.5).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="side"):
        binarize(values, side="<")


def _copy(deap_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "DEAP"
    shutil.copytree(deap_root, root, ignore=shutil.ignore_patterns("*.avi"))
    return root


def test_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset root not found"):
        create_dataset("deap", root=tmp_path / "nope")
    (tmp_path / "DEAP").mkdir()
    with pytest.raises(DatasetError, match=r"data_preprocessed_python: folder not found") as err:
        create_dataset("deap", root=tmp_path / "DEAP").items()
    assert "\n" not in str(err.value)


def test_truncated_dat_skips_that_subject_only(deap_root: Path, tmp_path: Path) -> None:
    root = _copy(deap_root, tmp_path)
    dat = root / "data_preprocessed_python" / "s02.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    reader = create_dataset("deap", root=root)
    assert {it.subject for it in reader.items()} == {"s01"}
    assert list(reader.bad_files()) == [str(dat)]
    assert "truncated" in reader.bad_files()[str(dat)] and str(dat) in reader.bad_files()[str(dat)]
    # with labels from the ratings the items are listed; loading that subject's EEG fails per item
    lazy = create_dataset("deap", root=root, labels_from="ratings")
    items = lazy.items()
    assert len(items) == 6
    lazy.eeg(items[0])
    with pytest.raises(DatasetError, match=r"s02\.dat: truncated pickle"):
        lazy.eeg(items[3])


def test_wrong_ratings_header_names_the_file(deap_root: Path, tmp_path: Path) -> None:
    root = _copy(deap_root, tmp_path)
    path = root / "metadata_csv" / "participant_ratings.csv"
    text = path.read_text().replace("Experiment_id", "Video", 1)
    path.write_text(text)
    with pytest.raises(DatasetError, match=r"participant_ratings\.csv: wrong CSV header .*missing Experiment_id"):
        create_dataset("deap", root=root).items()


def test_shape_mismatch_names_the_file(deap_root: Path, tmp_path: Path) -> None:
    root = _copy(deap_root, tmp_path)
    dat = root / "data_preprocessed_python" / "s01.dat"
    dump_py2({"data": np.zeros((3, 39, 640)), "labels": np.ones((3, 4))}, dat)
    reader = create_dataset("deap", root=root)
    assert {it.subject for it in reader.items()} == {"s02"}
    assert "'data' has shape (3, 39, 640), expected (trials, 40 channels, samples)" in reader.bad_files()[str(dat)]

"""DFEW reader: folds from the split CSVs, label presets, numeric frame order, bad input."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from extract.datasets import DatasetError, create_dataset
from extract.datasets._common import read_image_rgb
from extract.datasets.dfew import CLASSES_7, class_names, map_label


def _split(root: Path, part: str, k: int) -> dict[int, int]:
    with open(root / "EmoLabel_DataSplit" / f"{part}(single-labeled)" / f"set_{k}.csv", newline="") as fh:
        return {int(r["video_name"]): int(r["label"]) for r in csv.DictReader(fh)}


def test_items_folds_and_labels_round_trip(dfew_root: Path) -> None:
    reader = create_dataset("dfew", root=dfew_root)
    items = reader.items()
    assert len(items) == 12 and reader.missing_frames() == []
    ids = [it.meta["clip_id"] for it in items]
    assert ids == sorted(ids) and ids != list(range(ids[0], ids[0] + len(ids)))  # ids are not contiguous
    for k in range(1, 6):
        test = _split(dfew_root, "test", k)
        assert {it.meta["clip_id"] for it in items if it.fold == k} == set(test)
    for it in items:
        clip = it.meta["clip_id"]
        assert it.key == f"dfew/{clip:05d}" and it.subject == it.trial == f"{clip:05d}"
        assert it.labels["emotion"] == it.labels["emotion7"] == _split(dfew_root, "test", it.fold)[clip] - 1
        assert it.meta["class_name"] == CLASSES_7[it.labels["emotion"]]


def test_label_presets_merge_as_specified() -> None:
    happy, sad, neutral, angry, surprise, disgust, fear = range(7)
    assert [map_label(c, 5) for c in range(7)] == [0, 1, 2, 3, 4, angry, sad]
    assert class_names(4) == ("positive", "negative", "neutral", "surprise")
    assert [map_label(c, 4) for c in range(7)] == [0, 1, 2, 1, 3, 1, 1]
    assert [map_label(c, 2) for c in range(7)] == [0, 1, 0, 1, 0, 1, 1]
    assert (happy, neutral, surprise, disgust, fear) == (0, 2, 4, 5, 6)


def test_preset_option_changes_emotion_but_keeps_emotion7(dfew_root: Path) -> None:
    two = create_dataset("dfew", root=dfew_root, label_preset=2).items()
    for it in two:
        assert it.labels["emotion"] == map_label(it.labels["emotion7"], 2)
    with pytest.raises(ValueError, match="label_preset"):
        create_dataset("dfew", root=dfew_root, label_preset=3)


def test_frames_are_sorted_numerically_with_assumed_times(dfew_root: Path) -> None:
    reader = create_dataset("dfew", root=dfew_root)
    item = reader.items()[0]
    frames = list(reader.frames(item))
    assert len(frames) == 16
    assert [f.t_s for f in frames] == pytest.approx([i * 3 / 16 for i in range(16)])
    folder = Path(item.sources["frames"])
    np.testing.assert_array_equal(frames[9].image, read_image_rgb(folder / "10.jpg"))  # 10.jpg after 9.jpg
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (48, 48, 3)
    full = create_dataset("dfew", root=dfew_root, frames="all")
    clip = list(full.frames(full.items()[0]))
    assert len(clip) == 20 and clip[1].t_s == pytest.approx(1 / 25)


def _copy(dfew_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "DFEW"
    shutil.copytree(dfew_root, root)
    return root


def test_bad_split_csv_is_a_one_line_error(dfew_root: Path, tmp_path: Path) -> None:
    root = _copy(dfew_root, tmp_path)
    path = root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_2.csv"
    original = path.read_text()
    path.write_text(original.replace("video_name,label", "name,emotion"))
    with pytest.raises(DatasetError, match=r"set_2\.csv: wrong CSV header 'name,emotion'; expected 'video_name,label'"):
        create_dataset("dfew", root=root).items()
    lines = original.splitlines()
    path.write_text("\n".join([lines[0], lines[1].split(",")[0] + ",8", *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match=r"set_2\.csv: line 2: unknown label 8 \(DFEW labels are 1-7\)"):
        create_dataset("dfew", root=root).items()


def test_zero_padded_ids_and_missing_frame_folder(dfew_root: Path, tmp_path: Path) -> None:
    root = _copy(dfew_root, tmp_path)
    path = root / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv"
    rows = path.read_text().splitlines()
    first_id = int(rows[1].split(",")[0])
    rows[1] = f"{first_id:05d}," + rows[1].split(",")[1]
    path.write_text("\n".join(rows) + "\n")
    shutil.rmtree(root / "Clip" / "clip_224x224_16f" / f"{first_id:05d}")
    reader = create_dataset("dfew", root=root)
    assert len(reader.items()) == 12
    key = f"dfew/{first_id:05d}"
    assert reader.missing_frames() == [key]
    item = next(it for it in reader.items() if it.key == key)
    with pytest.raises(DatasetError, match=rf"{first_id:05d}: frame folder not found"):
        list(reader.frames(item))


def test_label_names_follow_the_preset(dfew_root: Path) -> None:
    two = create_dataset("dfew", root=dfew_root, label_preset=2).label_names()
    assert two["emotion"] == ["positive", "negative"] and len(two["emotion7"]) == 7
    assert create_dataset("dfew", root=dfew_root).label_names()["emotion"][0] == "happy"

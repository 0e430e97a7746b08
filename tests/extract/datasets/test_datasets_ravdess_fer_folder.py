"""RAVDESS names and selections, FER2013 (CSV and folders), the generic folder reader, the registry."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import extract.datasets as datasets
from extract.datasets import DatasetError, create_dataset
from extract.datasets.ravdess import RavdessName, parse_ravdess_name
from extract.fixtures.video import write_video


def test_every_reader_is_registered() -> None:
    assert set(datasets.list_datasets()) >= {"deap", "dfew", "seedv", "ravdess", "fer2013", "folder"}
    with pytest.raises(KeyError, match="unknown dataset 'nope'; known: deap"):
        create_dataset("nope", root=".")


# -- RAVDESS ---------------------------------------------------------------------------------------------------
def test_parse_all_seven_fields() -> None:
    name = parse_ravdess_name("Actor_12/02-01-06-02-01-02-12.mp4")
    assert name == RavdessName(modality=2, vocal_channel=1, emotion=6, intensity=2, statement=1, repetition=2,
                               actor=12)
    assert name.emotion_name == "fearful" and name.fold == 3


@pytest.mark.parametrize(
    ("stem", "problem"),
    [("02-01-06-02-01-02", "6 fields, expected 7"), ("02-01-6-02-01-02-12", "emotion '6'"),
     ("02-01-09-02-01-02-12", "emotion 09 outside 01-08"), ("04-01-06-02-01-02-12", "modality 04"),
     ("02-01-06-02-01-02-25", "actor 25"), ("02-xx-06-02-01-02-12", "vocal_channel 'xx'")],
)
def test_malformed_names_are_one_line_errors(stem: str, problem: str) -> None:
    with pytest.raises(DatasetError, match=f"{stem}.mp4: malformed RAVDESS name: .*{problem}"):
        parse_ravdess_name(f"{stem}.mp4")


def test_ravdess_round_trip_and_selection(ravdess_root: Path) -> None:
    reader = create_dataset("ravdess", root=ravdess_root)
    items = reader.items()
    assert len(items) == 5 * 2 and {it.meta["modality"] for it in items} == {2}
    it = items[0]
    assert it.key == "ravdess/02-01-01-01-01-01-01" and it.subject == "01" and it.labels["emotion"] == 0
    assert reader.video_path(it).is_file()
    assert {it.subject: it.fold for it in items} == {"01": 1, "02": 1, "03": 1, "04": 1, "05": 2}
    assert {it.meta["modality"] for it in create_dataset("ravdess", root=ravdess_root, modality="av").items()} == {1}
    assert len(create_dataset("ravdess", root=ravdess_root, modality="both").items()) == 20
    assert create_dataset("ravdess", root=ravdess_root, vocal="song").items() == []


def test_ravdess_skips_malformed_files_unless_strict(ravdess_root: Path, tmp_path: Path) -> None:
    actor = tmp_path / "Actor_03"
    actor.mkdir()
    for stem in ("02-01-03-01-01-01-03", "02-01-03-01-01-01", "02-02-05-01-01-01-03", "02-01-03-01-01-01-04"):
        (actor / f"{stem}.mp4").write_bytes(b"")
    reader = create_dataset("ravdess", root=tmp_path)
    assert [it.key for it in reader.items()] == ["ravdess/02-01-03-01-01-01-03"]
    assert set(reader.bad_files()) == {str(actor / "02-01-03-01-01-01.mp4"), str(actor / "02-01-03-01-01-01-04.mp4")}
    assert [it.meta["vocal_channel"] for it in create_dataset("ravdess", root=tmp_path, vocal="both").items()] == [1, 2]
    with pytest.raises(DatasetError, match=r"Actor_03/02-01-03-01-01-01(-04)?\.mp4: (malformed|actor 04 in the name)"):
        create_dataset("ravdess", root=tmp_path, strict=True).items()


# -- FER2013 ---------------------------------------------------------------------------------------------------
def test_fer_csv_round_trip(fer_root: Path) -> None:
    reader = create_dataset("fer2013", root=fer_root)
    items = reader.items()
    assert reader.variant == "csv" and len(items) == 15
    assert sum(it.meta["blank"] for it in items) == 1
    with open(fer_root / "fer2013.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    splits = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    for it, row in zip(items, rows, strict=True):
        assert it.labels["emotion"] == int(row["emotion"]) and it.meta["split"] == splits[row["Usage"]]
    frames = list(reader.frames(items[3]))
    assert len(frames) == 1 and frames[0].t_s == 0.0 and frames[0].image.shape == (48, 48, 3)
    gray = np.array(rows[3]["pixels"].split(), dtype=np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(frames[0].image[:, :, 1], gray)


def test_fer_folder_variant(fer_root: Path) -> None:
    reader = create_dataset("fer2013", root=fer_root, variant="folder")
    items = reader.items()
    csv_items = create_dataset("fer2013", root=fer_root).items()
    assert len(items) == len(csv_items)
    assert sorted(it.labels["emotion"] for it in items) == sorted(it.labels["emotion"] for it in csv_items)
    assert items[0].key.startswith("fer2013/test/") or items[0].key.startswith("fer2013/train/")
    assert {it.meta["split"] for it in items} == {"train", "test"}
    image = next(reader.frames(items[0])).image
    assert image.shape == (48, 48, 3)


def test_fer_bad_rows_are_skipped_with_file_and_line(tmp_path: Path) -> None:
    good = " ".join(["7"] * 2304)
    path = tmp_path / "fer2013.csv"
    path.write_text(f"emotion,pixels,Usage\n3,{good},Training\n9,{good},Training\n2,1 2 3,PublicTest\n"
                    f"1,{' '.join(['x'] * 2304)},PrivateTest\n4,{good},Validation\n")
    reader = create_dataset("fer2013", root=tmp_path)
    assert [it.key for it in reader.items()] == ["fer2013/00000"]
    problems = reader.bad_rows()
    assert "line 3: unknown emotion 9" in problems[f"{path}:3"]
    assert "line 4: 3 pixel values, expected 2304" in problems[f"{path}:4"]
    assert str(path) in problems[f"{path}:5"] and "Validation" in problems[f"{path}:6"]
    path.write_text("label,pixels\n")
    with pytest.raises(DatasetError, match=r"fer2013\.csv: wrong CSV header 'label,pixels'"):
        create_dataset("fer2013", root=tmp_path).items()


# -- generic folder --------------------------------------------------------------------------------------------
def test_folder_reader_with_labels_csv(fer_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "alice").mkdir(parents=True)
    frames = [np.full((32, 48, 3), v, np.uint8) for v in (10, 200)]
    write_video(root / "alice" / "clip1.mp4", frames, size=(48, 32), fps=5)
    image = next((fer_root / "train").rglob("*.jpg"))
    (root / "face.jpg").write_bytes(image.read_bytes())
    (root / "labels.csv").write_text("path,label\nalice/clip1.mp4,happy\nface.jpg,sad\n")
    reader = create_dataset("folder", root=root)
    items = reader.items()
    assert [it.key for it in items] == ["folder/alice/clip1", "folder/face"]
    clip, face = items
    assert clip.labels == {"label": 0} and clip.meta["label_name"] == "happy" and clip.subject == "alice"
    assert face.labels == {"label": 1} and face.subject == "0"
    assert reader.video_path(clip) == root / "alice" / "clip1.mp4" and reader.video_path(face) is None
    assert next(reader.frames(face)).image.shape == (48, 48, 3)
    (root / "labels.csv").write_text("path,label\nmissing.mp4,1\n")
    with pytest.raises(DatasetError, match=r"labels\.csv: line 2: 'missing\.mp4' does not exist"):
        create_dataset("folder", root=root).items()
    (root / "labels.csv").write_text("file,y\n")
    with pytest.raises(DatasetError, match=r"labels\.csv: wrong CSV header 'file,y'; expected 'path,label"):
        create_dataset("folder", root=root).items()

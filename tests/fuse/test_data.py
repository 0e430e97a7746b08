"""Alignment of the two modalities on the shared time base, trial aggregation, targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fuse.data import FuseDataError, ModalityData, align, pool_into_windows, to_trials
from fuse.targets import make_target


def _rows(item: str, t0: np.ndarray, t1: np.ndarray, **extra: object) -> pd.DataFrame:
    return pd.DataFrame({"item": item, "subject": item.split("/")[1], "session": 1, "trial": item[-2:],
                         "row": np.arange(len(t0)), "t_start_s": t0, "t_end_s": t1, "fold": -1, **extra})


def _two_items() -> tuple[ModalityData, ModalityData]:
    eeg_rows = pd.concat([_rows("d/s01/t01", np.arange(3.0), np.arange(3.0) + 1, label_valence=7.0),
                          _rows("d/s01/t02", np.arange(2.0), np.arange(2.0) + 1, label_valence=2.0)], ignore_index=True)
    eeg = ModalityData("eeg", "d", np.arange(5 * 2, dtype=np.float32).reshape(5, 2), eeg_rows)
    # item 1: frames at 0, .5, 1, 1.5, 2.5 (frame 1.5 has no face); item 2: frames at .2, 3.5 (outside windows)
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.5, 0.2, 3.5])
    face_rows = pd.concat([_rows("d/s01/t01", t[:5], t[:5]), _rows("d/s01/t02", t[5:], t[5:])], ignore_index=True)
    face_rows["q_face_found"] = [True, True, True, False, True, True, True]
    emb = np.array([[1.0], [3.0], [5.0], [np.nan], [7.0], [10.0], [20.0]], dtype=np.float32)
    return eeg, ModalityData("face", "d", emb, face_rows)


def test_face_frames_pool_into_eeg_windows_of_the_same_item() -> None:
    eeg, face = _two_items()
    table = align([face, eeg])
    assert table.rows["item"].tolist() == ["d/s01/t01"] * 3 + ["d/s01/t02"] * 2
    np.testing.assert_allclose(table.features["face"][:, 0], [2.0, 5.0, 7.0, 10.0, np.nan])
    assert table.rows["n_face"].tolist() == [2, 1, 1, 1, 0]
    np.testing.assert_array_equal(table.features["eeg"], eeg.embeddings)
    assert table.available("face").tolist() == [True, True, True, True, False]


def test_overlapping_windows_count_a_frame_in_each() -> None:
    pooled, counts = pool_into_windows(np.array(["a", "a"]), np.array([0.0, 0.5]), np.array([1.0, 1.5]),
                                       np.array(["a", "a", "b"]), np.array([0.7, 1.2, 0.7]),
                                       np.array([True, True, True]), np.array([[1.0], [3.0], [9.0]], np.float32))
    np.testing.assert_allclose(pooled[:, 0], [1.0, 2.0])
    assert counts.tolist() == [1, 2]


def test_trial_rows_average_windows_weighted_by_frames() -> None:
    eeg, face = _two_items()
    trials = to_trials(align([eeg, face]))
    assert trials.granularity == "trial" and len(trials) == 2
    np.testing.assert_allclose(trials.features["eeg"], [[2.0, 3.0], [7.0, 8.0]])
    np.testing.assert_allclose(trials.features["face"][:, 0], [(1 + 3 + 5 + 7) / 4, 10.0])
    assert trials.rows["n_face"].tolist() == [4, 1]
    pools, index = trials.sequence_index(context=4, max_len=2)
    assert index.shape == (2, 2) and index[1].tolist() == [3, 4]
    assert index[0].tolist() == [0, 2]  # three windows subsampled evenly to two


def test_face_only_fixed_windows_and_per_frame_rows() -> None:
    _, face = _two_items()
    table = align([face], window_s=1.0)
    assert table.rows[["item", "t_start_s"]].values.tolist() == [
        ["d/s01/t01", 0.0], ["d/s01/t01", 1.0], ["d/s01/t01", 2.0], ["d/s01/t02", 0.0], ["d/s01/t02", 3.0]]
    np.testing.assert_allclose(table.features["face"][:, 0], [2.0, 5.0, 7.0, 10.0, 20.0])
    frames = align([face], window_s=0)
    assert len(frames) == 7 and int(frames.available("face").sum()) == 6


def test_window_context_stays_inside_the_trial() -> None:
    eeg, _ = _two_items()
    _, index = align([eeg]).sequence_index(context=3, max_len=8)
    assert index.tolist() == [[-1, 0, 1], [0, 1, 2], [1, 2, -1], [-1, 3, 4], [3, 4, -1]]


def test_stores_of_one_role_twice_or_two_datasets_are_refused() -> None:
    eeg, face = _two_items()
    with pytest.raises(FuseDataError, match="two eeg stores"):
        align([eeg, eeg])
    other = ModalityData("face", "other", face.embeddings, face.rows)
    with pytest.raises(FuseDataError, match="different datasets"):
        align([eeg, other])


def test_binarised_target_records_threshold_and_side() -> None:
    rows = pd.DataFrame({"label_valence": [1.0, 5.0, 5.0, 9.0, np.nan]})
    ge = make_target(rows, "valence", threshold=5.0, side=">=")
    gt = make_target(rows, "valence", threshold=5.0, side=">")
    assert ge.codes.tolist() == [0, 1, 1, 1, -1] and gt.codes.tolist() == [0, 0, 0, 1, -1]
    assert ge.describe()["rule"] == "valence >= 5 -> high" and ge.describe()["missing_labels"] == 1
    emo = make_target(pd.DataFrame({"label_emotion": [4.0, 0.0, 2.0, 4.0]}), "emotion", dataset="seedv")
    assert emo.codes.tolist() == [2, 0, 1, 2] and emo.classes == ("disgust", "sad", "happy")
    with pytest.raises(ValueError, match="labels available: valence"):
        make_target(rows, "arousal")


def test_class_names_recorded_by_the_reader_win_over_the_standard_table() -> None:
    rows = pd.DataFrame({"label_emotion": [0.0, 1.0, 3.0, 1.0]})
    preset4 = ["positive", "negative", "neutral", "surprise"]  # DFEW's 4-class preset
    named = make_target(rows, "emotion", dataset="dfew", class_names=preset4)
    assert named.classes == ("positive", "negative", "surprise")
    standard = make_target(rows, "emotion", dataset="dfew")  # a store without recorded names: the 7-class table
    assert standard.classes == ("happy", "sad", "angry")


def test_quality_limits_exclude_face_rows_outside_each_bound() -> None:
    from fuse.config import FuseConfig

    eeg, face = _two_items()
    face.rows["q_yaw_deg"] = [5.0, -50.0, 0.0, np.nan, 1.0, 2.0, 0.0]
    face.rows["q_pitch_deg"] = [0.0, 0.0, 0.0, np.nan, 0.0, -40.0, 0.0]
    face.rows["q_face_px"] = [80.0, 80.0, 20.0, np.nan, 80.0, 80.0, 80.0]
    face.rows["q_blur"] = [90.0, 90.0, 90.0, np.nan, 3.0, 90.0, 90.0]
    face.rows["q_align_residual"] = [4.0, 4.0, 4.0, np.nan, 4.0, 4.0, 12.0]
    cfg = FuseConfig(max_yaw=30, max_pitch=30, min_face_px=40, min_sharpness=10, max_align_residual=9)
    removed = face.filter_quality(cfg.quality_limits())
    assert removed == {"max_yaw": 1, "max_pitch": 1, "min_face_px": 1, "min_sharpness": 1, "max_align_residual": 1}
    table = align([face, eeg])
    # item 1 keeps only the frame at 0 s (yaw -50 at 0.5, 20 px at 1.0, blurred at 2.5); item 2 loses its -40 pitch
    np.testing.assert_allclose(table.features["face"][:, 0], [1.0, np.nan, np.nan, np.nan, np.nan])
    assert table.rows["n_face"].tolist() == [1, 0, 0, 0, 0]
    assert FuseConfig().quality_limits() == {}
    with pytest.raises(ValueError, match="max_pitch must be in"):
        FuseConfig(max_pitch=120)
    with pytest.raises(ValueError, match="min_face_px must be >= 0"):
        FuseConfig(min_face_px=-1)

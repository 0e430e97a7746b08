"""Issue 16 item 8: predict on inputs shorter than the smoothing window, no smoothing across no-face windows,
``n_faces`` counting faces; and the label mapping / metrics / window pooling behind `predict --model fer2013`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.predict import Prediction, write_prediction
from pipelines.predict_tables import evaluate, map_label, pool_windows, smooth

CLASSES = ["low", "high"]


def test_smooth_keeps_the_shape_of_inputs_shorter_than_the_window() -> None:
    one = np.array([[0.3, 0.7]])
    np.testing.assert_allclose(smooth(one, 3), one)  # np.convolve(mode="same") gave 3 rows here
    two = np.array([[0.2, 0.8], [0.4, 0.6]])
    np.testing.assert_allclose(smooth(two, 5), [[0.3, 0.7], [0.3, 0.7]])


def test_smooth_does_not_fill_or_cross_no_face_windows() -> None:
    values = np.array([[1.0, 0.0], [np.nan, np.nan], [0.0, 1.0], [0.0, 1.0]])
    out = smooth(values, 3)
    assert np.isnan(out[1]).all()  # the gap stays empty (it was the mean of its neighbours, 0.5)
    np.testing.assert_allclose(out[0], [1.0, 0.0])  # not averaged with the far side of the gap
    np.testing.assert_allclose(out[2:], [[0.0, 1.0], [0.0, 1.0]])


def _table(n: int, gap: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1], size=n)
    if gap is not None:
        p[gap] = np.nan
    table = pd.DataFrame({"t_start_s": np.arange(n, dtype=float), "t_end_s": np.arange(1, n + 1, dtype=float),
                          "n_faces": 1, "p_low": p[:, 0], "p_high": p[:, 1]})
    table["predicted"] = np.where(np.isnan(p[:, 0]), "", np.where(p[:, 0] > p[:, 1], "low", "high"))
    return table


@pytest.mark.parametrize("n, gap", [(1, None), (1, 0), (2, None), (5, 2)])
def test_write_prediction_of_short_and_gappy_inputs(tmp_path: Path, n: int, gap: int | None) -> None:
    pred = Prediction(table=_table(n, gap), classes=CLASSES, model_info={"target": {"name": "valence"}})
    paths = write_prediction(pred, tmp_path, title="clip", smooth_windows=3)
    assert [p.name for p in paths] == ["predictions.csv", "timeline.png", "distribution.png", "heatmap.png"]
    csv = pd.read_csv(paths[0])
    assert len(csv) == n and (gap is None or np.isnan(csv.loc[gap, "p_low"]))
    assert all(p.stat().st_size > 3_000 for p in paths[1:])


def test_pool_windows_counts_faces_not_frames_and_keeps_tracks_apart() -> None:
    # 2 s at 4 fps; frames 0-3 show faces of tracks 0 and 1, frames 4-7 only track 0, frame 6 no face at all
    rows = []
    for f in range(8):
        t = f / 4
        tracks = [0, 1] if f < 4 else ([] if f == 6 else [0])
        for k in tracks:
            rows.append({"frame": f, "t_s": t, "track_id": k, "n_faces": len(tracks), "p_low": 0.2 + 0.6 * k,
                         "p_high": 0.8 - 0.6 * k})
        if not tracks:
            rows.append({"frame": f, "t_s": t, "track_id": -1, "n_faces": 0, "p_low": np.nan, "p_high": np.nan})
    table = pool_windows(pd.DataFrame(rows), CLASSES, 1.0, 2.0)
    assert list(zip(table["track_id"], table["t_start_s"], strict=True)) == [(0, 0.0), (0, 1.0), (1, 0.0), (1, 1.0)]
    assert table["n_faces"].tolist() == [2, 1, 2, 1]  # most faces in one frame of the window
    assert table["n_frames"].tolist() == [4, 3, 4, 0]  # frames of that track pooled
    assert table["predicted"].tolist() == ["high", "high", "low", ""]
    per_frame = pool_windows(pd.DataFrame(rows), CLASSES, 0.0, 2.0)
    assert len(per_frame) == 16 and per_frame["t_end_s"].iloc[-1] == pytest.approx(2.0)


def test_label_mapping_and_metrics() -> None:
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [map_label(n, classes) for n in ("Happy", "FEARFUL", "surprised", "calm", "misc")] == [
        "happy", "fear", "surprise", "neutral", None]
    m = evaluate(["happy", "happy", "sad", None, "fear"], ["happy", "sad", "sad", "happy", ""], classes)
    assert (m.n_items, m.n_scored) == (4, 3)
    assert m.accuracy == pytest.approx(2 / 3) and m.uar == pytest.approx((0.5 + 1.0) / 2)
    assert m.confusion.sum() == 3 and m.confusion[3, 4] == 1


def test_timeline_draws_nothing_inside_no_face_windows() -> None:
    from pipelines.predict_plots import _plt, timeline_figure

    table = _table(12)
    empty = [4, 5, 6, 9]  # no face in these windows: empty in the CSV, so nothing may be drawn there
    table.loc[empty, ["p_low", "p_high"]] = np.nan
    table.loc[empty, "predicted"] = ""
    fig = timeline_figure(table, CLASSES, title="gaps", smooth_windows=5)
    gaps = [(table.loc[i, "t_start_s"], table.loc[i, "t_end_s"]) for i in empty]
    ax = fig.axes[0]
    drawn_points, segments = [], []
    for line in ax.get_lines():
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        ok = np.isfinite(y)
        drawn_points += list(x[ok])
        segments += [(x[i], x[i + 1]) for i in range(len(x) - 1) if ok[i] and ok[i + 1]]
    for collection in ax.collections:  # the raw per-window points
        offsets = np.ma.filled(np.ma.asarray(collection.get_offsets(), dtype=float), np.nan)
        drawn_points += list(offsets[np.isfinite(offsets).all(axis=1), 0])
    _plt().close(fig)
    assert len(drawn_points) > 0 and len(segments) > 0
    for lo, hi in gaps:
        assert not any(lo < x < hi for x in drawn_points), (lo, hi)
        assert not any(a < hi and b > lo for a, b in segments), (lo, hi)  # no line across a gap

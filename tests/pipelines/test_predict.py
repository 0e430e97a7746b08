"""``pipeline predict``: a face-only fuse model applied to a fixture video gives the CSV and the three plots, and
its probabilities equal the model's on the same video's stored features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app

FACE_OPTIONS = {"detector_options": {"min_face_size": 40}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(dataset root, face store, results dir of a face-only logreg run) on a tiny fixture DEAP."""
    from extract.fixtures.deap import write_deap
    from fuse.config import FuseConfig
    from fuse.run import run_fuse
    from pipelines.jobs import ExtractConfig, run_extract

    tmp = tmp_path_factory.mktemp("predict")
    root = write_deap(tmp / "DEAP", subjects=2, trials=4, seconds=3.0, seed=1, frame_size=(320, 256), fps=25.0)
    result = run_extract(ExtractConfig(dataset="deap", root=root, out_dir=tmp / "cache", modality="face",
                                       detector="mtcnn", backbone="tiny-clip", fps=2.0, face_options=FACE_OPTIONS,
                                       gpu=(-1,), progress=False))
    store = result.store("face").path
    out = tmp / "results" / "face"
    run_fuse(FuseConfig(stores=(str(store),), strategy="face", classifier="logreg", target="valence",
                        protocol="loso", window_s=1.0, out=str(out)))
    return root, store, out


def test_predict_writes_csv_and_plots_matching_the_model(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from fuse.data import align, load_store
    from fuse.models import load_model

    root, store, results = trained
    video = root / "face_video" / "s01" / "s01_trial02.avi"
    out = tmp_path / "pred"
    res = CliRunner().invoke(app, ["predict", "--video", str(video), "--model", str(results), "--out", str(out),
                                   "--gpu", "-1"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "predictions.csv")
    model = load_model(results)
    prob_cols = [f"p_{c}" for c in model.classes]
    assert list(table.columns[:3]) == ["t_start_s", "t_end_s", "n_faces"] and set(prob_cols) <= set(table.columns)
    assert len(table) == 3  # 3 s of video in 1 s windows
    # one face per frame at 2 fps: n_faces counts faces (1), n_frames the frames pooled into a window (2)
    assert (table["n_faces"] == 1).all() and (table["n_frames"] == 2).all()
    np.testing.assert_allclose(table[prob_cols].sum(axis=1), 1.0, atol=1e-6)
    assert set(table["predicted"]) <= set(model.classes)
    for name in ("timeline.png", "distribution.png", "heatmap.png"):
        assert (out / name).stat().st_size > 5_000  # a real plot, not an empty canvas

    # the same windows built from the stored rows of that trial give the same probabilities (float16 storage)
    data = load_store(store)
    key = "deap/s01/trial02"
    sel = (data.rows["item"] == key).to_numpy()
    data.rows, data.embeddings = data.rows[sel].reset_index(drop=True), data.embeddings[sel]
    stored = align([data], window_s=1.0)
    expected = model.predict_proba(stored.features["face"])
    np.testing.assert_allclose(table[prob_cols].to_numpy(), expected, atol=2e-2)


def test_predict_refuses_a_model_that_needs_eeg(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import json

    root, _, results = trained
    fake = tmp_path / "eeg-model"
    (fake / "models" / "final").mkdir(parents=True)
    for name in ("model.json", "weights.safetensors"):
        data = (results / "models" / "final" / name).read_bytes()
        (fake / "models" / "final" / name).write_bytes(data)
    doc = json.loads((fake / "models" / "final" / "model.json").read_text())
    doc["roles"] = ["eeg"]
    (fake / "models" / "final" / "model.json").write_text(json.dumps(doc))
    video = root / "face_video" / "s01" / "s01_trial01.avi"
    res = CliRunner().invoke(app, ["predict", "--video", str(video), "--model", str(fake), "--gpu", "-1"])
    assert res.exit_code == 2 and "face-only model" in res.output


def test_predict_names_a_missing_video(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, _, results = trained
    res = CliRunner().invoke(app, ["predict", "--video", str(tmp_path / "nope.mp4"), "--model", str(results)])
    assert res.exit_code == 2 and "nope.mp4" in res.output and "not found" in res.output

"""``pipeline finetune`` end to end on a tiny crop store, and its model used by ``pipeline predict`` and as the
backbone ``finetuned:RESULTS_DIR`` of a new store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from extract.backbones import create_backbone, weights_available
from extract.base import EXTRACTORS
from extract.fixtures.video import write_video
from fuse.finetune.augment import to_pixels
from fuse.finetune.run import load_finetuned
from fuse.results import RESULT_FILES
from fuse.train import torch_threads
from pipelines.cli import app
from tests.fuse.finetune_fixtures import write_crop_store
from tests.pipelines.test_extract_face_extractor import FPS_SOURCE, FramesReader, item, marker_frames

TRAIN = ["--backbone", "tiny-resnet", "--protocol", "kfold", "--k", "2", "--epochs", "4", "--batch-size", "16",
         "--no-augment", "--lr-backbone", "3e-3", "--lr-head", "3e-3", "--device", "cpu", "--patience", "50"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(crop store, results dir, the command's output) of one `pipeline finetune` run."""
    tmp = tmp_path_factory.mktemp("finetune-cli")
    store = write_crop_store(tmp / "crops.zarr", subjects=2, trials=6, frames=4, size=32, strength=60.0)
    out = tmp / "results" / "ft"
    with torch_threads(1):
        res = CliRunner().invoke(app, ["finetune", "--store", str(store), *TRAIN, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return store, out, res.output


def test_finetune_cli_writes_a_results_dir_like_fuse(trained: tuple[Path, Path, str]) -> None:
    store, out, output = trained
    for name in RESULT_FILES:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "finetune" and metrics["classifier"] == "tiny-resnet"
    assert metrics["classes"] == ["vertical", "horizontal"] and metrics["protocol"] == "kfold"
    clip = metrics["per_clip"]
    assert clip["n_items"] == 12 and clip["model"]["uar"] >= 0.7 > clip["baseline"]["uar"] + 0.2  # the stripes are learnt
    assert f"clip-level UAR {clip['model']['uar']:.3f}" in output
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == metrics["rows"]["used"] == 12 * 4 - 6  # face rows only (one no-face row per item of s1)
    assert {"p_vertical", "p_horizontal", "logit_vertical", "fold", "y_true"} <= set(pred.columns)
    per_fold = pd.read_csv(out / "per_fold.csv")
    assert len(per_fold) == metrics["n_folds"] >= 2
    assert (out / "models" / "final" / "finetune.json").is_file()
    ckpts = {p.name for p in Path(f"{out}.checkpoints").iterdir()}
    assert "final" in ckpts and len(ckpts) == metrics["n_folds"] + 1
    shown = CliRunner().invoke(app, ["results", "show", str(out)])
    assert shown.exit_code == 0, shown.output
    again = CliRunner().invoke(app, ["finetune", "--store", str(store), *TRAIN, "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_bad_finetune_requests_exit_2_naming_the_problem(tmp_path: Path, trained: tuple[Path, Path, str]) -> None:
    _, out, _ = trained
    not_crops = CliRunner().invoke(app, ["finetune", "--store", str(tmp_path / "none.zarr"), "--out",
                                         str(tmp_path / "x")])
    assert not_crops.exit_code == 2 and "none.zarr" in not_crops.output
    bad_loss = CliRunner().invoke(app, ["finetune", "--store", str(out), "--loss", "hinge"])
    assert bad_loss.exit_code == 2 and "hinge" in bad_loss.output


@pytest.fixture(scope="module")
def marker_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("marker")
    return write_video(root / "faces.avi", marker_frames(2.0), size=(128, 96), fps=FPS_SOURCE)


def _model_probs(results: Path, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features, probabilities) of ``fuse.finetune``'s own net on uint8 crops."""
    net, _ = load_finetuned(results)
    with torch.no_grad():
        px = to_pixels(torch.from_numpy(crops), net.backbone.image_size, net.backbone.mean, net.backbone.std)
        feats = net.features(px)
        return feats.numpy(), torch.softmax(net.head(feats), 1).numpy()


def test_predict_scores_a_video_with_the_finetuned_model(trained: tuple[Path, Path, str], marker_video: Path,
                                                          tmp_path: Path) -> None:
    _, results, _ = trained
    out, crops_dir = tmp_path / "pred", tmp_path / "crops"
    res = CliRunner().invoke(app, ["predict", "--video", str(marker_video), "--model", str(results), "--detector",
                                   "tiny", "--fps", "5", "--window", "0", "--gpu", "-1", "--out", str(out),
                                   "--debug-crops", str(crops_dir)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "fine-tuned by `pipeline finetune`" in res.output and "measured here: clip-level UAR" in res.output
    table = pd.read_csv(out / "predictions.csv")
    probs = ["p_vertical", "p_horizontal"]
    scored = table.dropna(subset=probs)
    assert len(scored) == 8 and len(table) >= 8  # 10 sampled frames, 2 without the marker face
    files = sorted(crops_dir.glob("*.png"))
    assert len(files) == 8
    times = np.array([float(re.search(r"_t(\d+\.\d+)s_track", f.stem).group(1)) for f in files])
    images = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
    _, expected = _model_probs(results, images)
    for _, row in scored.iterrows():
        j = int(np.argmin(np.abs(times - row.t_start_s)))
        np.testing.assert_allclose(row[probs].to_numpy(float), expected[j], atol=1e-5)
    assert set(scored["predicted"]) <= {"vertical", "horizontal"}


def test_the_finetuned_model_is_a_backbone_for_a_new_store(trained: tuple[Path, Path, str],
                                                           marker_video: Path) -> None:
    store, results, _ = trained
    name = f"finetuned:{results}"
    assert weights_available(name) and not weights_available(f"finetuned:{results.parent}")
    ex = EXTRACTORS.create("face", detector="tiny", backbone=name, fps=5.0, dtype="float32")
    rows = ex.extract(FramesReader(marker_video.parent), item("t/s01/01", marker_video))
    found = rows.quality["face_found"]
    assert rows.embeddings.shape == (10, 512) and found.sum() == 8  # tiny-resnet: 512-d pooled features
    crops = np.stack([r.crop for r in ex.pipeline.process_video(marker_video) if r.face_found])
    feats, _ = _model_probs(results, crops)
    np.testing.assert_allclose(rows.embeddings[found], feats, atol=1e-4)
    spec = ex.manifest_parts()["model"]["backbone"]
    assert spec["family"] == "finetuned" and spec["model_id"] == str((results / "models" / "final").resolve())
    assert len(spec["weights_sha256"]) == 64 and spec["classes"] == ["vertical", "horizontal"]
    from fuse.finetune.data import load_crops

    data = load_crops(store)
    assert spec["trained_on"] == data.fingerprint
    backbone = create_backbone(name)
    _, want = _model_probs(results, data.crops[:6])
    np.testing.assert_allclose(backbone.predict_proba(data.crops[:6]), want, atol=1e-5)


@pytest.mark.parametrize("bug", [ValueError("shapes (3,) and (4,) not aligned"), KeyError("layer4.0.conv1.weight")])
def test_a_bug_in_finetune_keeps_its_traceback(trained: tuple[Path, Path, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    """Only bad input (FuseInputError, a missing store or weights, an unknown name) is a one-line exit 2."""
    def broken(*args: object, **kwargs: object) -> None:
        raise bug

    monkeypatch.setattr("fuse.finetune.run.make_splits", broken)
    store, _, _ = trained
    res = CliRunner().invoke(app, ["finetune", "--store", str(store), *TRAIN, "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and res.exception is bug

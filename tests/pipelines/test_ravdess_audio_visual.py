"""RAVDESS face + voice end to end through the CLI: `pipeline demo-data ravdess --audio --pairs`, `pipeline
extract --modality all` (MTCNN + tiny-clip faces, log-mel audio), then `pipeline fuse` face, audio, late and early
under leave-one-actor-out.

The fixture plants complementary confusions: the face shows one style per pair of emotions and the voice one pitch
per pair shifted by one, so each modality alone is right on about half the clips (8 classes, chance 1/8) and only
both together name the emotion. 4 actors x 8 clips of 1 s at 160x120; faces sampled at 1 fps.

Seen (fold-mean accuracy; seeds 0-3 of the fixture, smallest face 40 px): face 0.50, audio 0.46-0.71, late
0.63-0.90, early 0.70-0.93, majority baseline 0.09-0.17; late and early beat the better single modality by
0.13-0.43. A clip whose sampled frame has no face found is left out of every run (--require-all).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from extract.datasets.ravdess import parse_ravdess_name
from pipelines.cli import app

runner = CliRunner()


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"pipeline {' '.join(args)} failed:\n{result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ravdess_av")
    root, cache = tmp / "RAVDESS", tmp / "cache"
    cli("demo-data", "ravdess", "--out", str(root), "--subjects", "4", "--trials", "8", "--frame-size", "160x120",
        "--audio", "--pairs")
    cli("extract", "--dataset", "ravdess", "--root", str(root), "--modality", "all", "--detector", "mtcnn",
        "--backbone", "tiny-clip", "--fps", "1", "--gpu", "-1", "--out", str(cache), "--no-progress",
        "--set", "face_options.detector_options.min_face_size=40")
    out = {}
    for strategy in ("face", "audio", "late", "early"):
        out[strategy] = tmp / "results" / strategy
        cli("fuse", "--cache", str(cache / "ravdess"), "--strategy", strategy, "--target", "emotion",
            "--protocol", "loso", "--granularity", "trial", "--require-all", "--no-save-final",
            "--out", str(out[strategy]))
    return out


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_extract_all_writes_face_and_audio_stores_of_the_same_items(runs: dict[str, Path]) -> None:
    stores = json.loads((runs["late"] / "stores.json").read_text())
    kinds = {role: s["kind"] for role, s in stores.items()}
    assert kinds == {"face": "face", "audio": "audio"}
    assert stores["audio"]["manifest"]["preprocessing"]["modality"] == "audio"
    m = metrics(runs["late"])
    assert m["modalities"] == ["face", "audio"] and m["n_items"] == m["rows"]["used"] > 24
    assert metrics(runs["face"])["modalities"] == ["face"] and metrics(runs["audio"])["modalities"] == ["audio"]


def test_late_and_early_beat_each_modality(runs: dict[str, Path]) -> None:
    acc = {name: metrics(run)["fold_mean"]["accuracy"] for name, run in runs.items()}
    chance = metrics(runs["late"])["baseline"]["fold_mean"]["accuracy"]
    # each modality alone is learnt but capped near 1/2 by its pairs (above it only where clips drop out)
    for single in ("face", "audio"):
        assert chance + 0.2 < acc[single] < 0.75, acc
    print(f"fold-mean accuracy: {acc}, majority baseline {chance:.3f}")
    best = max(acc["face"], acc["audio"])
    assert acc["late"] > best + 0.08, acc
    assert acc["early"] > best + 0.15, acc
    n = {name: metrics(run)["rows"]["used"] for name, run in runs.items()}
    assert len(set(n.values())) == 1 and n["late"] >= 24, n  # --require-all: every run scores the same clips


def test_actor_folds_are_leak_free(runs: dict[str, Path]) -> None:
    for run in runs.values():
        splits = json.loads((run / "splits.json").read_text())["folds"]
        assert len(splits) == 4  # one fold per actor
        for split in splits:
            actors = [{parse_ravdess_name(item.split("/")[1]).actor for item in split[side]}
                      for side in ("train_items", "test_items")]
            assert len(actors[1]) == 1 and not actors[0] & actors[1], split["name"]
        predictions = pd.read_csv(run / "predictions.csv")
        assert not predictions.duplicated(["item", "row"]).any()  # each clip tested once
        tested = predictions.groupby("fold")["item"].apply(lambda s: {parse_ravdess_name(i.split("/")[1]).actor
                                                                      for i in s})
        assert all(len(a) == 1 for a in tested)
        assert np.all(predictions["subject"].astype(str).str.len() > 0)

"""Temporal heads over clip frames against per-frame logreg with log-probabilities averaged per clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuse.config import FuseConfig, TrainConfig, TransformerConfig
from fuse.run import run_fuse
from fuse.synthetic import planted_clips
from fuse.temporal import clip_sequences

CLASSES = ("positive", "negative")


def test_clip_sequences_keep_frame_order_and_subsample() -> None:
    clips = clip_sequences(planted_clips(CLASSES, n_clips=6, n_frames=20), max_frames=16)
    assert clips.index.shape == (6, 16) and (clips.index >= 0).all()
    assert (np.diff(clips.index, axis=1) > 0).all()
    assert list(clips.rows["n_frames"]) == [20] * 6


@pytest.fixture(scope="module")
def ordered() -> object:
    # the class lives only in how frames move over the clip (mean zero): averaging frames cannot see it
    return planted_clips(CLASSES, n_clips=60, n_frames=16, dim=6, signal=0.0, order_signal=3.0, seed=4)


def _run(head: str, clips: object, out: Path | None = None) -> dict:
    cfg = FuseConfig(strategy="face", temporal=head, target="emotion", protocol="dfew", save_final=False,
                     out=str(out) if out else "", train=TrainConfig(epochs=30, patience=30, lr=1e-2),
                     transformer=TransformerConfig(d_model=16, heads=2))
    return run_fuse(cfg, [clips], write=out is not None).metrics


@pytest.mark.slow
def test_gru_uses_frame_order_that_frame_averaging_misses(ordered, tmp_path: Path) -> None:
    frames = _run("frames", ordered)
    gru = _run("gru", ordered, tmp_path / "gru")
    assert frames["granularity"] == "clip" and frames["n_items"] == 60
    assert frames["pooled"]["accuracy"] < 0.7
    assert gru["pooled"]["accuracy"] > 0.85 > frames["pooled"]["accuracy"]
    written = json.loads((tmp_path / "gru" / "metrics.json").read_text())
    assert written["strategy"] == "temporal-gru" and written["n_folds"] == 5


def test_temporal_transformer_and_frames_learn_a_mean_signal() -> None:
    clips = planted_clips(CLASSES, n_clips=40, n_frames=8, dim=6, signal=0.8, seed=5)
    assert _run("frames", clips)["pooled"]["accuracy"] > 0.85
    assert _run("transformer", clips)["pooled"]["accuracy"] > 0.75

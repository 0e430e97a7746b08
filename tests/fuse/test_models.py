"""Saved models (safetensors + JSON, no pickle) reload to the same probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuse.config import FuseConfig, LateConfig, TrainConfig, TransformerConfig
from fuse.data import ModalityData
from fuse.models import load_model
from fuse.results import RESULT_FILES
from fuse.run import make_inputs, run_fuse

FAST = TrainConfig(epochs=6, patience=2, batch_size=64)


@pytest.mark.parametrize("cfg", [
    FuseConfig(strategy="face", pca_components=8),
    FuseConfig(strategy="early", classifier="mlp", train=FAST),
    FuseConfig(strategy="late", late=LateConfig(combine="stack", inner_folds=3)),
    FuseConfig(strategy="transformer", train=FAST, transformer=TransformerConfig(d_model=16, heads=2, context=3)),
], ids=["face-logreg-pca", "early-mlp", "late-stack", "transformer"])
def test_saved_model_reloads_to_the_same_probabilities(small: tuple[ModalityData, ModalityData], tmp_path: Path,
                                                       cfg: FuseConfig) -> None:
    cfg = FuseConfig(**{**cfg.__dict__, "out": str(tmp_path / "run")})
    result = run_fuse(cfg, small)
    for name in RESULT_FILES:
        assert (result.out / name).is_file(), name
    model_files = sorted(p.name for p in (result.out / "models" / "final").iterdir())
    assert model_files == ["model.json", "weights.safetensors"]
    loaded = load_model(result.out)
    table = result.table
    idx = np.flatnonzero(table.available("eeg") & table.available("face"))
    inputs = make_inputs(table, idx, result.config)
    expected = result.final_model.strategy.predict_proba(inputs)
    if cfg.strategy == "face":
        got = loaded.predict_proba(table.features["face"][idx])
        info = json.loads((result.out / "models" / "final" / "model.json").read_text())
        assert info["inputs"]["face"]["dim"] == 32 and info["classes"] == ["low", "high"]
        assert "q_face_found" in info["inputs"]["face"]["pooling"]
    elif cfg.strategy == "transformer":
        pools, index = inputs.seq_pools, inputs.seq_index
        seqs = {r: np.where((index >= 0)[..., None], pools[r][np.maximum(index, 0)], np.nan) for r in ("eeg", "face")}
        got = loaded.predict_proba(seqs)
    else:
        got = loaded.predict_proba({r: table.features[r][idx] for r in ("eeg", "face")})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if cfg.strategy == "face":
        assert set(loaded.predict(table.features["face"][idx[:5]])) <= {"low", "high"}


def test_no_pickle_in_results(small: tuple[ModalityData, ModalityData], tmp_path: Path) -> None:
    result = run_fuse(FuseConfig(strategy="early", out=str(tmp_path / "r")), small)
    for path in result.out.rglob("*"):
        assert path.suffix not in {".pkl", ".pickle", ".joblib", ".pt", ".pth"}, path

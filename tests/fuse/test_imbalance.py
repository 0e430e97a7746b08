"""fuse's torch heads (mlp, transformer) take focal loss (gamma) and the weighted sampler from the config / CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import fuse.nets
import fuse.train
from fuse.config import FuseConfig, TrainConfig, TransformerConfig
from fuse.data import ModalityData
from fuse.run import run_fuse
from pipelines.cli import app

HEADS = {
    "mlp": dict(strategy="early", classifier="mlp"),
    "transformer": dict(strategy="transformer", transformer=TransformerConfig(d_model=16, heads=2, context=3)),
}


def _probs(small: tuple[ModalityData, ModalityData], head: str, **train: Any) -> np.ndarray:
    cfg = FuseConfig(protocol="kfold", k=2, save_final=False, **HEADS[head],
                     train=TrainConfig(epochs=3, patience=5, batch_size=64, **train))
    result = run_fuse(cfg, small, write=False)
    return result.predictions.filter(like="p_").to_numpy()


@pytest.mark.parametrize("head", list(HEADS))
def test_focal_gamma_reaches_the_head_loss(small: tuple[ModalityData, ModalityData], head: str) -> None:
    ce = _probs(small, head, loss="ce")
    np.testing.assert_allclose(_probs(small, head, loss="focal", focal_gamma=0.0), ce, atol=1e-5)  # gamma 0 = CE
    focal = _probs(small, head, loss="focal", focal_gamma=3.0)
    assert np.abs(focal - ce).max() > 1e-3  # the head was trained with another loss


def test_weighted_sampler_lifts_the_minority_class() -> None:
    """90/10 classes, no class weights: shuffled batches learn the majority; the weighted sampler draws both."""
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(np.int64)
    x = torch.tensor(rng.normal(size=(2000, 2)) + 1.2 * y[:, None], dtype=torch.float32)
    groups = np.arange(2000) // 10
    recall = {}
    for sampler in ("shuffle", "weighted"):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        cfg = TrainConfig(epochs=8, batch_size=64, lr=0.05, patience=50, class_weighted=False, sampler=sampler)
        fuse.train.fit(model, lambda idx: x[torch.as_tensor(idx)], y, groups, 2, cfg, seed=0)
        pred = model(x).argmax(1).numpy()
        recall[sampler] = float((pred[y == 1] == 1).mean())
    assert recall["shuffle"] < 0.4 and recall["weighted"] > recall["shuffle"] + 0.3, recall


def test_cli_sets_focal_and_sampler_for_the_transformer(store_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, list[Any]] = {"loss": [], "order": []}
    real_loss, real_order = fuse.nets.classification_loss, fuse.train.balanced_order

    def spy_loss(*args: Any, **kw: Any) -> torch.Tensor:
        calls["loss"].append((kw.get("kind"), kw.get("gamma")))
        return real_loss(*args, **kw)

    def spy_order(*args: Any) -> np.ndarray:
        calls["order"].append(len(args[1]))
        return real_order(*args)

    monkeypatch.setattr(fuse.nets, "classification_loss", spy_loss)
    monkeypatch.setattr(fuse.train, "balanced_order", spy_order)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "fuse", "--cache", str(store_dir), "--strategy", "transformer", "--protocol", "kfold", "--k", "2",
        "--no-save-final", "--out", str(out), "--set", "train.epochs=2", "--set", "transformer.d_model=16",
        "--set", "transformer.heads=2", "--set", "train.loss=focal", "--set", "train.focal_gamma=3.5",
        "--set", "train.sampler=weighted"])
    assert result.exit_code == 0, result.output
    assert calls["loss"] and set(calls["loss"]) == {("focal", 3.5)}
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(calls["order"]) == metrics["n_folds"] * 2  # one weighted epoch order per fold and epoch
    train = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert (train["loss"], train["focal_gamma"], train["sampler"]) == ("focal", 3.5, "weighted")

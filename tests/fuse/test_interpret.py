"""Interpretability outputs: ECE against a hand computation, gates and attention of the transformer, tracking."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fuse.config import FuseConfig, TrainConfig, TransformerConfig
from fuse.interpret import gate_tables, reliability, subject_spread
from fuse.nets import CrossModalTransformer, dann_lambda
from fuse.run import run_fuse


def test_ece_matches_a_hand_computation() -> None:
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
    y = np.array([0, 1, 1, 1])
    bins, ece = reliability(proba, y, n_bins=10)
    # bins: 0.9 -> [0.9,1) acc 1; 0.8 -> acc 0; 0.7 -> acc 1; 0.55 -> acc 0
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(0 - 0.55)) / 4
    assert math.isclose(ece, expected)
    assert bins["n"].sum() == 4 and bins.loc[9, "n"] == 1 and bins.loc[5, "n"] == 1
    _, perfect = reliability(np.eye(3)[[0, 1, 2]], np.array([0, 1, 2]))
    assert perfect == 0.0


def test_dann_schedule_ramps_from_zero_to_lambda() -> None:
    assert dann_lambda(0.0, 0.5) == 0.0
    assert 0.49 < dann_lambda(1.0, 0.5) <= 0.5
    assert dann_lambda(0.1, 1.0) < dann_lambda(0.3, 1.0) < dann_lambda(0.6, 1.0)


def test_reference_design_options_change_the_network_and_keep_attention() -> None:
    torch.manual_seed(0)
    net = CrossModalTransformer({"eeg": 5, "face": 7}, 3, d_model=8, heads=2, feature_gate=True, modality_layers=2, head="mlp",
                                n_subjects=3, adversary_lambda=0.2, adversary_schedule="dann")
    plain = CrossModalTransformer({"eeg": 5, "face": 7}, 3, d_model=8, heads=2)
    assert sum(p.numel() for p in net.parameters()) > sum(p.numel() for p in plain.parameters())
    assert isinstance(net.head, torch.nn.Sequential) and isinstance(net.head[1], torch.nn.GELU)
    assert len(net.stacks["eeg"].layers) == 2
    assert net.current_lambda == 0.0
    net.set_progress(1.0)
    assert 0.19 < net.current_lambda <= 0.2
    pad = torch.zeros(2, 4, dtype=torch.bool)
    pad[1, 3] = True
    batch = {"eeg": torch.randn(2, 4, 5), "face": torch.randn(2, 4, 7), "eeg_pad": pad, "face_pad": pad.clone()}
    net.eval()
    net.keep_attention = True
    net(batch)
    maps = net.last_attention["eeg_to_face"]
    assert maps.shape == (2, 4, 4)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 4), atol=1e-5)  # each query's weights sum to one
    assert float(maps[1, :, 3].abs().max()) == 0.0  # a padded key gets no attention
    assert net.feature_gates["eeg"].last.shape == (8,)
    assert torch.allclose(net.last_gate.sum(-1), torch.ones(2))


def test_gate_tables_summarise_per_subject_and_class() -> None:
    preds = pd.DataFrame({"item": ["a", "a", "b", "c"], "subject": ["s1", "s1", "s2", "s2"], "fold": "f", "row": 0,
                          "y_true": [0, 0, 1, 1], "y_pred": [0, 1, 1, 1], "gate_eeg": [0.2, 0.4, 0.9, 0.7],
                          "gate_face": [0.8, 0.6, 0.1, 0.3]})
    tables = gate_tables(preds, ["low", "high"])
    subj = tables["subject"].set_index("subject")
    assert math.isclose(subj.loc["s1", "gate_eeg_mean"], 0.3) and math.isclose(subj.loc["s2", "gate_eeg_std"], 0.1)
    assert tables["class"].set_index("class").loc["high", "n"] == 2
    flipped = gate_tables(preds.assign(y_true=[1, 1, 0, 0]), ["low", "high"])["class"]
    assert list(flipped["class"]) == ["low", "high"]  # the classes' order, not alphabetical
    assert list(tables["sample"]["class"]) == ["low", "low", "high", "high"]
    spread = subject_spread(pd.DataFrame({"accuracy": [0.5, 0.7], "baseline_accuracy": [0.6, 0.6]}))
    assert math.isclose(spread["accuracy_mean"], 0.6) and math.isclose(spread["accuracy_std"], 0.1)


def test_transformer_run_writes_gates_attention_and_calibration(small, tmp_path: Path) -> None:
    cfg = FuseConfig(strategy="transformer", protocol="kfold", k=2, out=str(tmp_path / "run"), save_final=False,
                     granularity="trial", attention_items=("deap/s02/trial03",), train=TrainConfig(epochs=2),
                     transformer=TransformerConfig(d_model=16, heads=2, feature_gate=True, head="mlp"))
    result = run_fuse(cfg, small)
    out = result.out
    for name in ("calibration.csv", "reliability.png", "subject_variability.png", "gates.png",
                 "gates_per_sample.csv", "gates_per_subject.csv", "gates_per_class.csv"):
        assert (out / name).is_file(), name
    assert [p.name for p in (out / "attention").iterdir()] == ["deap_s02_trial03.png"]
    sample = pd.read_csv(out / "gates_per_sample.csv")
    assert len(sample) == len(result.predictions)
    np.testing.assert_allclose(sample["gate_eeg"] + sample["gate_face"], 1.0, atol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    bins = pd.read_csv(out / "calibration.csv")
    gap = (bins["n"] / bins["n"].sum() * (bins["accuracy"] - bins["confidence"]).abs()).sum()
    assert math.isclose(metrics["calibration"]["ece"], gap, rel_tol=1e-4)
    per_subject = pd.read_csv(out / "per_subject.csv")
    assert math.isclose(metrics["across_subjects"]["accuracy_std"], per_subject["accuracy"].std(ddof=0),
                        rel_tol=1e-4)
    assert "single_class" in pd.read_csv(out / "per_fold.csv")


def test_single_class_folds_are_flagged(small, tmp_path: Path) -> None:
    cfg = FuseConfig(strategy="eeg", protocol="kfold", k=6, granularity="trial", save_final=False)
    result = run_fuse(cfg, small, write=False)
    folds = result.per_fold
    single = folds.loc[folds["n_test_classes"] < 2, "fold"].tolist()
    assert single, "with one trial per test fold every fold has a single class"
    assert result.metrics["single_class_folds"] == folds.loc[folds["single_class"], "fold"].tolist()
    assert set(single) <= set(result.metrics["single_class_folds"])


def test_mlflow_run_is_read_back_by_mlflows_client(small, tmp_path: Path) -> None:
    import mlflow  # a test dependency (setup.cfg [test]): make test installs it, so this never skips
    uri = (tmp_path / "mlruns").as_uri()
    cfg = FuseConfig(strategy="early", protocol="loso", out=str(tmp_path / "run"), save_final=False, track="mlflow",
                     track_uri=uri)
    result = run_fuse(cfg, small)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mmer-pipeline")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["strategy"] == "early" and run.data.params["protocol"] == "loso"
    assert math.isclose(run.data.metrics["fold_mean.accuracy"], result.metrics["fold_mean"]["accuracy"])
    assert run.data.tags["store.eeg.fingerprint"] == result.metrics["stores"]["eeg"]["fingerprint"]
    history = client.get_metric_history(run.info.run_id, "fold.accuracy")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        result.per_fold["accuracy"].tolist())
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion.png", "reliability.png", "metrics.json"} <= names

"""Three modalities (EEG, face and peripheral, DEAP-shaped planted data): late and early fusion of all three beat
each one alone; single-modality runs record the one modality they read; the transformer has one gate per modality
and cross-attention maps of every modality's queries, written as tables and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fuse.config import FuseConfig, TrainConfig, TransformerConfig
from fuse.data import ModalityData
from fuse.interpret import attention_panels
from fuse.results import used_modalities
from fuse.run import run_fuse
from fuse.synthetic import Planted, planted_modalities, planted_window_modality

THREE = ("eeg", "face", "peripheral")


@pytest.fixture(scope="module")
def three() -> list[ModalityData]:
    eeg, face = planted_modalities(Planted(n_subjects=5, n_trials=8, n_windows=6, eeg_signal=0.22, face_signal=0.09,
                                           seed=11))
    return [eeg, face, planted_window_modality(eeg, "peripheral", dim=8, signal=0.22, seed=11)]


@pytest.fixture(scope="module")
def accuracies(three: list[ModalityData]) -> dict[str, float]:
    out = {}
    for strategy in (*THREE, "late", "early"):
        res = run_fuse(FuseConfig(strategy=strategy, protocol="loso", save_final=False, require_all=True), three,
                       write=False)
        assert res.metrics["modalities"] == ([strategy] if strategy in THREE else list(THREE))
        out[strategy] = res.metrics["fold_mean"]["accuracy"]
        out["chance"] = res.metrics["baseline"]["fold_mean"]["accuracy"]
    return out


def test_three_modality_late_and_early_beat_each_modality(accuracies: dict[str, float]) -> None:
    # seen: eeg 0.762, face 0.733, peripheral 0.746, late 0.829, early 0.863, majority baseline 0.625
    best = max(accuracies[m] for m in THREE)
    for m in THREE:
        assert accuracies[m] > accuracies["chance"] + 0.08, accuracies
    assert accuracies["late"] > best + 0.04, accuracies
    assert accuracies["early"] > best + 0.04, accuracies


def test_late_weights_one_per_modality_and_modalities_pick_a_subset(three: list[ModalityData]) -> None:
    from fuse.config import LateConfig

    with pytest.raises(ValueError, match="one weight per modality"):
        run_fuse(FuseConfig(strategy="late", protocol="loso", save_final=False, late=LateConfig(weights=(1, 1))),
                 three, write=False)
    pair = run_fuse(FuseConfig(strategy="late", protocol="loso", save_final=False, modalities=("eeg", "peripheral"),
                               late=LateConfig(weights=(1, 1))), three, write=False)
    assert pair.metrics["modalities"] == ["eeg", "peripheral"] and set(pair.table.roles) == {"eeg", "peripheral"}
    assert used_modalities({"strategy": "audio"}) == ["audio"]  # runs without a recorded list: implied by strategy


def test_transformer_gates_and_attention_for_three_modalities(three: list[ModalityData], tmp_path: Path) -> None:
    cfg = FuseConfig(strategy="transformer", protocol="kfold", k=2, out=str(tmp_path / "run"), save_final=False,
                     granularity="trial", attention_items=("deap/s02/trial03",), train=TrainConfig(epochs=2),
                     transformer=TransformerConfig(d_model=16, heads=2))
    small = [ModalityData(kind=m.kind, dataset=m.dataset, embeddings=m.embeddings[keep], rows=m.rows[keep],
                          manifest=m.manifest, fingerprint=m.fingerprint, path=m.path)
             for m in three for keep in [m.rows["subject"].isin(["s01", "s02"]).to_numpy()]]
    result = run_fuse(cfg, small)
    out = result.out
    sample = pd.read_csv(out / "gates_per_sample.csv")
    gates = [f"gate_{m}" for m in THREE]
    assert [c for c in sample.columns if c.startswith("gate_")] == gates
    np.testing.assert_allclose(sample[gates].sum(axis=1), 1.0, atol=1e-5)
    assert (sample[gates].to_numpy() > 0).all()
    subject = pd.read_csv(out / "gates_per_subject.csv")
    assert {f"{g}_mean" for g in gates} <= set(subject.columns)
    assert [p.name for p in (out / "attention").iterdir()] == ["deap_s02_trial03.png"]
    assert (out / "gates.png").stat().st_size > 5_000
    assert json.loads((out / "metrics.json").read_text())["modalities"] == list(THREE)


def test_attention_panels_cut_padding_per_modality() -> None:
    pads = {"eeg_pad": np.array([False, False, True]), "face_pad": np.array([False, True, True]),
            "audio_pad": np.array([False, False, False])}
    maps = {"eeg_to_face+audio": np.arange(18.0).reshape(3, 6), "face_to_eeg+audio": np.ones((3, 6)),
            "audio_to_eeg+face": np.ones((3, 6)), **pads}
    panels = dict(attention_panels(maps))
    eeg = panels["eeg queries -> face + audio keys"]
    assert eeg.shape == (2, 4)  # 2 valid EEG queries; keys: 1 valid face + 3 audio positions
    np.testing.assert_array_equal(eeg[0], [0.0, 3.0, 4.0, 5.0])
    assert panels["face queries -> eeg + audio keys"].shape == (1, 5)
    assert panels["audio queries -> eeg + face keys"].shape == (3, 3)

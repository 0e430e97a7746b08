"""On planted-signal data every strategy beats the majority baseline; fusing complementary modalities helps;
the same seed gives the same metrics; normalisation sees training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from fuse.classifiers import Preprocessor
from fuse.config import FuseConfig, LateConfig, LogRegConfig, TrainConfig, TransformerConfig
from fuse.data import ModalityData
from fuse.run import run_fuse

FAST = TrainConfig(epochs=12, patience=3, batch_size=64)


def acc(result) -> tuple[float, float]:  # noqa: ANN001 - RunResult
    m = result.metrics
    return m["fold_mean"]["accuracy"], m["baseline"]["fold_mean"]["accuracy"]


@pytest.fixture(scope="module")
def loso_logreg(planted: tuple[ModalityData, ModalityData]) -> dict[str, tuple[float, float]]:
    return {s: acc(run_fuse(FuseConfig(strategy=s, protocol="loso", save_final=False), planted, write=False))
            for s in ("eeg", "face", "early", "late")}


def test_each_strategy_beats_the_majority_baseline(loso_logreg: dict[str, tuple[float, float]]) -> None:
    for strategy, (model, baseline) in loso_logreg.items():
        assert model > baseline + 0.12, f"{strategy}: {model:.3f} vs baseline {baseline:.3f}"


def test_fusion_beats_both_single_modalities(loso_logreg: dict[str, tuple[float, float]]) -> None:
    best_single = max(loso_logreg["eeg"][0], loso_logreg["face"][0])
    assert loso_logreg["late"][0] > best_single + 0.03
    assert loso_logreg["early"][0] > best_single + 0.02


def test_same_seed_same_metrics(small: tuple[ModalityData, ModalityData]) -> None:
    cfg = FuseConfig(strategy="late", classifier="mlp", protocol="kfold", k=3, seed=7, train=FAST, save_final=False)
    a = run_fuse(cfg, small, write=False)
    b = run_fuse(cfg, small, write=False)
    assert a.metrics["fold_mean"] == b.metrics["fold_mean"]
    np.testing.assert_array_equal(a.predictions.filter(like="p_").to_numpy(), b.predictions.filter(like="p_").to_numpy())


def test_parallel_folds_give_the_sequential_results(planted: tuple[ModalityData, ModalityData]) -> None:
    runs = [run_fuse(FuseConfig(strategy="late", jobs=jobs, save_final=False), planted, write=False) for jobs in (1, 3)]
    np.testing.assert_array_equal(runs[0].predictions.filter(like="p_").to_numpy(),
                                  runs[1].predictions.filter(like="p_").to_numpy())


@pytest.mark.parametrize("combine", ["tuned", "stack"])
def test_late_tuned_and_stacked(planted: tuple[ModalityData, ModalityData], combine: str) -> None:
    result = run_fuse(FuseConfig(strategy="late", late=LateConfig(combine=combine), save_final=False), planted,
                      write=False)
    model, baseline = acc(result)
    assert model > baseline + 0.12


def test_torch_heads_learn(small: tuple[ModalityData, ModalityData]) -> None:
    for cfg in (FuseConfig(strategy="early", classifier="mlp", train=FAST, save_final=False),
                FuseConfig(strategy="transformer", train=FAST, granularity="trial", save_final=False,
                           transformer=TransformerConfig(d_model=16, heads=2, adversary_lambda=0.1)),
                FuseConfig(strategy="transformer", train=FAST, save_final=False,
                           transformer=TransformerConfig(d_model=16, heads=2, context=4))):
        model, baseline = acc(run_fuse(cfg, small, write=False))
        assert model > baseline + 0.1, (cfg.strategy, cfg.granularity, model, baseline)


def test_pca_trial_granularity_and_item_scores(planted: tuple[ModalityData, ModalityData]) -> None:
    trial = run_fuse(FuseConfig(strategy="early", granularity="trial", pca_components=4, save_final=False), planted,
                     write=False)
    assert len(trial.predictions) == 48 and "per_item" not in trial.metrics
    window = run_fuse(FuseConfig(strategy="face", save_final=False), planted, write=False)
    assert window.metrics["per_item"]["n_items"] == 48
    assert window.metrics["per_item"]["model"]["accuracy"] >= window.metrics["pooled"]["accuracy"]


def test_missing_modality_policy(planted: tuple[ModalityData, ModalityData]) -> None:
    eeg, face = planted
    keep = ~face.rows["item"].str.endswith("trial01").to_numpy()  # trial 1 of every subject has no video
    no_video = ModalityData("face", face.dataset, face.embeddings[keep], face.rows[keep].reset_index(drop=True))
    early = run_fuse(FuseConfig(strategy="early", save_final=False), [eeg, no_video], write=False)
    late = run_fuse(FuseConfig(strategy="late", save_final=False), [eeg, no_video], write=False)
    assert early.metrics["rows"]["dropped_missing_face"] == 6 * 10
    assert late.metrics["rows"]["used"] == 480 and late.metrics["rows"]["late_rows_without_face"] == 60
    both = run_fuse(FuseConfig(strategy="eeg", require_both=True, save_final=False), [eeg, no_video], write=False)
    assert both.metrics["rows"]["used"] == early.metrics["rows"]["used"]


def test_preprocessing_is_fitted_on_training_rows_only() -> None:
    train = np.random.default_rng(0).normal(5.0, 2.0, size=(200, 3))
    prep = Preprocessor(n_components=2).fit(train)
    test = np.full((4, 3), 1000.0)
    np.testing.assert_allclose(prep.mean_, train.mean(axis=0))
    assert prep.transform(test).shape == (4, 2)  # test rows change nothing
    np.testing.assert_allclose(prep.mean_, train.mean(axis=0))


def test_face_only_dfew_folds_with_emotion_classes(planted: tuple[ModalityData, ModalityData]) -> None:
    """A DFEW-like face store: class ids, the official fold column, per-frame rows or per-clip means."""
    _, face = planted
    rows = face.rows.copy()
    item_no = rows["item"].factorize()[0]
    rows["fold"] = item_no % 5 + 1
    rows["label_emotion"] = np.where(rows["label_valence"] >= 5, 0.0, 3.0)  # happy / angry
    clips = ModalityData("face", "dfew", face.embeddings, rows.drop(columns=["label_valence", "label_arousal"]))
    frames = run_fuse(FuseConfig(strategy="face", target="emotion", protocol="dfew", window_s=0, save_final=False,
                                 logreg=LogRegConfig(class_weight="balanced")), [clips], write=False)
    assert frames.metrics["classes"] == ["happy", "angry"] and frames.metrics["n_folds"] == 5
    assert frames.metrics["rows"]["dropped_missing_face"] == int((~clips.valid()).sum())
    per_clip = run_fuse(FuseConfig(strategy="face", target="emotion", protocol="dfew", granularity="trial",
                                   save_final=False), [clips], write=False)
    assert len(per_clip.predictions) == 48
    assert frames.metrics["fold_mean"]["uar"] > frames.metrics["baseline"]["fold_mean"]["uar"] + 0.05
    # a clip's score = the mean of its frames' probabilities; per-clip features do as well
    assert frames.metrics["per_item"]["model"]["uar"] > frames.metrics["per_item"]["baseline"]["uar"] + 0.2
    assert per_clip.metrics["fold_mean"]["uar"] > per_clip.metrics["baseline"]["fold_mean"]["uar"] + 0.2

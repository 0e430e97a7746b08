"""Speech-model embeddings: the tiny twin against transformers' own feature extractor + model, a saved folder
(``local:``) and a hub id from the Hugging Face cache offline, a one-line error naming a missing model, and speech
rows on the shared windows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from extract.audio.extractor import AudioConfig, AudioFeatureExtractor, audio_rows
from extract.audio.speech import (
    TINY,
    SpeechModelError,
    embed,
    load_speech_model,
    model_frame_hop,
    resolve_speech_model,
    tiny_speech_model,
)

EMBED_ATOL = 1e-5  # float32, same samples: our normalise + forward vs transformers' feature extractor + model


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, the hub offline."""
    hub = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MMER_CACHE", str(tmp_path / "mmer"))
    return hub


def _speech(seconds: float = 1.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def _save_twin(folder: Path, family: str = "hubert") -> Path:
    from transformers import Wav2Vec2FeatureExtractor

    tiny_speech_model(family).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def test_tiny_twin_equals_transformers_feature_extractor_and_model() -> None:
    from transformers import Wav2Vec2FeatureExtractor

    model = load_speech_model(TINY)
    x = _speech()
    ours = embed(model, x, 16000)
    inputs = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True)(x, sampling_rate=16000,
                                                                               return_tensors="pt")
    with torch.inference_mode():
        ref = model(inputs["input_values"]).last_hidden_state[0].numpy()
    assert ours.shape == ref.shape == (199, 32)  # 1 s at 16 kHz, one vector per 5 * 4 * 4 = 80 samples
    np.testing.assert_allclose(ours, ref, atol=EMBED_ATOL)
    assert model_frame_hop(model, 16000) == pytest.approx(80 / 16000)
    np.testing.assert_array_equal(embed(load_speech_model(TINY), x, 16000), ours)  # same twin every time


def test_local_folder_and_hub_cache_offline(tmp_path: Path, isolated_hub: Path) -> None:
    folder = _save_twin(tmp_path / "my-hubert")
    x = _speech(seed=1)
    local = load_speech_model(f"local:{folder}")
    assert local.config.model_type == "hubert"
    np.testing.assert_allclose(embed(local, x, 16000), embed(tiny_speech_model("hubert").eval(), x, 16000),
                               atol=1e-6)
    commit = "0123456789abcdef0123456789abcdef01234567"
    base = isolated_hub / "models--mmer-test--tiny-hubert"
    shutil.copytree(folder, base / "snapshots" / commit)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    resolved = resolve_speech_model("mmer-test/tiny-hubert")
    assert resolved is not None and resolved.revision == commit and resolved.model_id == "mmer-test/tiny-hubert"
    ext = AudioFeatureExtractor(features="speech", model="hf:mmer-test/tiny-hubert")
    parts = ext.manifest_parts()
    assert parts["model"]["id"] == "mmer-test/tiny-hubert" and parts["model"]["revision"] == commit
    assert parts["model"]["family"] == "hubert" and len(parts["model"]["weights_sha256"]) == 64
    assert parts["dim"] == 2 * 32 and parts["feature_names"][0] == "speech000_mean"
    with pytest.raises(ValueError, match="expects 16000 Hz audio.*sample_rate=16000"):
        AudioFeatureExtractor(features="speech", model=f"local:{folder}", sample_rate=22050)


def test_missing_model_offline_is_one_line_naming_it(tmp_path: Path) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(SpeechModelError) as err:
        AudioFeatureExtractor(features="logmel+speech", model="facebook/wav2vec2-base")
    message = str(err.value)
    assert "\n" not in message and "facebook/wav2vec2-base" in message and "HF_HUB_OFFLINE=1" in message
    assert "hf download facebook/wav2vec2-base" in message and "local:" in message
    with pytest.raises(SpeechModelError, match="no config.json"):
        load_speech_model(f"local:{tmp_path / 'nothing'}")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    (bert / "model.safetensors").write_bytes(b"")
    with pytest.raises(SpeechModelError, match="model_type 'bert' is not a speech model"):
        load_speech_model(f"local:{bert}")
    assert isinstance(err.value, FileNotFoundError)  # `pipeline extract` prints it as one line and exits 2


def test_speech_rows_on_the_shared_windows() -> None:
    model = load_speech_model(TINY)
    x = np.concatenate([np.zeros(8000, np.float32), _speech(2.0)])  # 0.5 s of silence, then 2 s of sound
    cfg = AudioConfig(features="logmel+speech", window_s=1.0, step_s=1.0)
    feats, t_start, t_end, no_audio = audio_rows(x, 16000, 0.25, cfg, model)  # the track starts 0.25 s in
    np.testing.assert_allclose(t_start, [0.0, 1.0])  # whole windows of the 2.75 s clock
    assert feats.shape == (2, 2 * 64 + 2 * 32) and not no_audio.any()
    hidden = embed(model, x, 16000)
    mid = 0.25 + (np.arange(len(hidden)) + 0.5) * model_frame_hop(model, 16000)
    sel = (mid >= 1.0) & (mid < 2.0)
    np.testing.assert_allclose(feats[1, 128:160], hidden[sel].mean(axis=0), atol=1e-5)


def test_extract_cli_names_the_missing_speech_model_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from extract.fixtures import write_ravdess
    from pipelines.cli import app

    root = write_ravdess(tmp_path / "R", actors=1, clips=1, seconds=0.5, frame_size=(64, 48), audio_visual=True)
    result = CliRunner().invoke(app, ["extract", "--dataset", "ravdess", "--root", str(root), "--modality", "audio",
                                      "--gpu", "-1", "--no-progress", "--out", str(tmp_path / "cache"),
                                      "--set", "audio_options.features=speech",
                                      "--set", "audio_options.model=facebook/hubert-base-ls960"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "facebook/hubert-base-ls960" in errors[0] and "not in the Hugging Face cache" in errors[0]
    assert not (tmp_path / "cache" / "ravdess").exists() or not any((tmp_path / "cache" / "ravdess").iterdir())

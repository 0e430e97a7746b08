"""The ``audio`` extractor: the audio track of an item -> rows on the shared windows of the item clock.

Features (``features``): ``logmel`` (mean and std of each log-mel band over the window: 2 x n_mels), ``speech``
(mean and std of a speech model's hidden vectors over the window: 2 x hidden), or ``logmel+speech``. Windows are
``[k * step_s, k * step_s + window_s)`` from the first video frame (t = 0 of the face rows), so audio rows pair with
the face frames of the same seconds. A window the audio track covers less than half of (the track starts late or ends early) is a NaN row
flagged ``q_no_audio``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from extract.audio.decode import AudioDecodeError, read_audio
from extract.audio.features import log_mel, window_grid, window_stats
from extract.audio.speech import (
    TINY,
    expected_sample_rate,
    load_speech_model,
    model_frame_hop,
    resolve_speech_model,
    weights_sha256,
)
from extract.backbones.hub import weights_sha256 as file_weights_sha256
from extract.base import EXTRACTORS, FeatureExtractor, ItemError
from extract.datasets.base import DatasetReader, Item
from store.schema import ItemRows

EXTRACTOR_VERSION = "2"  # 2: windows the track covers less than half of are no-audio rows; channel mean
MIN_COVERAGE = 0.5  # a window needs the audio track over at least this fraction of it
SOURCE_KEYS = ("audio", "video")


@dataclass(frozen=True)
class AudioConfig:
    """Every feature-changing choice of the audio path (all of it enters the store fingerprint)."""

    features: Literal["logmel", "speech", "logmel+speech"] = "logmel"
    sample_rate: int = 16000
    window_s: float = 1.0
    step_s: float = 1.0
    n_fft: int = 400  # 25 ms at 16 kHz
    hop: int = 160  # 10 ms
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    model: str = TINY  # speech features: tiny-wav2vec2, a hub id (facebook/wav2vec2-base, ...) or local:<folder>

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.step_s <= 0:
            raise ValueError(f"window_s and step_s must be positive, got {self.window_s}, {self.step_s}")
        if self.features not in ("logmel", "speech", "logmel+speech"):
            raise ValueError(f"features must be logmel, speech or logmel+speech, got {self.features!r}")


def audio_source(item: Item) -> str:
    """The media file holding the item's audio (``sources['audio']``, else the video)."""
    for key in SOURCE_KEYS:
        if item.sources.get(key):
            return str(item.sources[key])
    raise ItemError(f"{item.key}: no audio source")


def audio_rows(samples: np.ndarray, sample_rate: int, start_s: float, cfg: AudioConfig,
               speech: Any = None, duration_s: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             np.ndarray]:
    """(features (n, dim), t_start (n,), t_end (n,), no_audio (n,) bool) of one track; pure given the model."""
    total = start_s + len(samples) / sample_rate if duration_s is None else duration_s
    t_start, t_end = window_grid(max(total, 0.0), cfg.window_s, cfg.step_s)
    track_end = start_s + len(samples) / sample_rate
    overlap = np.minimum(t_end, track_end) - np.maximum(t_start, start_s)
    parts, covered = [], overlap >= MIN_COVERAGE * (t_end - t_start)
    if "logmel" in cfg.features:
        spec = log_mel(samples, sample_rate, n_fft=cfg.n_fft, hop=cfg.hop, n_mels=cfg.n_mels, fmin=cfg.fmin,
                       fmax=min(cfg.fmax, sample_rate / 2))
        t = start_s + np.arange(spec.shape[1]) * cfg.hop / sample_rate
        stats, counts = window_stats(t, spec.T, t_start, t_end)
        parts.append(stats)
        covered &= counts > 0
    if "speech" in cfg.features:
        from extract.audio.speech import embed

        hidden = embed(speech, samples, sample_rate)
        hop = model_frame_hop(speech, sample_rate)
        t = start_s + (np.arange(len(hidden)) + 0.5) * hop
        stats, counts = window_stats(t, hidden, t_start, t_end)
        parts.append(stats)
        covered &= counts > 0
    feats = np.concatenate(parts, axis=1)
    feats[~covered] = np.nan
    return feats, t_start, t_end, ~covered


@EXTRACTORS.register("audio", kind="audio")
class AudioFeatureExtractor(FeatureExtractor):
    """Log-mel statistics and/or speech-model embeddings of an item's audio track on the shared windows.
    ``EXTRACTORS.create("audio", features="logmel+speech", model="facebook/wav2vec2-base")``."""

    kind = "audio"

    def __init__(self, config: AudioConfig | None = None, device: Any = None, **options: Any) -> None:
        self.config = dataclasses.replace(config or AudioConfig(), **options)
        self.device = device
        wants_speech = "speech" in self.config.features
        self.resolved = resolve_speech_model(self.config.model) if wants_speech else None
        self.speech = load_speech_model(self.config.model, self.resolved) if wants_speech else None
        rate = expected_sample_rate(self.resolved)
        if rate and rate != self.config.sample_rate:
            raise ValueError(f"speech model {self.config.model!r} expects {rate} Hz audio but the audio path resamples "
                             f"to {self.config.sample_rate} Hz; set audio_options.sample_rate={rate}")

    def _speech_dim(self) -> int:
        return int(self.speech.config.hidden_size) if self.speech is not None else 0

    def manifest_parts(self) -> dict[str, Any]:
        cfg = self.config
        names = []
        if "logmel" in cfg.features:
            names += [f"mel{i:02d}_{s}" for s in ("mean", "std") for i in range(cfg.n_mels)]
        if self.speech is not None:
            names += [f"speech{i:03d}_{s}" for s in ("mean", "std") for i in range(self._speech_dim())]
        model: dict[str, Any] = {}
        if self.speech is not None:
            resolved = self.resolved
            model = {"id": resolved.model_id if resolved else cfg.model,
                     "revision": resolved.revision if resolved else None,
                     "family": str(self.speech.config.model_type),
                     "weights_sha256": (file_weights_sha256(resolved.weight_files()) if resolved
                                        else weights_sha256(self.speech))}
        return {
            "extractor": f"audio/{cfg.features}", "extractor_version": EXTRACTOR_VERSION, "dim": len(names),
            "dtype": "float32", "config": dataclasses.asdict(cfg), "model": model,
            "preprocessing": {"modality": "audio", "sample_rate": cfg.sample_rate, "mono": True,
                              "clock": "t = 0 at the first video frame (the face rows' clock)",
                              "windows": {"window_s": cfg.window_s, "step_s": cfg.step_s},
                              "logmel": {"n_fft": cfg.n_fft, "hop": cfg.hop, "n_mels": cfg.n_mels,
                                         "scale": "slaney", "norm": "slaney", "db": "10 log10, amin 1e-10"}},
            "feature_names": names,
        }

    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        path = audio_source(item)
        try:
            audio = read_audio(path, self.config.sample_rate)
        except AudioDecodeError as exc:
            raise ItemError(str(exc)) from exc
        feats, t_start, t_end, no_audio = audio_rows(audio.samples, audio.sample_rate, audio.start_s, self.config,
                                                     self.speech)
        if no_audio.all():
            raise ItemError(f"{path}: the audio track covers no {self.config.window_s:g} s window")
        return ItemRows(
            key=item.key, embeddings=feats, subject=item.subject, session=item.session, trial=item.trial,
            t_start_s=t_start, t_end_s=t_end, labels=dict(item.labels), quality={"no_audio": no_audio},
            fold=item.fold, meta={"source": path, "audio_start_s": audio.start_s,
                                  "audio_duration_s": audio.duration_s},
        )

"""Log-mel features against an independent reference (librosa), and the window statistics over the shared clock."""

from __future__ import annotations

import numpy as np
import pytest

from extract.audio.features import log_mel, mel_filters, window_grid, window_stats

librosa = pytest.importorskip("librosa")  # the `test` extra installs it; see setup.cfg

# Stated tolerance: float32 STFT + matmul against librosa's float64/float32 path. The dB values agree to 1e-3 dB
# wherever the power is above 1e-8 (far below any sound); the filter banks to 1e-6 relative.
DB_ATOL = 1e-3


def _reference(x: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    power = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin,
                                           fmax=fmax, power=2.0, center=True, pad_mode="constant", htk=False,
                                           norm="slaney", window="hann")
    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)


@pytest.mark.parametrize(("sr", "n_fft", "hop", "n_mels", "fmin", "fmax"),
                         [(16000, 400, 160, 64, 0.0, 8000.0), (22050, 512, 256, 40, 50.0, 7000.0)])
def test_log_mel_equals_librosa(sr: int, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(1.3 * sr)) / sr
    x = (0.1 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 0.4)).astype(np.float32)
    ours = log_mel(x, sr, n_fft=n_fft, hop=hop, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ref = _reference(x, sr, n_fft, hop, n_mels, fmin, fmax)
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    assert diff.max() < DB_ATOL, f"max |dB diff| {diff.max():.2e}"
    bank = mel_filters(sr, n_fft, n_mels, fmin, fmax)
    ref_bank = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    np.testing.assert_allclose(bank, ref_bank, rtol=1e-5, atol=1e-7)


def test_log_mel_sees_where_a_tone_is() -> None:
    sr = 16000
    t = np.arange(sr) / sr
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    spec = log_mel(x, sr)
    centres = librosa.mel_frequencies(n_mels=64 + 2, fmin=0, fmax=8000)[1:-1]
    assert abs(centres[spec[:, 50].argmax()] - 1000) < 120  # the loudest band is the one around 1 kHz


def test_window_grid_and_stats_on_the_clock() -> None:
    start, end = window_grid(3.2, 1.0, 0.5)
    np.testing.assert_allclose(start, [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(end - start, 1.0)
    frame_t = np.arange(6, 32) / 10.0  # frames start late (an audio track starting 0.6 s in)
    frames = np.stack([frame_t, -frame_t], axis=1)
    stats, counts = window_stats(frame_t, frames, start, end)
    assert counts.tolist() == [4, 9, 10, 10, 10] and np.isfinite(stats).all()  # [0, 1): frames 0.6 .. 0.9
    sel = (frame_t >= 1.0) & (frame_t < 2.0)
    np.testing.assert_allclose(stats[2, :2], frames[sel].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(stats[2, 2:], frames[sel].std(axis=0), atol=1e-5)
    empty, n = window_stats(np.array([5.0]), np.ones((1, 2)), start, end)
    assert (n == 0).all() and np.isnan(empty).all()

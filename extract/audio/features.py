"""Pure array functions of the audio path: STFT power, the Slaney mel filter bank, log-mel spectrograms, and
statistics of frame features over the shared windows (the same windows as the other modalities)."""

from __future__ import annotations

import numpy as np


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default, ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = hz / f_sp
    return np.where(hz >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(hz, 1e-12) / min_log_hz) / logstep, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the Slaney mel scale, area-normalised (Slaney norm)."""
    fmax = sample_rate / 2.0 if fmax is None else fmax
    fft_hz = np.linspace(0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]
    return weights.astype(np.float32)


def stft_power(samples: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(n_fft // 2 + 1, frames) |STFT|^2 with a periodic Hann window; frames centred at ``k * hop`` (zero padded)."""
    x = np.pad(np.asarray(samples, dtype=np.float32), (n_fft // 2, n_fft // 2))
    n_frames = 1 + (len(x) - n_fft) // hop
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n_frames] * window
    return (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T.astype(np.float32)


def log_mel(samples: np.ndarray, sample_rate: int, *, n_fft: int = 400, hop: int = 160, n_mels: int = 64,
            fmin: float = 0.0, fmax: float | None = None, amin: float = 1e-10) -> np.ndarray:
    """(n_mels, frames) log-mel power spectrogram in dB (10 log10, floor ``amin``); frame k is at ``k * hop``."""
    mel = mel_filters(sample_rate, n_fft, n_mels, fmin, fmax) @ stft_power(samples, n_fft, hop)
    return (10.0 * np.log10(np.maximum(mel, amin))).astype(np.float32)


def window_grid(duration_s: float, window_s: float, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(t_start, t_end) of the windows [k*step, k*step + window) that fit in [0, duration) (at least one)."""
    n = max(1, int(np.floor((duration_s - window_s) / step_s + 1e-9)) + 1) if duration_s >= window_s else 1
    start = np.arange(n) * float(step_s)
    return start, start + float(window_s)


def window_stats(frame_t_s: np.ndarray, frames: np.ndarray, t_start: np.ndarray,
                 t_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the (n_frames, d) ``frames`` whose time falls in each window [start, end): ((n, 2d) float32,
    (n,) counts). A window with no frame is NaN."""
    frames = np.asarray(frames, dtype=np.float64)
    lo = np.searchsorted(frame_t_s, t_start, side="left")
    hi = np.searchsorted(frame_t_s, t_end, side="left")
    csum = np.vstack([np.zeros((1, frames.shape[1])), np.cumsum(frames, axis=0)])
    csq = np.vstack([np.zeros((1, frames.shape[1])), np.cumsum(frames * frames, axis=0)])
    counts = (hi - lo).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (csum[hi] - csum[lo]) / counts[:, None]
        var = np.maximum((csq[hi] - csq[lo]) / counts[:, None] - mean * mean, 0.0)
    out = np.concatenate([mean, np.sqrt(var)], axis=1).astype(np.float32)
    out[counts == 0] = np.nan
    return out, counts

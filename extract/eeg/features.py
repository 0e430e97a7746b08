"""Band features per window: differential entropy (DE) and Welch band power, plus window quality and baselines.

Pure array functions. Input ``x`` is ``(..., channels, samples)`` (any leading axes: trials, subjects); band
features come out as ``(..., windows, channels, bands)``. Window ``k`` covers samples
``[offset_samples + k * step_samples, ... + window_samples)``.

NaN policy: a (window, channel) whose input is non-finite, or flat (``std == 0``, tested exactly as
``max == min``), gets NaN for all its bands, never a number. In ``"trial-zero-phase"`` mode one non-finite sample
spreads through the whole-trial filter, so it invalidates every window of that channel; in ``"window-causal"``
mode only its own window. ``window_quality`` returns the two masks so callers can flag rows.

Work runs in blocks of about ``BLOCK_BYTES`` of input rows (one DEAP trial of 32 channels), all bands per block:
filtering a block that stays in cache is about 5x faster than filtering a whole subject array at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal, get_args

import numpy as np
from scipy import signal

from extract.eeg.bands import BandError
from extract.eeg.filters import (
    FilterMode,
    bandpass_causal,
    bandpass_zero_phase,
    butter_bandpass_sos,
    check_filter_mode,
)
from extract.eeg.windows import count_windows, sliding_windows

BaselineMode = Literal["subtract-mean", "none"]
BASELINE_MODES: tuple[str, ...] = get_args(BaselineMode)
BLOCK_BYTES = 2 * 2**20
_LOG_2PI_E = math.log(2.0 * math.pi * math.e)
STAT_NAMES: tuple[str, ...] = ("mean", "std", "min", "max", "slope_per_s")


def de_from_variance(variance: np.ndarray) -> np.ndarray:
    """Differential entropy of a Gaussian with this variance: ``0.5 * ln(2 * pi * e * variance)`` (nats)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * (_LOG_2PI_E + np.log(variance))


def differential_entropy(
    x: np.ndarray,
    sfreq_hz: float,
    bands_hz: Mapping[str, tuple[float, float]],
    window_samples: int,
    step_samples: int,
    *,
    offset_samples: int = 0,
    filter_mode: FilterMode = "trial-zero-phase",
    filter_order: int = 4,
) -> np.ndarray:
    """DE ``0.5 * ln(2 * pi * e * var)`` of each band-passed window, ``(..., windows, channels, bands)`` float64.

    ``var`` is the population variance (``ddof=0``) over the window's samples of the Butterworth band-passed
    signal (``filters`` explains the two ``filter_mode`` values). TorchEEG computes ``0.5 * log2(2 * pi * e *
    std)`` instead: an affine function of this one per feature, so standardised features are the same.
    """
    mode = check_filter_mode(filter_mode)
    bands = list(bands_hz.values())
    for band in bands:  # design (and validate) every filter before any work
        butter_bandpass_sos(band, sfreq_hz, filter_order)

    def kernel(rows: np.ndarray, out: np.ndarray) -> None:
        if mode == "window-causal":
            windows = sliding_windows(rows[:, offset_samples:], window_samples, step_samples)
            for b, band in enumerate(bands):
                out[:, :, b] = _variance(bandpass_causal(windows, band, sfreq_hz, filter_order))
        else:
            for b, band in enumerate(bands):
                filtered = bandpass_zero_phase(rows, band, sfreq_hz, filter_order)
                out[:, :, b] = _variance(sliding_windows(filtered[:, offset_samples:], window_samples, step_samples))
        out[:] = de_from_variance(out)

    return _band_features(x, len(bands), window_samples, step_samples, offset_samples, mode, kernel)


def band_power_welch(
    x: np.ndarray,
    sfreq_hz: float,
    bands_hz: Mapping[str, tuple[float, float]],
    window_samples: int,
    step_samples: int,
    *,
    offset_samples: int = 0,
    nperseg: int | None = None,
) -> np.ndarray:
    """Band power (input units squared, e.g. µV²) of each window, ``(..., windows, channels, bands)`` float64.

    ``scipy.signal.welch`` on every window (Hann segments of ``nperseg`` samples, default one second or the whole
    window if shorter, 50 % overlap, constant detrend, one-sided density), then the PSD summed over the bins with
    ``low <= f < high`` times the bin width: half-open bands, so adjacent bands share no bin.
    """
    nperseg = min(window_samples, nperseg or max(1, round(sfreq_hz)))
    freqs = np.fft.rfftfreq(nperseg, d=1.0 / sfreq_hz)
    masks = []
    for name, (low, high) in bands_hz.items():
        mask = (freqs >= low) & (freqs < high)
        if not mask.any():
            raise BandError(
                f"band {name!r} ({low:g}-{high:g} Hz) holds no Welch bin at {sfreq_hz / nperseg:g} Hz resolution "
                f"(nperseg={nperseg}); use a longer nperseg or a wider band"
            )
        masks.append(mask)
    selector = np.stack(masks, axis=1).astype(np.float64) * (sfreq_hz / nperseg)  # (freqs, bands)

    def kernel(rows: np.ndarray, out: np.ndarray) -> None:
        windows = sliding_windows(rows[:, offset_samples:], window_samples, step_samples)
        _, psd = signal.welch(windows, fs=sfreq_hz, nperseg=nperseg, axis=-1)
        out[:] = psd @ selector

    return _band_features(x, len(masks), window_samples, step_samples, offset_samples, "window-causal", kernel)


def window_quality(
    x: np.ndarray,
    window_samples: int,
    step_samples: int,
    *,
    offset_samples: int = 0,
    filter_mode: FilterMode = "trial-zero-phase",
) -> tuple[np.ndarray, np.ndarray]:
    """``(nonfinite, flat)``, each ``(..., windows, channels)`` bool: the (window, channel) pairs whose features
    are NaN. ``nonfinite`` covers the whole channel in ``"trial-zero-phase"`` mode (see the module doc)."""
    x = np.asarray(x)
    windows = sliding_windows(x[..., offset_samples:], window_samples, step_samples)
    finite = np.isfinite(windows).all(axis=-1)
    if check_filter_mode(filter_mode) == "trial-zero-phase":
        finite &= np.isfinite(x).all(axis=-1)[..., None]
    with np.errstate(invalid="ignore"):
        flat = finite & (windows.max(axis=-1) == windows.min(axis=-1))
    return np.swapaxes(~finite, -1, -2), np.swapaxes(flat, -1, -2)


def window_stats(
    x: np.ndarray, sfreq_hz: float, window_samples: int, step_samples: int, *, offset_samples: int = 0
) -> np.ndarray:
    """Simple per-window statistics for slow peripheral signals (GSR, respiration, temperature, ...):
    ``(..., windows, channels, 5)`` = mean, std (ddof=0), min, max and least-squares slope per second
    (``STAT_NAMES``), in the input's units. A non-finite sample makes its window's stats NaN; a flat window is a
    valid reading here (std 0, slope 0)."""
    x = np.asarray(x, dtype=np.float64)
    windows = sliding_windows(x[..., offset_samples:], window_samples, step_samples)
    t = np.arange(window_samples) / sfreq_hz
    t -= t.mean()
    with np.errstate(invalid="ignore"):
        stats = np.stack(
            [windows.mean(-1), windows.std(-1), windows.min(-1), windows.max(-1), windows @ (t / (t @ t))], axis=-1
        )
    return np.swapaxes(stats, -2, -3)


def subtract_baseline(
    features: np.ndarray, baseline_windows: np.ndarray, mode: BaselineMode = "subtract-mean"
) -> np.ndarray:
    """``features`` ``(..., windows, channels, bands)`` minus the mean over the baseline windows (a bool mask over
    the windows axis), per channel and band; ``mode="none"`` returns them unchanged. A NaN in a baseline window
    makes that channel-band NaN in every window (the baseline is unknown, not smaller)."""
    if mode not in BASELINE_MODES:
        raise ValueError(f"baseline {mode!r} is not one of {', '.join(BASELINE_MODES)}")
    if mode == "none":
        return features
    baseline_windows = np.asarray(baseline_windows, dtype=bool)
    if not baseline_windows.any():
        raise ValueError(
            "baseline='subtract-mean' needs windows wholly before the stimulus onset, and this recording has none "
            "(onset at its first sample?); use baseline='none'"
        )
    return features - features[..., baseline_windows, :, :].mean(axis=-3, keepdims=True)


def feature_names(channel_names: Sequence[str], band_names: Sequence[str], suffix: str = "") -> list[str]:
    """Names of the flattened ``channels x bands`` columns, channel-major and band fastest: ``Fp1_delta``,
    ``Fp1_theta``, ... (SEED-V's 310 = 62 x 5 layout); ``suffix`` gives e.g. ``Fp1_delta_de``."""
    tail = f"_{suffix}" if suffix else ""
    return [f"{ch}_{band}{tail}" for ch in channel_names for band in band_names]


def _band_features(
    x: np.ndarray,
    n_bands: int,
    window_samples: int,
    step_samples: int,
    offset_samples: int,
    filter_mode: FilterMode,
    kernel,
) -> np.ndarray:
    """Run ``kernel(rows (r, samples), out (r, windows, bands))`` over row blocks of ``x`` ``(..., channels,
    samples)``, then NaN the invalid (window, channel) pairs and move to ``(..., windows, channels, bands)``."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"expected (..., channels, samples), got shape {x.shape}")
    if not 0 <= offset_samples < x.shape[-1]:
        raise ValueError(f"offset_samples={offset_samples} outside a recording of {x.shape[-1]} samples")
    n_windows = count_windows(x.shape[-1] - offset_samples, window_samples, step_samples)
    if n_windows == 0:
        raise ValueError(f"{x.shape[-1] - offset_samples} samples hold no window of {window_samples} samples")
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty((rows.shape[0], n_windows, n_bands), dtype=np.float64)
    for block in _row_blocks(rows.shape[0], rows.shape[-1]):
        kernel(np.asarray(rows[block], dtype=np.float64), out[block])
    out = np.swapaxes(out.reshape(*x.shape[:-1], n_windows, n_bands), -2, -3)
    nonfinite, flat = window_quality(
        x, window_samples, step_samples, offset_samples=offset_samples, filter_mode=filter_mode
    )
    out[nonfinite | flat] = np.nan
    return np.ascontiguousarray(out)


def _variance(windows: np.ndarray) -> np.ndarray:
    """Population variance over the last axis as ``(sum(x^2) - sum(x)^2 / n) / n``: one pass, no temporary.
    The cancellation error is about 1e-16 x mean^2 / variance, negligible for band-passed (zero-mean) signals."""
    n = windows.shape[-1]
    total = windows.sum(axis=-1)
    return np.maximum(np.einsum("...i,...i->...", windows, windows) - total * total / n, 0.0) / n


def _row_blocks(n_rows: int, n_samples: int) -> Iterator[slice]:
    size = max(1, BLOCK_BYTES // (8 * n_samples))
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))

"""The pure EEG array functions against straightforward loops written here, closed forms and the trial clock."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from extract.eeg.bands import DEFAULT_BANDS_HZ, BandError, resolve_bands
from extract.eeg.features import (
    band_power_welch,
    de_from_variance,
    differential_entropy,
    feature_names,
    subtract_baseline,
    window_quality,
    window_stats,
)
from extract.eeg.filters import butter_bandpass_sos
from extract.eeg.windows import sliding_windows, stimulus_grid, window_times

FS = 128.0
BANDS = resolve_bands()


def _de(y: np.ndarray) -> float:
    return 0.5 * math.log(2 * math.pi * math.e * np.var(y))


def reference_de(x, fs, bands, win, step, order, mode, form="sos"):
    """The obvious loop: per channel, per window, per band, the filter designed on every call.

    ``form="sos"``: second-order sections (what the code under test uses); ``form="ba"``: TorchEEG's
    ``butter(order, [low / nyq, high / nyq], btype="band")`` polynomials with ``lfilter`` / ``filtfilt``."""
    n_ch, n_samples = x.shape
    n_win = (n_samples - win) // step + 1
    out = np.empty((n_win, n_ch, len(bands)))
    for c in range(n_ch):
        for b, (low, high) in enumerate(bands.values()):
            if mode == "trial-zero-phase":
                if form == "sos":
                    y = signal.sosfiltfilt(signal.butter(order, [low, high], "bandpass", fs=fs, output="sos"), x[c])
                else:
                    y = signal.filtfilt(*signal.butter(order, [low / (fs / 2), high / (fs / 2)], btype="band"), x[c])
            for k in range(n_win):
                if mode == "trial-zero-phase":
                    out[k, c, b] = _de(y[k * step:k * step + win])
                    continue
                w = x[c, k * step:k * step + win]
                if form == "sos":
                    y_w = signal.sosfilt(signal.butter(order, [low, high], "bandpass", fs=fs, output="sos"), w)
                else:
                    y_w = signal.lfilter(*signal.butter(order, [low / (fs / 2), high / (fs / 2)], btype="band"), w)
                out[k, c, b] = _de(y_w)
    return out


@pytest.fixture(scope="module")
def eeg() -> np.ndarray:
    """Two trials x 3 channels x 10 s of noise with an offset and a 10 Hz rhythm, µV-like scale."""
    rng = np.random.default_rng(7)
    t = np.arange(int(10 * FS)) / FS
    return 20 * rng.standard_normal((2, 3, t.size)) + 5 + 8 * np.sin(2 * np.pi * 10 * t)


# ---------------------------------------------------------------- bands


def test_resolve_bands_names_ranges_and_nyquist() -> None:
    assert resolve_bands() == DEFAULT_BANDS_HZ
    assert list(resolve_bands(["alpha", "delta"])) == ["alpha", "delta"]
    assert resolve_bands("theta, mu=8-12, 13-30") == {"theta": (4.0, 8.0), "mu": (8.0, 12.0), "13-30Hz": (13.0, 30.0)}
    assert resolve_bands({"low": (1, 2)}) == {"low": (1.0, 2.0)}
    assert resolve_bands([("mu", 8, 12), (20, 25)]) == {"mu": (8.0, 12.0), "20-25Hz": (20.0, 25.0)}
    with pytest.raises(BandError, match="unknown band 'kappa'"):
        resolve_bands(["kappa"])
    with pytest.raises(BandError, match="low < high"):
        resolve_bands(["x=9-8"])
    with pytest.raises(BandError, match="given twice"):
        resolve_bands(["alpha", "alpha"])
    assert resolve_bands(None, sfreq_hz=100.0) == DEFAULT_BANDS_HZ  # gamma 31-45 Hz is fine at 100 Hz ...
    with pytest.raises(BandError, match="'gamma' .* reaches the Nyquist frequency 45 Hz"):
        resolve_bands(None, sfreq_hz=90.0)  # ... but not at 90 Hz


# ---------------------------------------------------------------- filters and windows


def test_filter_design_is_cached() -> None:
    from extract.eeg import filters

    filters._design_cached.cache_clear()
    first = butter_bandpass_sos((8, 14), 128, 4)
    for _ in range(3):
        again = butter_bandpass_sos((8.0, 14.0), 128.0, 4)
        filters.bandpass_zero_phase(np.ones(64), (8, 14), 128.0, 4)
    info = filters._design_cached.cache_info()
    assert (info.misses, info.hits) == (1, 6)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, signal.butter(4, [8, 14], "bandpass", fs=128, output="sos"))


def test_sliding_windows_is_a_view() -> None:
    x = np.arange(2 * 3 * 20, dtype=float).reshape(2, 3, 20)
    w = sliding_windows(x, 6, 4)
    assert w.shape == (2, 3, 4, 6) and np.shares_memory(w, x) and not w.flags.writeable
    for k in range(4):
        np.testing.assert_array_equal(w[..., k, :], x[..., 4 * k:4 * k + 6])
    with pytest.raises(ValueError, match="no window"):
        sliding_windows(x, 21, 1)


def test_deap_trial_clock() -> None:
    grid = stimulus_grid(8064, 128.0, 1.0, 1.0, onset_s=3.0)  # DEAP: 63 s, 3 s baseline
    assert grid.n_windows == 63 and grid.offset_samples == 0
    assert grid.baseline.sum() == 3 and grid.stimulus.sum() == 60
    np.testing.assert_array_equal(grid.t_start_s[:4], [-3.0, -2.0, -1.0, 0.0])
    stim = grid.t_start_s[grid.stimulus]
    assert stim[0] == 0.0 and not np.signbit(stim[0])
    np.testing.assert_array_equal(stim, np.arange(60.0))
    np.testing.assert_array_equal(grid.t_end_s[grid.stimulus], np.arange(1.0, 61.0))
    # The stimulus window at 0.0 s starts at sample 384 = 3 s x 128 Hz.
    assert grid.offset_samples + 3 * grid.step_samples == 384


def test_grid_anchored_at_onset_with_overlap_and_odd_steps() -> None:
    grid = stimulus_grid(8064, 128.0, 1.0, 0.5, onset_s=3.0)
    assert grid.stimulus.sum() == 119 and grid.t_start_s[grid.stimulus][0] == 0.0
    np.testing.assert_array_equal(grid.t_start_s[grid.baseline], [-3.0, -2.5, -2.0, -1.5, -1.0])
    assert not (grid.baseline | grid.stimulus)[5]  # [-0.5, 0.5) straddles the onset: neither
    # A step that does not divide the onset: the grid skips the first samples so a window starts at the onset.
    grid = stimulus_grid(1280, 128.0, 1.0, 0.75, onset_s=2.0)  # 96-sample step, onset at 256
    assert grid.offset_samples == 256 % 96
    assert 0.0 in grid.t_start_s and grid.t_start_s[0] == -1.5
    t0, t1 = window_times(4, 0.1, 0.1, onset_s=0.3)
    np.testing.assert_array_equal(t0, [-0.3, -0.2, -0.1, 0.0])
    np.testing.assert_array_equal(t1, [-0.2, -0.1, 0.0, 0.1])
    with pytest.raises(ValueError, match="not a whole number"):
        stimulus_grid(1280, 128.0, 0.3, 0.3)


# ---------------------------------------------------------------- DE against the loop


@pytest.mark.parametrize("mode", ["trial-zero-phase", "window-causal"])
def test_de_equals_the_loop(eeg: np.ndarray, mode: str) -> None:
    ours = differential_entropy(eeg, FS, BANDS, 128, 64, filter_mode=mode, filter_order=4)
    assert ours.shape == (2, 19, 3, 5)
    for trial in range(2):
        ref = reference_de(eeg[trial], FS, BANDS, 128, 64, 4, mode)
        np.testing.assert_allclose(ours[trial], ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("mode", ["trial-zero-phase", "window-causal"])
def test_de_equals_torcheeg_style_ba_loop(eeg: np.ndarray, mode: str) -> None:
    """TorchEEG designs (b, a) polynomials. That is the same filter rounded worse: for the narrow low bands the
    polynomial form loses precision (measured: 3e-7 nats on delta, 2e-9 on theta at order 4), so those two bands get
    1e-6; alpha, beta and gamma agree within 1e-9."""
    ours = differential_entropy(eeg[0], FS, BANDS, 128, 128, filter_mode=mode, filter_order=4)
    ref = reference_de(eeg[0], FS, BANDS, 128, 128, 4, mode, form="ba")
    np.testing.assert_allclose(ours[..., 2:], ref[..., 2:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours[..., :2], ref[..., :2], rtol=0, atol=1e-6)


def test_de_keeps_leading_axes_and_offset(eeg: np.ndarray) -> None:
    stacked = np.stack([eeg, eeg[::-1]])  # (2, 2, 3, samples)
    ours = differential_entropy(stacked, FS, BANDS, 128, 128, offset_samples=32, filter_mode="window-causal")
    ref = reference_de(eeg[1][:, 32:], FS, BANDS, 128, 128, 4, "window-causal")
    assert ours.shape == (2, 2, 9, 3, 5)
    np.testing.assert_allclose(ours[0, 1], ref, atol=1e-9)
    np.testing.assert_allclose(ours[1, 0], ref, atol=1e-9)
    # Trial mode filters the whole trial, offset samples included, then windows from the offset.
    ours = differential_entropy(eeg[0], FS, BANDS, 128, 128, offset_samples=32)
    y = signal.sosfiltfilt(butter_bandpass_sos(BANDS["alpha"], FS, 4), eeg[0, 1])
    assert ours[3, 1, 2] == pytest.approx(_de(y[32 + 3 * 128:32 + 4 * 128]), abs=1e-12)


@pytest.mark.parametrize("mode", ["trial-zero-phase", "window-causal"])
def test_de_of_white_noise_matches_closed_form(mode: str) -> None:
    """White noise N(0, s^2) through a filter H has variance s^2 * mean over [0, fs/2] of |H|^p (p = 2 causal,
    4 forward-backward); for an ideal band that is s^2 * (high - low) / (fs / 2). DE must equal
    0.5 * ln(2 pi e var). One hour at 128 Hz in 60 s windows: the per-window DE of the 3 Hz delta band has
    sd ~ 0.5 * sqrt(2 / dof), dof = 2 * 3 Hz * 60 s, i.e. 0.037, and the mean over 60 windows 0.005, so 0.02 nats is
    4 standard errors for the worst band (less than 2 % in variance). Butterworth's power response is not a brick
    wall: its noise bandwidth is (pi/2n)/sin(pi/2n) = 1.026 x (high - low) for |H|^2 and (2n-1)/(2n) of that,
    0.898, for |H|^4 (order n = 4), i.e. +0.013 / -0.054 nats from the ideal band: checked within 0.07."""
    sigma = 3.0
    x = sigma * np.random.default_rng(0).standard_normal((1, int(3600 * FS)))
    de = differential_entropy(x, FS, BANDS, int(60 * FS), int(60 * FS), filter_mode=mode).mean(axis=(0, 1))
    power = 4 if mode == "trial-zero-phase" else 2
    for b, (low, high) in enumerate(BANDS.values()):
        freqs, h = signal.sosfreqz(butter_bandpass_sos((low, high), FS, 4), worN=2**16, fs=FS)
        band_var = sigma**2 * np.trapezoid(np.abs(h) ** power, freqs) / (FS / 2)
        assert de[b] == pytest.approx(0.5 * math.log(2 * math.pi * math.e * band_var), abs=0.02)
        ideal = sigma**2 * (high - low) / (FS / 2)
        assert de[b] == pytest.approx(0.5 * math.log(2 * math.pi * math.e * ideal), abs=0.07)


def test_de_from_variance_is_the_gaussian_entropy() -> None:
    assert de_from_variance(np.array(1.0)) == pytest.approx(0.5 * math.log(2 * math.pi * math.e))
    assert de_from_variance(np.array(4.0)) - de_from_variance(np.array(1.0)) == pytest.approx(math.log(2))


# ---------------------------------------------------------------- Welch band power


def test_band_power_welch_equals_the_loop(eeg: np.ndarray) -> None:
    ours = band_power_welch(eeg, FS, BANDS, 256, 128, nperseg=128)
    assert ours.shape == (2, 9, 3, 5)
    for trial in range(2):
        for c in range(3):
            for k in range(9):
                f, p = signal.welch(eeg[trial, c, k * 128:k * 128 + 256], fs=FS, nperseg=128)
                for b, (low, high) in enumerate(BANDS.values()):
                    sel = (f >= low) & (f < high)
                    assert ours[trial, k, c, b] == pytest.approx(p[sel].sum() * (f[1] - f[0]), rel=1e-9, abs=1e-12)


def test_band_power_of_a_sinusoid() -> None:
    """A 10 Hz sinusoid of amplitude A has power A^2 / 2, all of it in alpha (8-14 Hz): the Hann leakage of a
    bin-centred tone reaches only the neighbouring 9 and 11 Hz bins."""
    t = np.arange(int(4 * FS)) / FS
    x = (3.0 * np.sin(2 * np.pi * 10 * t))[None]
    power = band_power_welch(x, FS, BANDS, 128, 128)
    np.testing.assert_allclose(power[:, 0, 2], 4.5, rtol=1e-9)
    assert np.all(power[:, 0, [0, 1, 3, 4]] < 1e-20)
    with pytest.raises(BandError, match="no Welch bin"):
        band_power_welch(x, FS, {"thin": (10.2, 10.4)}, 128, 128)


# ---------------------------------------------------------------- quality, baseline, layout


@pytest.mark.parametrize("mode", ["trial-zero-phase", "window-causal"])
def test_nan_and_flat_inputs_give_nan_features_and_flags(eeg: np.ndarray, mode: str) -> None:
    x = eeg[0].copy()
    x[1, 5 * 128 + 3] = np.nan  # channel 1, window 5
    x[2, 7 * 128:8 * 128] = 4.25  # channel 2 flat in window 7
    de = differential_entropy(x, FS, BANDS, 128, 128, filter_mode=mode)
    nonfinite, flat = window_quality(x, 128, 128, filter_mode=mode)
    assert nonfinite.shape == flat.shape == (10, 3)
    expected_nan = np.zeros((10, 3), bool)
    if mode == "trial-zero-phase":
        expected_nan[:, 1] = True  # the whole-trial filter spreads the NaN over the channel
    else:
        expected_nan[5, 1] = True
    np.testing.assert_array_equal(nonfinite, expected_nan)
    assert np.argwhere(flat).tolist() == [[7, 2]]
    np.testing.assert_array_equal(np.isnan(de).any(-1), nonfinite | flat)
    np.testing.assert_array_equal(np.isnan(de).all(-1), nonfinite | flat)  # all bands of a bad pair
    assert np.isfinite(de[:, 0]).all()
    power = band_power_welch(x, FS, BANDS, 128, 128)
    assert np.argwhere(np.isnan(power).any(-1)).tolist() == [[5, 1], [7, 2]]


def test_subtract_baseline() -> None:
    feats = np.arange(5 * 2 * 3, dtype=float).reshape(5, 2, 3)
    base = np.array([True, True, False, False, False])
    out = subtract_baseline(feats, base)
    np.testing.assert_array_equal(out, feats - feats[:2].mean(axis=0))
    assert subtract_baseline(feats, base, "none") is feats
    feats[0, 1, 2] = np.nan
    out = subtract_baseline(feats, base)
    assert np.isnan(out[:, 1, 2]).all() and np.isfinite(np.delete(out.reshape(5, 6), 5, axis=1)).all()
    with pytest.raises(ValueError, match="baseline='none'"):
        subtract_baseline(feats, np.zeros(5, bool))
    with pytest.raises(ValueError, match="not one of"):
        subtract_baseline(feats, base, "divide")  # type: ignore[arg-type]


def test_baseline_doubling_adds_ln2() -> None:
    """Each stimulus window is twice a baseline window: per-window causal DE rises by exactly ln 2 (variance x 4),
    so after subtracting the baseline mean the stimulus rows average ln 2."""
    rng = np.random.default_rng(3)
    baseline = rng.standard_normal((4, 3 * 128))
    x = np.concatenate([baseline, np.tile(2 * baseline, 20)], axis=1)  # 3 s + 60 s
    grid = stimulus_grid(x.shape[1], FS, 1.0, 1.0, onset_s=3.0)
    de = differential_entropy(x, FS, BANDS, 128, 128, filter_mode="window-causal")
    out = subtract_baseline(de, grid.baseline)[grid.stimulus]
    np.testing.assert_allclose(out.mean(axis=0), math.log(2), atol=1e-12)
    np.testing.assert_allclose(de[3:6] - de[0:3], math.log(2), atol=1e-12)


def test_feature_names_channel_major_band_fastest() -> None:
    names = feature_names(["Fp1", "AF3"], ["delta", "theta", "alpha"])
    assert names == ["Fp1_delta", "Fp1_theta", "Fp1_alpha", "AF3_delta", "AF3_theta", "AF3_alpha"]
    feats = np.arange(2 * 3).reshape(1, 2, 3)  # (windows, channels, bands)
    assert names[int(feats.reshape(1, -1)[0, 4])] == "AF3_theta"
    assert feature_names(["Fp1"], ["alpha"], "de") == ["Fp1_alpha_de"]


def test_window_stats_equal_the_loop() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 640)).cumsum(axis=1)
    stats = window_stats(x, FS, 128, 64)
    assert stats.shape == (9, 2, 5)
    t = np.arange(128) / FS
    for c in range(2):
        for k in range(9):
            w = x[c, k * 64:k * 64 + 128]
            slope = np.polyfit(t, w, 1)[0]
            np.testing.assert_allclose(stats[k, c], [w.mean(), w.std(), w.min(), w.max(), slope], rtol=1e-9, atol=1e-9)


def test_filters_equal_scipy_on_any_leading_axes(eeg: np.ndarray) -> None:
    from extract.eeg.filters import bandpass_causal, bandpass_zero_phase

    sos = butter_bandpass_sos((4, 8), FS, 3)
    np.testing.assert_allclose(bandpass_zero_phase(eeg, (4, 8), FS, 3), signal.sosfiltfilt(sos, eeg), rtol=0, atol=1e-10)
    np.testing.assert_allclose(bandpass_causal(eeg, (4, 8), FS, 3), signal.sosfilt(sos, eeg), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="more than 21 samples"):
        bandpass_zero_phase(eeg[..., :21], (4, 8), FS, 3)

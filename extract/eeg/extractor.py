"""EEG extractors: raw EEG trial -> band features per window (``"eeg"``), DEAP's peripheral channels -> window
statistics (``"eeg-peripheral"``), and SEED-V's precomputed features passed through (``"seedv-eeg-de"``,
``"seedv-eye"``). One row per window, timed on the trial's stimulus clock (negative = pre-stimulus baseline).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from extract.base import EXTRACTORS, FeatureExtractor, ItemError
from extract.datasets.base import DatasetReader, EegRecording, Item
from extract.eeg.bands import DEFAULT_BAND_NAMES, resolve_bands
from extract.eeg.features import (
    STAT_NAMES,
    BaselineMode,
    band_power_welch,
    differential_entropy,
    feature_names,
    subtract_baseline,
    window_quality,
    window_stats,
)
from extract.eeg.filters import FilterMode, check_filter_mode
from extract.eeg.windows import WindowGrid, seconds_to_samples, stimulus_grid
from store.schema import ItemRows

# DEAP data_preprocessed_python channels 1-32 (Geneva order) and 33-40.
DEAP_EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip
DEAP_PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)  # fmt: skip
EXTRACTOR_VERSION = "1"
Feature = Literal["de", "psd", "de+psd"]
QUALITY_FLAGS = ("input_nan", "flat_channel")


@dataclass(frozen=True)
class EegConfig:
    """Band features of raw EEG. Defaults fit DEAP's preprocessed 128 Hz data (3 s baseline, 32 EEG channels)."""

    window_s: float = 1.0
    step_s: float = 1.0
    bands: tuple[str, ...] = DEFAULT_BAND_NAMES  # names ("alpha") or ranges ("mu=8-12"); see bands.resolve_bands
    feature: Feature = "de"  # "psd" = log10 Welch band power (µV²); "de+psd" = both blocks, DE first
    filter_mode: FilterMode = "trial-zero-phase"  # DE only; Welch works on the raw windows
    filter_order: int = 4
    baseline: BaselineMode = "subtract-mean"  # minus the mean feature of the pre-stimulus windows, per trial
    include_baseline_rows: bool = False  # also write the pre-stimulus windows as rows (negative times)
    peripheral: bool = False  # append window_stats of the peripheral channels (DEAP 33-40) to every row
    welch_segment_s: float = 1.0  # Welch segment length (capped at the window)
    sfreq_hz: float = 128.0  # expected sampling rate; a recording at another rate is refused
    channels: tuple[str, ...] = DEAP_EEG_CHANNELS  # taken by name from the recording, in this order
    peripheral_channels: tuple[str, ...] = DEAP_PERIPHERAL_CHANNELS

    def __post_init__(self) -> None:
        for name in ("bands", "channels", "peripheral_channels"):  # lists from YAML/JSON options
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_filter_mode(self.filter_mode)
        if self.feature not in ("de", "psd", "de+psd"):
            raise ValueError(f"feature {self.feature!r} is not one of 'de', 'psd', 'de+psd'")
        if self.baseline not in ("subtract-mean", "none"):
            raise ValueError(f"baseline {self.baseline!r} is not one of 'subtract-mean', 'none'")
        if self.filter_order < 1:
            raise ValueError(f"filter_order must be >= 1, got {self.filter_order}")
        for name in ("window_s", "step_s", "welch_segment_s"):
            if seconds_to_samples(getattr(self, name), self.sfreq_hz, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.channels:
            raise ValueError("channels is empty")
        resolve_bands(self.bands, self.sfreq_hz)

    @property
    def bands_hz(self) -> dict[str, tuple[float, float]]:
        return resolve_bands(self.bands, self.sfreq_hz)


class _WindowedExtractor(FeatureExtractor):
    """What the raw-signal extractors share: the window grid, baseline windows and row selection."""

    config: Any

    def _grid(self, rec: EegRecording, item: Item) -> WindowGrid:
        cfg = self.config
        if not np.isclose(rec.sfreq, cfg.sfreq_hz):
            raise ValueError(
                f"{item.key}: recording sampled at {rec.sfreq:g} Hz, the extractor is set for {cfg.sfreq_hz:g} Hz; "
                "set sfreq_hz in the extractor config"
            )
        try:
            return stimulus_grid(rec.data.shape[-1], cfg.sfreq_hz, cfg.window_s, cfg.step_s, rec.onset_s)
        except ValueError as exc:
            raise ItemError(f"{item.key}: {exc}") from exc

    def _rows(self, grid: WindowGrid) -> np.ndarray:
        return np.ones(grid.n_windows, bool) if self.config.include_baseline_rows else grid.stimulus

    def _window_args(self, grid: WindowGrid) -> dict[str, int]:
        return {"window_samples": grid.window_samples, "step_samples": grid.step_samples,
                "offset_samples": grid.offset_samples}

    def _stats(self, rec: EegRecording, grid: WindowGrid) -> tuple[np.ndarray, np.ndarray]:
        """Peripheral window stats ``(windows, channels * 5)`` after the baseline policy, and ``(windows,)`` NaN."""
        stats = window_stats(rec.data, grid.sfreq_hz, **self._window_args(grid))
        nonfinite = ~np.isfinite(stats).all(axis=(-1, -2))
        if self.config.baseline == "subtract-mean":
            stats = subtract_baseline(stats, grid.baseline)
            nonfinite |= nonfinite[grid.baseline].any()
        return stats.reshape(grid.n_windows, -1), nonfinite

    def _item_rows(
        self, item: Item, grid: WindowGrid, features: np.ndarray, quality: dict[str, np.ndarray], meta: dict[str, Any]
    ) -> ItemRows:
        keep = self._rows(grid)
        embeddings = features[keep].astype(np.float32)
        if embeddings.shape[0] == 0:
            raise ItemError(f"{item.key}: no window of {self.config.window_s:g} s after the stimulus onset")
        if np.isnan(embeddings).all():
            raise ItemError(f"{item.key}: every channel is flat or non-finite in every window; no feature to write")
        return ItemRows(
            key=item.key,
            embeddings=embeddings,
            subject=item.subject,
            session=item.session,
            trial=item.trial,
            t_start_s=grid.t_start_s[keep],
            t_end_s=grid.t_end_s[keep],
            labels=dict(item.labels),
            quality={name: flags[keep] for name, flags in quality.items()},
            fold=item.fold,
            meta=meta,
        )


@EXTRACTORS.register("eeg", kind="eeg")
class EegFeatureExtractor(_WindowedExtractor):
    """Band features (DE and/or Welch band power) of raw EEG per window; optional peripheral stats appended.

    ``EXTRACTORS.create("eeg", config=EegConfig(...))`` or ``EXTRACTORS.create("eeg", feature="psd")``.
    Row layout: for each feature block, channel-major with band fastest (``Fp1_delta, Fp1_theta, ...``); with
    ``de+psd`` the DE block comes first; peripheral stats (``GSR_mean`` ...) last.
    """

    kind = "eeg"

    def __init__(self, config: EegConfig | None = None, **options: Any) -> None:
        self.config = dataclasses.replace(config or EegConfig(), **options)
        self.bands_hz = self.config.bands_hz

    def manifest_parts(self) -> dict[str, Any]:
        cfg = self.config
        blocks = cfg.feature.split("+")
        names = []
        for block in blocks:
            names += feature_names(cfg.channels, list(self.bands_hz), block if len(blocks) > 1 else "")
        if cfg.peripheral:
            names += feature_names(cfg.peripheral_channels, STAT_NAMES)
        preprocessing: dict[str, Any] = {
            "sfreq_hz": cfg.sfreq_hz,
            "bands_hz": {name: list(edges) for name, edges in self.bands_hz.items()},
            "windows": {"window_s": cfg.window_s, "step_s": cfg.step_s,
                        "clock": "seconds from stimulus onset; grid anchored at the onset",
                        "rows": "all windows" if cfg.include_baseline_rows else "windows starting at or after onset"},
            "baseline": {"mode": cfg.baseline,
                         "windows": "windows wholly before the stimulus onset (DEAP: 3 x 1 s)",
                         "applied_to": "features, per trial, channel and band"},
            "nan_policy": "non-finite or flat (max == min) input -> NaN features, flagged in quality",
        }
        if "de" in blocks:
            preprocessing["de"] = {
                "formula": "0.5 * ln(2 * pi * e * var), var over the window samples, ddof=0",
                "filter": {"design": "scipy.signal.butter(order, band, 'bandpass', fs, output='sos')",
                           "order": cfg.filter_order, "mode": cfg.filter_mode,
                           "zero_phase": "sosfiltfilt over the trial, odd padding, scipy default padlen"},
            }
        if "psd" in blocks:
            preprocessing["psd"] = {"formula": "log10(sum of Welch PSD over low <= f < high * df), input units^2",
                                    "welch": {"window": "hann", "segment_s": min(cfg.welch_segment_s, cfg.window_s),
                                              "overlap": 0.5, "detrend": "constant"}}
        if cfg.peripheral:
            preprocessing["peripheral"] = {"channels": list(cfg.peripheral_channels), "stats": list(STAT_NAMES)}
        return {
            "extractor": f"eeg/{cfg.feature}" + ("+peripheral" if cfg.peripheral else ""),
            "extractor_version": EXTRACTOR_VERSION,
            "dim": len(names),
            "dtype": "float32",
            "config": dataclasses.asdict(cfg),
            "model": {},
            "preprocessing": preprocessing,
            "feature_names": names,
        }

    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        cfg = self.config
        rec = reader.eeg(item)
        data = _pick_channels(rec, cfg.channels, item, "channels")
        if not np.isfinite(data).any():
            raise ItemError(f"{item.key}: the EEG trial is wholly non-finite (NaN/inf)")
        grid = self._grid(rec, item)
        args = self._window_args(grid)
        blocks = []
        for block in cfg.feature.split("+"):
            if block == "de":
                feats = differential_entropy(data, cfg.sfreq_hz, self.bands_hz, **args,
                                             filter_mode=cfg.filter_mode, filter_order=cfg.filter_order)
            else:
                nperseg = seconds_to_samples(min(cfg.welch_segment_s, cfg.window_s), cfg.sfreq_hz)
                with np.errstate(divide="ignore"):
                    feats = np.log10(band_power_welch(data, cfg.sfreq_hz, self.bands_hz, **args, nperseg=nperseg))
            blocks.append(subtract_baseline(feats, grid.baseline, cfg.baseline).reshape(grid.n_windows, -1))
        # DE's whole-trial filter spreads a NaN over its channel; Welch only over its window. Flag the wider.
        modes = {cfg.filter_mode if b == "de" else "window-causal" for b in cfg.feature.split("+")}
        nonfinite = np.zeros((grid.n_windows, data.shape[0]), bool)
        flat = np.zeros_like(nonfinite)
        for mode in modes:
            bad_nan, bad_flat = window_quality(data, **args, filter_mode=mode)
            nonfinite |= bad_nan
            flat |= bad_flat
        input_nan, flat_channel = nonfinite.any(axis=1), flat.any(axis=1)
        if cfg.baseline == "subtract-mean":  # a bad baseline window spoils that channel's features in every row
            input_nan |= nonfinite[grid.baseline].any()
            flat_channel |= flat[grid.baseline].any()
        if cfg.peripheral:
            stats, stats_nan = self._stats(_peripheral_recording(reader, item, rec, cfg.peripheral_channels), grid)
            blocks.append(stats)
            input_nan |= stats_nan
        meta = {"sfreq_hz": float(rec.sfreq), "n_samples": int(data.shape[-1]), "onset_s": float(rec.onset_s)}
        return self._item_rows(item, grid, np.concatenate(blocks, axis=1),
                               {"input_nan": input_nan, "flat_channel": flat_channel}, meta)


@dataclass(frozen=True)
class PeripheralConfig:
    """Window statistics of DEAP's peripheral channels (EOG, EMG, GSR, respiration, plethysmograph, temperature)."""

    window_s: float = 1.0
    step_s: float = 1.0
    baseline: BaselineMode = "subtract-mean"
    include_baseline_rows: bool = False
    sfreq_hz: float = 128.0
    channels: tuple[str, ...] = DEAP_PERIPHERAL_CHANNELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.baseline not in ("subtract-mean", "none"):
            raise ValueError(f"baseline {self.baseline!r} is not one of 'subtract-mean', 'none'")
        for name in ("window_s", "step_s"):
            if seconds_to_samples(getattr(self, name), self.sfreq_hz, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@EXTRACTORS.register("eeg-peripheral", kind="peripheral")
class PeripheralFeatureExtractor(_WindowedExtractor):
    """Per-window mean, std, min, max and slope of each peripheral channel (``GSR_mean``, ...), baseline-handled
    like the EEG features. The recording comes from ``reader.peripheral(item)`` when the reader has it, else the
    channels are taken by name from ``reader.eeg(item)``."""

    kind = "peripheral"

    def __init__(self, config: PeripheralConfig | None = None, **options: Any) -> None:
        self.config = dataclasses.replace(config or PeripheralConfig(), **options)

    def manifest_parts(self) -> dict[str, Any]:
        cfg = self.config
        names = feature_names(cfg.channels, STAT_NAMES)
        return {
            "extractor": "eeg-peripheral/stats",
            "extractor_version": EXTRACTOR_VERSION,
            "dim": len(names),
            "dtype": "float32",
            "config": dataclasses.asdict(cfg),
            "model": {},
            "preprocessing": {"sfreq_hz": cfg.sfreq_hz, "stats": list(STAT_NAMES),
                              "windows": {"window_s": cfg.window_s, "step_s": cfg.step_s},
                              "baseline": {"mode": cfg.baseline, "applied_to": "stats, per trial and channel"}},
            "feature_names": names,
        }

    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        rec = _peripheral_recording(reader, item, None, self.config.channels)
        if not np.isfinite(rec.data).any():
            raise ItemError(f"{item.key}: the peripheral recording is wholly non-finite (NaN/inf)")
        grid = self._grid(rec, item)
        stats, nonfinite = self._stats(rec, grid)
        meta = {"sfreq_hz": float(rec.sfreq), "n_samples": int(rec.data.shape[-1]), "onset_s": float(rec.onset_s)}
        return self._item_rows(item, grid, stats, {"input_nan": nonfinite}, meta)


_PRECOMPUTED_DIMS = {"eeg_de": 310, "eye": 33}


@dataclass(frozen=True)
class PrecomputedConfig:
    """Precomputed per-window features of a reader (SEED-V: DE 310-d and eye movements 33-d, 4 s windows)."""

    kind: Literal["eeg_de", "eye"] = "eeg_de"
    window_s: float = 4.0
    dataset: str = "seedv"

    def __post_init__(self) -> None:
        if self.kind not in _PRECOMPUTED_DIMS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(_PRECOMPUTED_DIMS)}")

    @property
    def dim(self) -> int:
        return _PRECOMPUTED_DIMS[self.kind]


class PrecomputedFeatureExtractor(FeatureExtractor):
    """Passes ``reader.features(item, kind)`` ``(n, dim)`` through as rows: row ``i`` covers
    ``[window_s * i, window_s * (i + 1))`` s. Values are kept as they are (cast to float32); rows holding a
    non-finite value are flagged ``input_nan``."""

    def __init__(self, config: PrecomputedConfig | None = None, **options: Any) -> None:
        self.config = dataclasses.replace(config or PrecomputedConfig(), **options)
        self.kind = self.config.kind

    def manifest_parts(self) -> dict[str, Any]:
        cfg = self.config
        if cfg.kind == "eeg_de":  # 62 channels x 5 bands; channel names and order inside 310 are not verified
            names = feature_names([f"ch{i:02d}" for i in range(1, cfg.dim // 5 + 1)],
                                  ["delta", "theta", "alpha", "beta", "gamma"])
        else:
            names = [f"{cfg.kind}_{i:02d}" for i in range(cfg.dim)]
        layout = ("62 channels x 5 bands (delta 1-4, theta 4-8, alpha 8-14, beta 14-31, gamma 31-50 Hz), "
                  "channel-major, band fastest (as released; order unverified)") if cfg.kind == "eeg_de" else \
            "as released by the dataset"
        return {
            "extractor": f"{cfg.dataset}/{cfg.kind}-precomputed",
            "extractor_version": EXTRACTOR_VERSION,
            "dim": cfg.dim,
            "dtype": "float32",
            "config": dataclasses.asdict(cfg),
            "model": {},
            "preprocessing": {"source": f"{cfg.dataset} released {cfg.kind} features, passed through",
                              "window_s": cfg.window_s, "layout": layout},
            "feature_names": names,
        }

    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        cfg = self.config
        feats = np.asarray(reader.features(item, cfg.kind))
        if feats.ndim != 2 or feats.shape[1] != cfg.dim:
            raise ItemError(f"{item.key}: {cfg.kind} features have shape {feats.shape}, expected (windows, {cfg.dim})")
        if feats.shape[0] == 0:
            raise ItemError(f"{item.key}: no {cfg.kind} windows")
        finite = np.isfinite(feats)
        if not finite.any():
            raise ItemError(f"{item.key}: the {cfg.kind} features are wholly non-finite (NaN/inf)")
        t_start = cfg.window_s * np.arange(feats.shape[0], dtype=np.float64)
        return ItemRows(
            key=item.key,
            embeddings=feats.astype(np.float32),
            subject=item.subject,
            session=item.session,
            trial=item.trial,
            t_start_s=t_start,
            t_end_s=t_start + cfg.window_s,
            labels=dict(item.labels),
            quality={"input_nan": ~finite.all(axis=1)},
            fold=item.fold,
            meta={"window_s": cfg.window_s},
        )


EXTRACTORS.add("seedv-eeg-de", lambda **options: PrecomputedFeatureExtractor(kind="eeg_de", **options),
               kind="eeg_de", dim=310)
EXTRACTORS.add("seedv-eye", lambda **options: PrecomputedFeatureExtractor(kind="eye", **options), kind="eye", dim=33)


def _pick_channels(rec: EegRecording, wanted: Sequence[str], item: Item, option: str) -> np.ndarray:
    """``rec.data`` rows of the ``wanted`` channels, in that order (names compared case-insensitively)."""
    index = {str(name).lower(): i for i, name in enumerate(rec.channel_names)}
    missing = [name for name in wanted if name.lower() not in index]
    if missing:
        raise ValueError(
            f"{item.key}: recording lacks channel(s) {', '.join(missing)}; it has {', '.join(map(str, rec.channel_names))}. "
            f"Set {option} in the extractor config to the channels to use"
        )
    data = np.asarray(rec.data)
    if data.ndim != 2 or data.shape[0] != len(rec.channel_names):
        raise ItemError(f"{item.key}: EEG data has shape {data.shape} for {len(rec.channel_names)} channel names")
    return data[[index[name.lower()] for name in wanted]]


def _peripheral_recording(
    reader: DatasetReader, item: Item, eeg: EegRecording | None, channels: Sequence[str]
) -> EegRecording:
    """The item's peripheral channels: ``reader.peripheral(item)`` if the reader offers it, else the same names
    from ``reader.eeg(item)``; checked against the EEG recording's rate, onset and length when given."""
    source = reader.peripheral(item) if callable(getattr(reader, "peripheral", None)) else (eeg or reader.eeg(item))
    rec = EegRecording(_pick_channels(source, channels, item, "peripheral_channels"), source.sfreq, list(channels),
                       source.onset_s)
    if eeg is not None and (
        not np.isclose(rec.sfreq, eeg.sfreq) or not np.isclose(rec.onset_s, eeg.onset_s)
        or rec.data.shape[-1] != np.asarray(eeg.data).shape[-1]
    ):
        raise ItemError(
            f"{item.key}: peripheral recording ({rec.data.shape[-1]} samples at {rec.sfreq:g} Hz, onset "
            f"{rec.onset_s:g} s) does not match the EEG ({np.asarray(eeg.data).shape[-1]} at {eeg.sfreq:g} Hz, "
            f"onset {eeg.onset_s:g} s)"
        )
    return rec

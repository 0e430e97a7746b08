"""The EEG extractors on synthetic readers: rows, times, labels, quality flags, manifests, peripheral and SEED-V."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import extract.eeg  # noqa: F401  (registers the extractors)
from extract.base import EXTRACTORS, ItemError
from extract.datasets.base import DatasetReader, EegRecording, Item
from extract.eeg.bands import resolve_bands
from extract.eeg.extractor import (
    DEAP_EEG_CHANNELS,
    DEAP_PERIPHERAL_CHANNELS,
    EegConfig,
    EegFeatureExtractor,
    PeripheralFeatureExtractor,
    PrecomputedFeatureExtractor,
)
from extract.eeg.features import band_power_welch, differential_entropy, subtract_baseline, window_stats
from store.schema import Manifest

FS = 128.0
N_SAMPLES = 8064  # DEAP: 63 s at 128 Hz, 3 s baseline


class FakeDeap(DatasetReader):
    """DEAP-shaped trials in memory: ``eeg`` 32 channels, ``peripheral`` 8 channels (or none)."""

    name = "fake-deap"

    def __init__(self, root: Path, trials: dict[str, np.ndarray], peripheral: dict[str, np.ndarray] | None = None,
                 channel_names=DEAP_EEG_CHANNELS, onset_s: float = 3.0) -> None:
        super().__init__(root)
        self.trials, self._peripheral = trials, peripheral
        self.channel_names, self.onset_s = list(channel_names), onset_s

    def _list_items(self) -> list[Item]:
        return [
            Item(key=f"deap/s01/trial{t}", dataset="deap", subject="s01", session=1, trial=t,
                 labels={"valence": 7.5, "arousal": 2.0}, sources={"eeg": "s01.dat"}, fold=3)
            for t in self.trials
        ]

    def eeg(self, item: Item) -> EegRecording:
        return EegRecording(self.trials[item.trial], FS, self.channel_names, self.onset_s)


class FakeDeapWithPeripheral(FakeDeap):
    def peripheral(self, item: Item) -> EegRecording:
        return EegRecording(self._peripheral[item.trial], FS, list(DEAP_PERIPHERAL_CHANNELS), self.onset_s)


def _trial(seed: int, n_channels: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 * rng.standard_normal((n_channels, N_SAMPLES))


@pytest.fixture()
def reader(tmp_path: Path) -> FakeDeap:
    return FakeDeap(tmp_path, {"07": _trial(7), "08": _trial(8)})


def test_deap_trial_gives_60_rows_of_de(reader: FakeDeap) -> None:
    ex = EXTRACTORS.create("eeg")
    item = reader.items()[0]
    rows = ex.extract(reader, item)
    assert rows.key == "deap/s01/trial07" and (rows.subject, rows.session, rows.trial, rows.fold) == ("s01", 1, "07", 3)
    assert rows.embeddings.shape == (60, 160) and rows.embeddings.dtype == np.float32
    np.testing.assert_array_equal(rows.t_start_s, np.arange(60.0))
    np.testing.assert_array_equal(rows.t_end_s, np.arange(1.0, 61.0))
    np.testing.assert_array_equal(rows.labels["valence"], np.full(60, 7.5))
    assert set(rows.quality) == {"input_nan", "flat_channel"} and not any(q.any() for q in rows.quality.values())
    # Row = DE of the trial minus the mean DE of the three baseline windows, channel-major, band fastest.
    de = differential_entropy(reader.trials["07"], FS, resolve_bands(), 128, 128)
    expected = (de[3:] - de[:3].mean(axis=0)).reshape(60, 160)
    np.testing.assert_allclose(rows.embeddings, expected, rtol=1e-6, atol=1e-6)
    parts = ex.manifest_parts()
    assert parts["extractor"] == "eeg/de" and parts["dim"] == 160 and parts["dtype"] == "float32"
    assert parts["feature_names"][:2] == ["Fp1_delta", "Fp1_theta"] and parts["feature_names"][5] == "AF3_delta"
    assert parts["config"]["baseline"] == "subtract-mean" and parts["preprocessing"]["baseline"]["mode"] == "subtract-mean"
    manifest = Manifest(kind=ex.kind, dataset="deap", **parts)
    assert len(manifest.fingerprint()) == 16
    other = Manifest(kind="eeg", dataset="deap", **EXTRACTORS.create("eeg", baseline="none").manifest_parts())
    assert "config.baseline" in manifest.differences(other)


def test_channels_are_taken_by_name(tmp_path: Path) -> None:
    data = _trial(1, 40)
    names = list(DEAP_EEG_CHANNELS) + list(DEAP_PERIPHERAL_CHANNELS)
    order = np.random.default_rng(0).permutation(40)
    shuffled = FakeDeap(tmp_path, {"01": data[order]}, channel_names=[names[i].upper() for i in order])
    plain = FakeDeap(tmp_path, {"01": data[:32]})
    ex = EegFeatureExtractor(filter_mode="window-causal")
    a = ex.extract(shuffled, shuffled.items()[0]).embeddings
    b = ex.extract(plain, plain.items()[0]).embeddings
    np.testing.assert_array_equal(a, b)
    missing = FakeDeap(tmp_path, {"01": data[:31]}, channel_names=DEAP_EEG_CHANNELS[:31])
    with pytest.raises(ValueError, match="lacks channel.*O2.*Set channels"):
        ex.extract(missing, missing.items()[0])


def test_baseline_rows_none_and_no_baseline(reader: FakeDeap, tmp_path: Path) -> None:
    item = reader.items()[0]
    rows = EegFeatureExtractor(include_baseline_rows=True).extract(reader, item)
    assert rows.n_rows == 63 and rows.t_start_s[0] == -3.0 and rows.t_start_s[3] == 0.0
    # The baseline rows average zero after subtracting their mean.
    np.testing.assert_allclose(rows.embeddings[:3].mean(axis=0), 0, atol=1e-5)
    raw = EegFeatureExtractor(baseline="none").extract(reader, item).embeddings
    de = differential_entropy(reader.trials["07"], FS, resolve_bands(), 128, 128)
    np.testing.assert_allclose(raw, de[3:].reshape(60, -1), rtol=1e-6)
    no_baseline = FakeDeap(tmp_path, {"01": _trial(2)[:, :1280]}, onset_s=0.0)
    with pytest.raises(ValueError, match="baseline='none'"):
        EegFeatureExtractor().extract(no_baseline, no_baseline.items()[0])
    assert EegFeatureExtractor(baseline="none").extract(no_baseline, no_baseline.items()[0]).n_rows == 10


def test_de_plus_psd_layout(reader: FakeDeap) -> None:
    ex = EegFeatureExtractor(feature="de+psd", baseline="none")
    parts = ex.manifest_parts()
    assert parts["dim"] == 320 and parts["extractor"] == "eeg/de+psd"
    assert parts["feature_names"][0] == "Fp1_delta_de" and parts["feature_names"][160] == "Fp1_delta_psd"
    rows = ex.extract(reader, reader.items()[0])
    assert rows.embeddings.shape == (60, 320)
    power = band_power_welch(reader.trials["07"], FS, resolve_bands(), 128, 128)
    np.testing.assert_allclose(rows.embeddings[:, 160:], np.log10(power[3:]).reshape(60, -1), rtol=1e-5, atol=1e-5)
    assert EegFeatureExtractor(feature="psd").manifest_parts()["feature_names"][0] == "Fp1_delta"


@pytest.mark.parametrize("mode", ["trial-zero-phase", "window-causal"])
def test_nan_and_flat_rows_are_flagged_not_filled(tmp_path: Path, mode: str) -> None:
    data = _trial(3)
    data[4, 384 + 10 * 128 + 5] = np.nan  # channel FC5, stimulus window 10
    data[9, 384 + 20 * 128:384 + 21 * 128] = 0.0  # channel CP1 flat in stimulus window 20
    reader = FakeDeap(tmp_path, {"01": data})
    rows = EegFeatureExtractor(filter_mode=mode).extract(reader, reader.items()[0])
    nan_rows = np.isnan(rows.embeddings).any(axis=1)
    flagged = rows.quality["input_nan"] | rows.quality["flat_channel"]
    np.testing.assert_array_equal(nan_rows, flagged)  # NaN features <=> a flag says why
    assert rows.quality["flat_channel"].nonzero()[0].tolist() == [20]
    if mode == "window-causal":
        assert rows.quality["input_nan"].nonzero()[0].tolist() == [10]
    else:  # the whole-trial filter spreads the NaN over the channel
        assert rows.quality["input_nan"].all()
    fc5 = slice(4 * 5, 5 * 5)
    assert np.isnan(rows.embeddings[10, fc5]).all() and np.isnan(rows.embeddings[20, 9 * 5:10 * 5]).all()
    assert np.isfinite(np.delete(rows.embeddings, np.r_[fc5, 45:50], axis=1)).all()


def test_bad_baseline_spoils_every_row(tmp_path: Path) -> None:
    data = _trial(4)
    data[0, 100] = np.inf  # Fp1 in the baseline
    reader = FakeDeap(tmp_path, {"01": data})
    rows = EegFeatureExtractor(filter_mode="window-causal").extract(reader, reader.items()[0])
    assert rows.quality["input_nan"].all() and np.isnan(rows.embeddings[:, :5]).all()
    assert np.isfinite(rows.embeddings[:, 5:]).all()


def test_hopeless_trials_raise_item_error(tmp_path: Path) -> None:
    reader = FakeDeap(tmp_path, {"nan": np.full((32, N_SAMPLES), np.nan), "flat": np.ones((32, N_SAMPLES)),
                                 "short": _trial(5)[:, :400]})
    ex = EegFeatureExtractor()
    items = {it.trial: it for it in reader.items()}
    with pytest.raises(ItemError, match="wholly non-finite"):
        ex.extract(reader, items["nan"])
    with pytest.raises(ItemError, match="flat or non-finite"):
        ex.extract(reader, items["flat"])
    with pytest.raises(ItemError, match="no window"):
        ex.extract(reader, items["short"])  # 3.1 s: baseline only


def test_config_is_checked(reader: FakeDeap) -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        EegConfig(window_s=0.3)
    with pytest.raises(ValueError, match="filter_mode"):
        EegConfig(filter_mode="causal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Nyquist"):
        EegConfig(sfreq_hz=64.0)
    with pytest.raises(ValueError, match="set sfreq_hz"):
        EegFeatureExtractor(sfreq_hz=256.0).extract(reader, reader.items()[0])


def test_peripheral_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    periph = rng.standard_normal((8, N_SAMPLES)).cumsum(axis=1)
    reader = FakeDeapWithPeripheral(tmp_path, {"01": _trial(6)}, {"01": periph})
    item = reader.items()[0]
    stats = window_stats(periph, FS, 128, 128)
    expected = subtract_baseline(stats, np.arange(63) < 3)[3:].reshape(60, 40)

    rows = EXTRACTORS.create("eeg-peripheral").extract(reader, item)
    assert rows.embeddings.shape == (60, 40) and rows.t_start_s[0] == 0.0
    np.testing.assert_allclose(rows.embeddings, expected, rtol=1e-5, atol=1e-4)
    names = PeripheralFeatureExtractor().manifest_parts()["feature_names"]
    assert names[:2] == ["hEOG_mean", "hEOG_std"] and "GSR_slope_per_s" in names

    both = EegFeatureExtractor(peripheral=True)
    assert both.manifest_parts()["dim"] == 200 and both.manifest_parts()["extractor"] == "eeg/de+peripheral"
    combined = both.extract(reader, item)
    np.testing.assert_array_equal(combined.embeddings[:, 160:], rows.embeddings)
    np.testing.assert_array_equal(combined.embeddings[:, :160], EegFeatureExtractor().extract(reader, item).embeddings)

    # A reader without peripheral(): the channels come by name from its 40-channel eeg().
    forty = FakeDeap(tmp_path, {"01": np.concatenate([_trial(6), periph])},
                     channel_names=list(DEAP_EEG_CHANNELS) + list(DEAP_PERIPHERAL_CHANNELS))
    np.testing.assert_array_equal(both.extract(forty, forty.items()[0]).embeddings, combined.embeddings)
    # A NaN in the GSR flags its row; the stats of a flat temperature are valid numbers.
    periph[4, 384 + 5 * 128] = np.nan
    periph[7] = 36.5
    rows = EXTRACTORS.create("eeg-peripheral").extract(reader, item)
    assert rows.quality["input_nan"].nonzero()[0].tolist() == [5]
    assert np.isfinite(rows.embeddings[:, 35:40]).all()


class FakeSeedV(DatasetReader):
    name = "fake-seedv"

    def __init__(self, root: Path, feats: dict[str, np.ndarray]) -> None:
        super().__init__(root)
        self.feats = feats

    def _list_items(self) -> list[Item]:
        return [Item(key="seedv/3/s2t05", dataset="seedv", subject="3", session=2, trial="05",
                     labels={"emotion": 4}, fold=1)]

    def features(self, item: Item, kind: str) -> np.ndarray:
        return self.feats[kind]


def test_seedv_precomputed_passthrough(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    de, eye = rng.standard_normal((14, 310)), rng.standard_normal((14, 33))
    eye[6, 3] = np.nan
    reader = FakeSeedV(tmp_path, {"eeg_de": de, "eye": eye})
    item = reader.items()[0]
    rows = EXTRACTORS.create("seedv-eeg-de").extract(reader, item)
    assert rows.embeddings.shape == (14, 310) and rows.embeddings.dtype == np.float32
    np.testing.assert_array_equal(rows.embeddings, de.astype(np.float32))
    np.testing.assert_array_equal(rows.t_start_s, 4.0 * np.arange(14))
    np.testing.assert_array_equal(rows.t_end_s, 4.0 * np.arange(1, 15))
    assert (rows.session, rows.trial, rows.fold) == (2, "05", 1) and (rows.labels["emotion"] == 4).all()
    assert not rows.quality["input_nan"].any()
    eye_ex = EXTRACTORS.create("seedv-eye")
    rows = eye_ex.extract(reader, item)
    assert rows.embeddings.shape == (14, 33) and eye_ex.kind == "eye"
    assert rows.quality["input_nan"].nonzero()[0].tolist() == [6] and np.isnan(rows.embeddings[6, 3])
    parts = EXTRACTORS.create("seedv-eeg-de").manifest_parts()
    assert parts["dim"] == 310 and len(parts["feature_names"]) == 310 and parts["feature_names"][:2] == [
        "ch01_delta", "ch01_theta"]
    assert eye_ex.manifest_parts()["dim"] == 33 and EXTRACTORS.info("seedv-eye") == {"kind": "eye", "dim": 33}
    reader.feats["eeg_de"] = de[:, :300]
    with pytest.raises(ItemError, match=r"shape \(14, 300\), expected \(windows, 310\)"):
        PrecomputedFeatureExtractor(kind="eeg_de").extract(reader, item)
    reader.feats["eye"] = np.full((3, 33), np.nan)
    with pytest.raises(ItemError, match="wholly non-finite"):
        eye_ex.extract(reader, item)


def test_registered_names() -> None:
    for name in ("eeg", "eeg-peripheral", "seedv-eeg-de", "seedv-eye"):
        assert name in EXTRACTORS
    assert EXTRACTORS.create("eeg", feature="psd").config.feature == "psd"
    assert math.isclose(EXTRACTORS.create("eeg", config=EegConfig(step_s=0.5)).config.step_s, 0.5)


def test_options_from_json_build_the_same_extractor() -> None:
    """The job layer builds extractors from JSON options (lists, not tuples); manifests must not depend on that."""
    import json

    options = json.loads(json.dumps({"window_s": 1.0, "step_s": 0.5, "feature": "de", "bands": ["alpha", "mu=8-12"]}))
    ex = EXTRACTORS.create("eeg", **options)
    assert ex.config.bands == ("alpha", "mu=8-12") and ex.config == EegConfig(step_s=0.5, bands=("alpha", "mu=8-12"))
    parts = ex.manifest_parts()
    assert set(parts) <= set(Manifest.__dataclass_fields__) and "library_versions" not in parts
    assert parts["preprocessing"]["bands_hz"] == {"alpha": [8.0, 14.0], "mu": [8.0, 12.0]}
    assert Manifest(kind="eeg", dataset="deap", **parts).fingerprint() == Manifest(
        kind="eeg", dataset="deap", **EegFeatureExtractor(EegConfig(step_s=0.5, bands=("alpha", "mu=8-12"))).manifest_parts()
    ).fingerprint()

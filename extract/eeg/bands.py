"""Frequency bands: names or ranges in, an ordered ``{name: (low_hz, high_hz)}`` out, checked against Nyquist."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# The usual emotion-recognition bands for DEAP's 128 Hz recordings (TorchEEG's, with gamma capped at 45 Hz: DEAP's
# EEG was band-passed 4-45 Hz before release). SEED-V's released DE features use gamma 31-50 Hz at 200 Hz.
DEFAULT_BANDS_HZ: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 14.0),
    "beta": (14.0, 31.0),
    "gamma": (31.0, 45.0),
}
DEFAULT_BAND_NAMES: tuple[str, ...] = tuple(DEFAULT_BANDS_HZ)

BandSpec = str | tuple[float, float] | tuple[str, float, float]
"""One band: a default name (``"alpha"``), a range text (``"8-12"``, ``"mu=8-12"``, ``"mu:8-12"``),
a ``(low_hz, high_hz)`` pair (named ``"8-12Hz"``) or a ``(name, low_hz, high_hz)`` triple."""

_RANGE = re.compile(r"^\s*(?:(?P<name>[A-Za-z_][\w-]*)\s*[=:]\s*)?(?P<low>\d+(?:\.\d*)?)\s*-\s*(?P<high>\d+(?:\.\d*)?)\s*(?:hz)?\s*$",
                    re.IGNORECASE)


class BandError(ValueError):
    """A band that cannot be used: unknown name, empty range, or an edge at or above the Nyquist frequency."""


def resolve_bands(
    spec: Mapping[str, tuple[float, float]] | Iterable[BandSpec] | None = None,
    sfreq_hz: float | None = None,
) -> dict[str, tuple[float, float]]:
    """``{name: (low_hz, high_hz)}`` in the given order; ``None`` gives the five default bands.

    With ``sfreq_hz`` every band must satisfy ``0 < low_hz < high_hz < sfreq_hz / 2`` (a Butterworth band-pass
    needs both edges strictly inside (0, Nyquist)).
    """
    if spec is None:
        items: list[tuple[str, float, float]] = [(n, lo, hi) for n, (lo, hi) in DEFAULT_BANDS_HZ.items()]
    elif isinstance(spec, Mapping):
        items = [(str(n), *_pair(r, str(n))) for n, r in spec.items()]
    elif isinstance(spec, str):
        items = [_one(part) for part in spec.split(",") if part.strip()]
    else:
        items = [_one(s) for s in spec]
    if not items:
        raise BandError("no bands given")
    bands: dict[str, tuple[float, float]] = {}
    for name, low, high in items:
        if name in bands:
            raise BandError(f"band {name!r} is given twice")
        if not 0.0 < low < high:
            raise BandError(f"band {name!r}: need 0 < low < high, got {low:g}-{high:g} Hz")
        bands[name] = (low, high)
    if sfreq_hz is not None:
        check_nyquist(bands, sfreq_hz)
    return bands


def check_nyquist(bands: Mapping[str, tuple[float, float]], sfreq_hz: float) -> None:
    """Raise BandError when a band edge reaches the Nyquist frequency ``sfreq_hz / 2``."""
    nyquist = sfreq_hz / 2.0
    for name, (low, high) in bands.items():
        if high >= nyquist:
            raise BandError(
                f"band {name!r} ({low:g}-{high:g} Hz) reaches the Nyquist frequency {nyquist:g} Hz of a {sfreq_hz:g} Hz "
                f"recording; lower its upper edge below {nyquist:g} Hz (e.g. 'gamma=31-{min(45.0, nyquist - 1):g}')"
            )


def _one(spec: BandSpec) -> tuple[str, float, float]:
    if isinstance(spec, str):
        key = spec.strip()
        if key.lower() in DEFAULT_BANDS_HZ:
            return (key.lower(), *DEFAULT_BANDS_HZ[key.lower()])
        match = _RANGE.match(key)
        if not match:
            known = ", ".join(DEFAULT_BANDS_HZ)
            raise BandError(f"unknown band {spec!r}; use one of {known}, or a range such as 'mu=8-12' or '8-12'")
        low, high = float(match["low"]), float(match["high"])
        return (match["name"] or _range_name(low, high), low, high)
    values = tuple(spec)
    if len(values) == 3 and isinstance(values[0], str):
        return (values[0], *_pair(values[1:], values[0]))
    low, high = _pair(values, str(values))
    return (_range_name(low, high), low, high)


def _pair(values: object, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise BandError(f"band {name!r}: expected (low_hz, high_hz), got {values!r}") from exc
    return low, high


def _range_name(low: float, high: float) -> str:
    return f"{low:g}-{high:g}Hz"

"""Windows over the last (samples) axis, and their times on the trial's stimulus clock.

Times are seconds from the stimulus onset: DEAP's 3 s pre-trial baseline gives windows with negative times and the
first stimulus window starts at exactly 0.0 s. The window grid is anchored at the onset (a window always starts at
the onset), so EEG rows line up with face frames of the same seconds whatever the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Times are rounded to the nanosecond so that k * step_s - onset_s lands exactly on 0.0 (and on other round values)
# instead of +-4e-16; no sampling rate resolves anything finer.
_TIME_DECIMALS = 9


def seconds_to_samples(seconds: float, sfreq_hz: float, what: str = "duration") -> int:
    """``seconds * sfreq_hz`` as an int; raises ValueError when it is not a whole number of samples."""
    exact = seconds * sfreq_hz
    samples = round(exact)
    if not math.isclose(exact, samples, rel_tol=0.0, abs_tol=1e-6):
        raise ValueError(
            f"{what} of {seconds:g} s is {exact:g} samples at {sfreq_hz:g} Hz, not a whole number; "
            f"choose a multiple of {1 / sfreq_hz:g} s"
        )
    return samples


def count_windows(n_samples: int, window_samples: int, step_samples: int) -> int:
    """How many whole windows fit: ``(n_samples - window_samples) // step_samples + 1`` (0 if none)."""
    if window_samples <= 0 or step_samples <= 0:
        raise ValueError(f"window and step must be positive, got {window_samples} and {step_samples} samples")
    return 0 if n_samples < window_samples else (n_samples - window_samples) // step_samples + 1


def sliding_windows(x: np.ndarray, window_samples: int, step_samples: int) -> np.ndarray:
    """A read-only strided view ``(..., n_windows, window_samples)`` of ``x`` ``(..., samples)``: no copy.

    Window ``k`` covers samples ``[k * step_samples, k * step_samples + window_samples)``; a tail shorter than a
    window is dropped.
    """
    x = np.asarray(x)
    n = count_windows(x.shape[-1], window_samples, step_samples)
    if n == 0:
        raise ValueError(f"{x.shape[-1]} samples hold no window of {window_samples} samples")
    view = np.lib.stride_tricks.sliding_window_view(x, window_samples, axis=-1)
    return view[..., ::step_samples, :]


def window_times(
    n_windows: int, window_s: float, step_s: float, onset_s: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(t_start_s, t_end_s)`` of ``n_windows`` windows, with ``onset_s`` the stimulus onset measured from the
    start of the first window: window ``k`` starts at ``k * step_s - onset_s`` on the stimulus clock."""
    t_start = np.round(np.arange(n_windows) * step_s - onset_s, _TIME_DECIMALS) + 0.0  # + 0.0: no -0.0
    t_end = np.round(t_start + window_s, _TIME_DECIMALS) + 0.0
    return t_start, t_end


@dataclass(frozen=True)
class WindowGrid:
    """Where the windows of one recording lie: window ``k`` covers samples
    ``[offset_samples + k * step_samples, ... + window_samples)``, i.e. ``[t_start_s[k], t_end_s[k])``."""

    sfreq_hz: float
    window_samples: int
    step_samples: int
    offset_samples: int
    n_windows: int
    t_start_s: np.ndarray
    t_end_s: np.ndarray

    @property
    def baseline(self) -> np.ndarray:
        """(n_windows,) bool: windows wholly before the stimulus onset (DEAP: the three 1 s baseline windows)."""
        return self.t_end_s <= 0.0

    @property
    def stimulus(self) -> np.ndarray:
        """(n_windows,) bool: windows starting at or after the onset (DEAP: 60 windows of 1 s)."""
        return self.t_start_s >= 0.0


def stimulus_grid(n_samples: int, sfreq_hz: float, window_s: float, step_s: float, onset_s: float = 0.0) -> WindowGrid:
    """The window grid of a recording of ``n_samples`` whose stimulus starts ``onset_s`` seconds after its first
    sample, anchored so that one window starts exactly at the onset. Samples before the earliest whole window that
    fits the grid are skipped (``offset_samples``); so is a tail shorter than a window."""
    window = seconds_to_samples(window_s, sfreq_hz, "window_s")
    step = seconds_to_samples(step_s, sfreq_hz, "step_s")
    onset = seconds_to_samples(onset_s, sfreq_hz, "onset_s")
    if onset < 0 or onset > n_samples:
        raise ValueError(f"onset_s={onset_s:g} lies outside the {n_samples / sfreq_hz:g} s recording")
    offset = onset % step
    n = count_windows(n_samples - offset, window, step)
    if n == 0:
        raise ValueError(f"a {n_samples / sfreq_hz:g} s recording holds no window of {window_s:g} s")
    t_start, t_end = window_times(n, window_s, step_s, (onset - offset) / sfreq_hz)
    return WindowGrid(sfreq_hz, window, step, offset, n, t_start, t_end)

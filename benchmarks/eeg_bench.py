"""Differential entropy for a DEAP-shaped array: the vectorised functions against the per-window, per-channel loop.

DEAP: 32 subjects x 40 trials x 32 channels x 8064 samples (63 s at 128 Hz), 1 s windows -> 63 windows x 5 bands.
Random data, generated subject by subject (one subject is 40 x 32 x 8064 values; the whole set would be 2.6 GB in
float64), so memory stays bounded. Generation is not timed.

The loop is what TorchEEG's ``BandDifferentialEntropy`` does: for every window, channel and band it designs the
Butterworth filter (``butter(order, [low/nyq, high/nyq], btype="band")``), runs ``lfilter`` on the window and
takes ``0.5 * ln(2 pi e var)``. It is timed on a few trials and scaled to the whole set. Its output is the
``"window-causal"`` mode's (checked below); ``"trial-zero-phase"`` is the default mode and is reported beside it.

    python benchmarks/eeg_bench.py            # full DEAP shape (about a minute)
    python benchmarks/eeg_bench.py --subjects 2 --trials 4   # smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extract.eeg.bands import resolve_bands  # noqa: E402
from extract.eeg.features import differential_entropy  # noqa: E402

SFREQ_HZ = 128.0
MODES = ("trial-zero-phase", "window-causal")


def loop_de(trial: np.ndarray, bands: dict[str, tuple[float, float]], window: int, order: int) -> np.ndarray:
    """The per-window, per-channel loop that designs its filter on every call: (windows, channels, bands)."""
    n_ch, n_samples = trial.shape
    n_win = (n_samples - window) // window + 1
    out = np.empty((n_win, n_ch, len(bands)))
    nyq = SFREQ_HZ / 2
    for k in range(n_win):
        for c in range(n_ch):
            w = trial[c, k * window:(k + 1) * window]
            for b, (low, high) in enumerate(bands.values()):
                num, den = signal.butter(order, [low / nyq, high / nyq], btype="band")
                out[k, c, b] = 0.5 * math.log(2 * math.pi * math.e * np.var(signal.lfilter(num, den, w)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8064)
    parser.add_argument("--loop-trials", type=int, default=3,
                        help="trials (one per subject, spread over the run) the loop is timed on, then scaled")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="DEAP .dat is float64")
    parser.add_argument("--order", type=int, default=4)
    args = parser.parse_args(argv)

    bands = resolve_bands(None, SFREQ_HZ)
    window = int(SFREQ_HZ)
    n_trials = args.subjects * args.trials
    n_win = (args.samples - window) // window + 1
    print(f"DE benchmark: {args.subjects} subjects x {args.trials} trials x {args.channels} channels x "
          f"{args.samples} samples ({args.dtype}) at {SFREQ_HZ:g} Hz, {n_win} windows of 1 s x {len(bands)} bands, "
          f"Butterworth order {args.order}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")

    # The loop runs on one trial of a few subjects spread over the run, so that it shares the machine's load
    # (other jobs come and go) with the vectorised runs around it.
    loop_subjects = set(np.linspace(0, args.subjects - 1, min(args.loop_trials, args.subjects)).round().astype(int))
    totals = dict.fromkeys(MODES, 0.0)
    loop_time, diffs = 0.0, []
    load_start = os.getloadavg()[0]
    for subject in range(args.subjects):
        rng = np.random.default_rng(subject)
        x = (20.0 * rng.standard_normal((args.trials, args.channels, args.samples))).astype(args.dtype)
        for mode in MODES:
            start = time.perf_counter()
            de = differential_entropy(x, SFREQ_HZ, bands, window, window, filter_mode=mode, filter_order=args.order)
            totals[mode] += time.perf_counter() - start
            assert de.shape == (args.trials, n_win, args.channels, len(bands))
        if subject in loop_subjects:
            start = time.perf_counter()
            loop = loop_de(np.asarray(x[0], np.float64), bands, window, args.order)
            loop_time += time.perf_counter() - start
            diffs.append(np.abs(de[0] - loop).max(axis=(0, 1)))  # de: the window-causal output
    load_end = os.getloadavg()[0]
    loop_trials = len(loop_subjects)
    loop_per_trial = loop_time / loop_trials
    loop_total = loop_per_trial * n_trials
    diff = np.max(diffs, axis=0)

    calls = loop_trials * n_win * args.channels * len(bands)
    print(f"load average (1 min) {load_start:.1f} at the start, {load_end:.1f} at the end, on {os.cpu_count()} CPUs")
    print(f"\nloop: {calls} filter designs + lfilter calls on {loop_trials} trial(s), "
          f"{loop_per_trial * 1e3:.0f} ms per trial ({loop_per_trial / (n_win * args.channels * len(bands)) * 1e6:.0f} "
          f"us per call) -> {loop_total:.0f} s estimated for {n_trials} trials")
    print(f"{'mode':<18}{'total s':>10}{'per subject s':>15}{'loop est. s':>13}{'speed-up':>11}")
    for mode in MODES:
        print(f"{mode:<18}{totals[mode]:>10.2f}{totals[mode] / args.subjects:>15.3f}{loop_total:>13.0f}"
              f"{loop_total / totals[mode]:>10.0f}x")
    print("window-causal vs loop, max |DE difference| per band (nats): "
          + ", ".join(f"{name} {d:.1e}" for name, d in zip(bands, diff, strict=True))
          + "  (the loop's (b, a) polynomials round worse in the narrow low bands)")
    best = loop_total / totals["trial-zero-phase"]
    print(f"target >= 100x for the default mode: {'met' if best >= 100 else 'NOT met'} ({best:.0f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

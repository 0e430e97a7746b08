"""Fusion on DEAP-sized cached stores vs extracting those features again.

Writes planted-signal stores of DEAP's face-video size through the store API (22 subjects x 40 trials x 60 s:
EEG 128-d on 1 s windows = 52,800 rows; face 768-d at 5 fps = 264,000 rows, float16 like a real CLIP store),
then times complete ``pipeline fuse`` runs (read stores -> align -> LOSO, 22 folds -> results directory) with
logistic regression (early fusion and face-only) and with late fusion. The cost of extracting those features again
is estimated from frames/s: the measured one in benchmarks/results/extract_bench.json when present (the extract
benchmark's backbone, usually the tiny test backbone), and an assumed one for a real CLIP ViT-L/14 run (printed).

Usage: python benchmarks/fuse_bench.py [--subjects 22] [--trials 40] [--seconds 60] [--runs early,face,late]
       [--granularity window] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fuse.config import FuseConfig  # noqa: E402
from fuse.run import run_fuse  # noqa: E402
from fuse.synthetic import Planted, write_planted_stores  # noqa: E402

EXTRACT_RESULTS = ROOT / "benchmarks" / "results" / "extract_bench.json"
# Assumed end-to-end face extraction rates (detect + align + embed), frames/s, for the estimate when nothing better
# is measured: CLIP ViT-L/14 + MTCNN on one CPU core pair, and on one modern GPU. Stated, not measured here.
ASSUMED_FPS = {"CLIP ViT-L/14 on 2 CPU cores (assumed)": 2.0, "CLIP ViT-L/14 on one GPU (assumed)": 150.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=22)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--runs", default="early,face,late", help="strategies to time (logreg classifier)")
    parser.add_argument("--granularity", default="window", choices=["window", "trial"])
    parser.add_argument("--keep", type=Path, default=None, help="keep stores and results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = args.keep or Path(tempfile.mkdtemp(prefix="fuse-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    planted = Planted(n_subjects=args.subjects, n_trials=args.trials, n_windows=args.seconds, eeg_dim=128,
                      face_dim=768, fps=5.0, eeg_signal=0.03, face_signal=0.01, seed=0)
    frames = args.subjects * args.trials * args.seconds * 5
    t0 = time.perf_counter()
    eeg_store, face_store = write_planted_stores(work / "cache", planted, dtype="float16")
    write_s = time.perf_counter() - t0
    size_mib = sum(f.stat().st_size for f in (work / "cache").rglob("*") if f.is_file()) / 2**20
    print(f"stores: {args.subjects} subjects x {args.trials} trials x {args.seconds} s; EEG "
          f"{args.subjects * args.trials * args.seconds} rows x 128, face {frames} rows x 768 (float16); "
          f"{size_mib:.0f} MiB on disk; generated + written in {write_s:.1f} s")

    timings = {}
    for strategy in [s for s in args.runs.split(",") if s]:
        cfg = FuseConfig(stores=(str(eeg_store), str(face_store)), strategy=strategy, classifier="logreg",
                         protocol="loso", granularity=args.granularity, save_final=False,
                         out=str(work / "results" / strategy))
        t0, c0 = time.perf_counter(), time.process_time()
        result = run_fuse(cfg)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        m = result.metrics
        timings[strategy] = total
        stages = ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in m["timing_s"].items())
        print(f"{strategy:6s} logreg LOSO ({m['n_folds']} folds, {m['rows']['used']} {args.granularity} rows): "
              f"{total:6.1f} s wall, {cpu:6.1f} s CPU  [{stages}]  acc {m['fold_mean']['accuracy']:.3f} vs baseline "
              f"{m['baseline']['fold_mean']['accuracy']:.3f}")

    estimates = dict(ASSUMED_FPS)
    if EXTRACT_RESULTS.is_file():
        rec = json.loads(EXTRACT_RESULTS.read_text())
        fps = float(rec["pipeline"]["frames_per_s"])
        estimates = {f"measured by extract_bench ({rec.get('detector')} + {rec.get('backbone')}, "
                     f"{rec.get('device')})": fps, **estimates}
    else:
        print(f"(no {EXTRACT_RESULTS.relative_to(ROOT)}: run benchmarks/extract_bench.py for a measured rate)")
    print(f"\nre-extracting the face features = {frames} frames (detect + align + embed); EEG extraction not counted")
    slowest = max(timings.values()) if timings else float("nan")
    print(f"{'extraction rate':66s} {'frames/s':>9s} {'extract':>10s} {'÷ fuse (slowest run)':>21s}")
    for name, fps in estimates.items():
        extract_s = frames / fps
        print(f"{name:66s} {fps:9.1f} {extract_s:9.0f}s {extract_s / slowest:20.0f}x")
    print(f"{os.cpu_count()} CPU core(s), load average {os.getloadavg()[0]:.1f} at the end (wall times stretch when "
          "other work shares the cores; CPU seconds do not); target: each LOSO run < 30 s on 2 cores")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()

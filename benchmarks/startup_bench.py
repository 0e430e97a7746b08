"""Startup time of the CLI: ``pipeline --help``, ``pipeline info`` and ``pipeline models ls``, this checkout
against a baseline checkout (``--baseline DIR``, e.g. a ``git worktree`` of an older commit), side by side.

    python benchmarks/startup_bench.py --baseline /tmp/base --repeat 3

Each command runs in a fresh interpreter (``python -m pipelines.cli ...`` with PYTHONPATH set to the checkout);
the median wall time of ``--repeat`` runs is printed, with the ratio baseline / this checkout. Then the time to
the first line the long commands (extract, fuse, finetune, predict) print, on inputs that do not exist (the
process is stopped once the line is out; the issue's target: within 2 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (("--help",), ("info",), ("models", "ls"))
FIRST_LINE = (("extract", "--dataset", "deap", "--root", "/nonexistent/DEAP", "--dry-run"),
              ("fuse", "--cache", "/nonexistent/cache"), ("finetune", "--store", "/nonexistent/crops.zarr"),
              ("predict", "--video", "/nonexistent/clip.mp4", "--model", "fer2013"))
ROOT = Path(__file__).resolve().parents[1]


def _cli_env(checkout: Path) -> dict[str, str]:
    """The environment a timed ``pipeline`` runs in: ``checkout``'s code, offline."""
    return dict(os.environ, PYTHONPATH=str(checkout), HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))


def time_command(checkout: Path, args: tuple[str, ...], repeat: int) -> float:
    """Median seconds of ``python -m pipelines.cli ARGS`` run from ``checkout``."""
    env = _cli_env(checkout)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=checkout, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{checkout}: pipeline {' '.join(args)} exited {proc.returncode}: {proc.stderr[-300:]}")
    return statistics.median(times)


def first_line_s(checkout: Path, args: tuple[str, ...], repeat: int) -> float:
    """Median seconds until ``python -m pipelines.cli ARGS`` writes its first line (stdout or stderr)."""
    env = _cli_env(checkout)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=checkout, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()
        times.append(time.perf_counter() - start)
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'command':<22}{'this (s)':>10}" + (f"{'baseline (s)':>14}{'ratio':>8}" if args.baseline else ""))
    for cmd in COMMANDS:
        now = time_command(ROOT, cmd, args.repeat)
        line = f"{'pipeline ' + ' '.join(cmd):<22}{now:>10.2f}"
        if args.baseline:
            base = time_command(args.baseline.resolve(), cmd, args.repeat)
            line += f"{base:>14.2f}{base / now:>7.1f}x"
        print(line, flush=True)
    for cmd in FIRST_LINE:
        now = first_line_s(ROOT, cmd, args.repeat)
        line = f"{'first line: ' + cmd[0]:<22}{now:>10.2f}"
        if args.baseline:
            base = first_line_s(args.baseline.resolve(), cmd, args.repeat)
            line += f"{base:>14.2f}{base / now:>7.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()

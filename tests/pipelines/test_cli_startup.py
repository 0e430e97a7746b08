"""Startup as a user sees it: every long command says what it is doing before its heavy imports (torch, sklearn,
scipy ...), and `pipeline info | grep torch` works without importing torch. Times are measured in
benchmarks/startup_bench.py, not here; these tests check the order of events, which does not depend on load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sklearn", "scipy", "matplotlib", "transformers", "dask", "distributed", "cv2")

# Runs the CLI with an import hook that, at the first heavy import, writes a marker to stderr and ends the process:
# what the command printed before that point is what a user sees during the seconds the import takes.
PROBE = f"""
import importlib.machinery, os, sys
class _Stop:
    def __init__(self, name): self.name = name
    def create_module(self, spec):
        sys.stdout.flush(); sys.stderr.write("HEAVY-IMPORT " + self.name + "\\n"); sys.stderr.flush(); os._exit(0)
    def exec_module(self, module): pass
class _Probe:
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, _Stop(name)) if name in {HEAVY!r} else None
sys.meta_path.insert(0, _Probe())
from pipelines.cli import main
main(sys.argv[1:])
"""


def run_probed(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args", [
    ["extract", "--dataset", "deap", "--root", "/nonexistent/DEAP", "--dry-run"],
    ["fuse", "--cache", "/nonexistent/cache"],
    ["finetune", "--store", "/nonexistent/crops.zarr"],
    ["predict", "--video", "/nonexistent/clip.mp4", "--model", "fer2013"],
], ids=lambda a: a[0])
def test_long_commands_print_a_first_line_before_heavy_imports(args: list[str]) -> None:
    proc = run_probed(*args)
    lines = proc.stderr.splitlines()
    marker = next((i for i, line in enumerate(lines) if line.startswith("HEAVY-IMPORT ")), None)
    assert marker is not None, proc.stderr  # the command does go on to import its heavy parts
    before = [line for line in lines[:marker] if line.strip()]
    assert before and f"INFO {args[0]}: " in before[0], proc.stderr
    assert next(a for a in args if a.startswith("/nonexistent")) in before[0]  # it names what it works on


def test_info_reports_to_stdout_without_importing_torch() -> None:
    proc = run_probed("info", "--no-hub-check")  # stdout is a pipe here, as in `pipeline info | grep torch`
    assert proc.returncode == 0 and "HEAVY-IMPORT" not in proc.stderr, proc.stderr
    torch_lines = [line for line in proc.stdout.splitlines() if line.startswith("torch")]
    assert {line.split()[0] for line in torch_lines} >= {"torch", "torch_cuda_build"}, proc.stdout
    assert "torch" not in proc.stderr

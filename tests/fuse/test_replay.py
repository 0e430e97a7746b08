"""Replaying a results directory's config.yaml: absolute store paths, fingerprints checked, refusals that name
the store and the differing fields; results directories never replaced silently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fuse.synthetic import Planted, write_planted_stores
from pipelines.cli import app

runner = CliRunner()
FAST = ["--strategy", "eeg", "--granularity", "trial", "--no-save-final"]


def test_replay_from_another_directory_reads_the_recorded_stores(store_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    shutil.copytree(store_dir, work / "cache")
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["fuse", "--cache", "cache", *FAST, "--out", "results/run"])
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((work / "results/run/config.yaml").read_text())
    assert all(Path(p).is_absolute() for p in recorded["stores"]) and Path(recorded["cache"]).is_absolute()
    assert recorded["expect_stores"]["eeg"]["fingerprint"]
    # elsewhere, a relative ./cache with other stores must not be read
    other = tmp_path / "other"
    write_planted_stores(other / "cache", Planted(seed=5))
    monkeypatch.chdir(other)
    result = runner.invoke(app, ["fuse", "--config", str(work / "results/run/config.yaml"), "--out", "again"])
    assert result.exit_code == 0, result.output
    first = json.loads((work / "results/run/metrics.json").read_text())
    second = json.loads((other / "again/metrics.json").read_text())
    assert first["fold_mean"] == second["fold_mean"]


def test_replay_refuses_a_store_made_another_way(store_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(store_dir, cache)
    out = tmp_path / "run"
    assert runner.invoke(app, ["fuse", "--cache", str(cache), *FAST, "--out", str(out)]).exit_code == 0
    eeg_path = next(p for p in cache.iterdir() if "eeg" in p.name)
    made_otherwise, _ = write_planted_stores(tmp_path / "otherwise", Planted(seed=1), dtype="float16")
    shutil.rmtree(eeg_path)
    shutil.copytree(made_otherwise, eeg_path)
    result = runner.invoke(app, ["fuse", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again")])
    assert result.exit_code == 2, result.output
    assert str(eeg_path.resolve()) in result.output and "dtype" in result.output
    assert "input_fingerprint" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "again").exists()
    shutil.rmtree(eeg_path)  # a moved store is named too
    result = runner.invoke(app, ["fuse", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again")])
    assert result.exit_code == 2 and "is not there" in result.output


def test_results_dir_is_refused_unless_overwrite(store_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["fuse", "--cache", str(store_dir), *FAST, "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "metrics.json").stat().st_mtime_ns
    result = runner.invoke(app, [*args, "--seed", "3"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "metrics.json").stat().st_mtime_ns == before
    assert runner.invoke(app, [*args, "--seed", "3", "--overwrite"]).exit_code == 0
    assert json.loads((out / "metrics.json").read_text())["seed"] == 3

"""`pipeline results compare`: runs labelled by the modalities they used, row counts, csv/md/json export; the
per-subject plot stays readable with thousands of subjects."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from fuse.results import plot_subjects
from pipelines.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("results")
    out = {}
    for strategy in ("face", "eeg", "early"):
        out[strategy] = base / strategy
        result = runner.invoke(app, ["fuse", "--cache", str(store_dir), "--strategy", strategy, "--granularity",
                                     "trial", "--no-save-final", "--out", str(out[strategy])])
        assert result.exit_code == 0, result.output
    return out


def test_compare_labels_runs_by_the_modalities_they_used_and_exports(runs: dict[str, Path]) -> None:
    dirs = [str(runs[s]) for s in ("face", "eeg", "early")]
    result = runner.invoke(app, ["results", "compare", *dirs, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["run"]: r for r in json.loads(result.stdout)}
    assert rows["face"]["features"] == "synthetic/face (in EEG windows)"
    assert rows["eeg"]["features"] == "synthetic/eeg"
    assert rows["early"]["features"] == "synthetic/eeg + synthetic/face"
    metrics = json.loads((runs["eeg"] / "metrics.json").read_text())
    assert rows["eeg"]["rows"] == metrics["rows"]["used"] > 0 and rows["eeg"]["rows_total"] == metrics["rows"]["total"]
    csv = runner.invoke(app, ["results", "compare", *dirs, "--format", "csv", "--sort", "acc"])
    table = pd.read_csv(io.StringIO(csv.stdout))
    assert list(table["acc"]) == sorted(table["acc"], reverse=True) and "rows" in table
    md = runner.invoke(app, ["results", "compare", *dirs, "--format", "md"]).stdout
    assert md.splitlines()[0].startswith("| run | features") and "| face | synthetic/face (in EEG windows) |" in md
    bad = runner.invoke(app, ["results", "compare", *dirs, "--format", "xml"])
    assert bad.exit_code == 2 and "--format" in bad.output


def test_per_subject_plot_aggregates_many_subjects(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    per_subject = pd.DataFrame({"subject": [f"clip{i:05d}" for i in range(n)], "accuracy": rng.random(n),
                                "baseline_accuracy": rng.random(n)})
    plot_subjects(per_subject, tmp_path / "many.png", "many")
    plot_subjects(per_subject.head(12), tmp_path / "few.png", "few")
    with Image.open(tmp_path / "many.png") as many, Image.open(tmp_path / "few.png") as few:
        assert many.size[0] <= 1000 and few.size[0] <= 1000


def test_a_damaged_metrics_file_is_named_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    (tmp_path / "metrics.json").write_text('{"fold_mean": ')  # cut short by a full disk or a kill
    result = CliRunner().invoke(app, ["results", "compare", str(tmp_path)])
    assert result.exit_code == 2 and "metrics.json: not valid JSON" in " ".join(result.output.split())

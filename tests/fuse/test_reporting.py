"""What a researcher reads from the CLI: `--track mlflow` into the default local file store (read back with mlflow's
own client), and `results show` with the mean ± std over subjects and the single-class folds flagged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from pipelines.cli import app


def test_cli_track_mlflow_logs_into_the_default_file_store(store_dir: Path, tmp_path: Path) -> None:
    import mlflow  # a test dependency (setup.cfg [test])

    out = tmp_path / "results" / "eeg"
    res = CliRunner().invoke(app, ["fuse", "--stores", str(store_dir / "deap-eeg"), "--strategy", "eeg",
                                   "--granularity", "trial", "--track", "mlflow", "--no-save-final", "--out",
                                   str(out)])
    assert res.exit_code == 0, res.output
    client = mlflow.tracking.MlflowClient(tracking_uri=(tmp_path / "results" / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("mmer-pipeline").experiment_id])
    metrics = json.loads((out / "metrics.json").read_text())
    assert run.data.params["granularity"] == "trial" and run.data.tags["results_dir"] == str(out.resolve())
    assert math.isclose(run.data.metrics["subjects.accuracy_std"], metrics["across_subjects"]["accuracy_std"])
    assert {"per_subject.png", "per_fold.csv", "config.yaml"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_results_show_prints_the_spread_over_subjects_and_flags_single_class_folds(store_dir: Path,
                                                                                   tmp_path: Path) -> None:
    out = tmp_path / "kfold"
    res = CliRunner().invoke(app, ["fuse", "--stores", str(store_dir / "deap-eeg"), "--strategy", "eeg",
                                   "--granularity", "trial", "--protocol", "kfold", "--k", "8", "--no-save-final",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    shown = CliRunner().invoke(app, ["results", "show", str(out), "--no-folds"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    metrics = json.loads((out / "metrics.json").read_text())
    spread = metrics["across_subjects"]
    per_subject = pd.read_csv(out / "per_subject.csv")
    assert math.isclose(spread["accuracy_std"], per_subject["accuracy"].std(ddof=0), rel_tol=1e-6)
    assert (f"across {spread['n_subjects']} subjects: accuracy {100 * spread['accuracy_mean']:.1f} ± "
            f"{100 * spread['accuracy_std']:.1f} %") in shown.output
    single = metrics["single_class_folds"]
    per_fold = pd.read_csv(out / "per_fold.csv")
    assert len(single) == len(per_fold) == 48  # one test trial per fold: every fold has a single test class
    assert f"{len(single)} fold(s) with a single class" in shown.output

"""`pipeline fuse` and `pipeline results show|compare` on stores written through the store API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_fuse_show_compare_and_reproduce(store_dir: Path, tmp_path: Path) -> None:
    from store import list_stores, open_store

    late, eeg = tmp_path / "late", tmp_path / "eeg"
    out = invoke("fuse", "--cache", str(store_dir), "--strategy", "late", "--protocol", "loso", "--out", str(late))
    assert "baseline" in out
    stores = sorted(str(p) for p in list_stores(store_dir))
    eeg_store = next(p for p in stores if "eeg" in Path(p).name)
    invoke("fuse", "--stores", eeg_store, "--strategy", "eeg", "--granularity", "trial", "--out", str(eeg))
    recorded = json.loads((late / "stores.json").read_text())
    assert {v["fingerprint"] for v in recorded.values()} == {str(open_store(p).fingerprint) for p in stores}
    shown = invoke("results", "show", str(late))
    assert "UAR" in shown and "s01" in shown
    compared = invoke("results", "compare", str(late), str(eeg), "--sort", "acc")
    assert "late" in compared and "eeg" in compared and "loso" in compared
    again = tmp_path / "again"
    invoke("fuse", "--config", str(late / "config.yaml"), "--out", str(again))
    first = json.loads((late / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert first["fold_mean"] == second["fold_mean"] and first["confusion_matrix"] == second["confusion_matrix"]


def test_fusion_runs_with_the_dataset_root_deleted(store_dir: Path, tmp_path: Path) -> None:
    from store import list_stores, open_store

    roots = {open_store(p).manifest.dataset_root for p in list_stores(store_dir)}
    for root in roots:
        assert root and Path(root).is_dir()
        shutil.rmtree(root)
    invoke("fuse", "--cache", str(store_dir), "--strategy", "early", "--protocol", "kfold", "--k", "4",
           "--out", str(tmp_path / "r"))
    assert (tmp_path / "r" / "metrics.json").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "early", "--classifier", "transformer"], "needs the transformer strategy"),
    (["--target", "happiness"], "labels available"),
    (["--protocol", "dfew"], "needs the store's fold column"),
    (["--protocol", "cross-session"], "at least two sessions"),
    (["--max-pitch", "120"], "max_pitch must be in [0, 90]"),  # each face-quality option reaches FuseConfig
    (["--min-face-px", "-3"], "min_face_px must be >= 0"),
])
def test_bad_requests_exit_2_with_a_reason(store_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["fuse", "--cache", str(store_dir), "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())  # log lines wrap at the terminal width


def test_results_show_refuses_a_non_results_dir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["results", "show", str(tmp_path)])
    assert result.exit_code == 2 and "metrics.json" in result.output

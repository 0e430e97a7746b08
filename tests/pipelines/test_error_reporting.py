"""Bad input is a one-line error (exit 2); a bug keeps its traceback: in `pipeline fuse` and in the extract worker."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extract.base import ItemError
from fuse.errors import FuseInputError
from fuse.synthetic import Planted, write_planted_stores
from pipelines.cli import app
from pipelines.jobs.worker import WorkerContext

runner = CliRunner()
FAST = ["--strategy", "eeg", "--classifier", "logreg", "--protocol", "kfold", "--k", "2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cache")
    write_planted_stores(directory, Planted(n_subjects=2, n_trials=4, n_windows=3))
    return directory


@pytest.mark.parametrize("bug", [ValueError("shapes (3,) and (4,) not aligned"),
                                 RuntimeError("CUDA error: an illegal memory access")])
def test_a_bug_deep_in_training_is_not_reported_as_bad_input(cache: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise bug

    monkeypatch.setattr("fuse.run.make_splits", broken)
    result = runner.invoke(app, ["fuse", "--cache", str(cache), *FAST, "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and result.exception is bug  # propagates with its traceback, not exit 2
    assert result.exception.__traceback__ is not None


def test_bad_input_raised_deep_in_a_run_is_one_line_exit_2(cache: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise FuseInputError("the protocol produced no split for these rows")

    monkeypatch.setattr("fuse.run.make_splits", refuse)
    result = runner.invoke(app, ["fuse", "--cache", str(cache), *FAST, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "no split for these rows" in result.output and "Traceback" not in result.output


def test_a_missing_extra_is_one_line_exit_2(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    result = runner.invoke(app, ["fuse", "--cache", str(cache), *FAST, "--track", "mlflow",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "pip install 'mmer-pipeline[mlflow]'" in " ".join(result.output.split())


class _Rows:
    def __init__(self, key: str) -> None:
        self.key, self.n_rows = key, 0


class _Writer:
    def __init__(self) -> None:
        self.failed: dict[str, str] = {}

    def mark_failed(self, key: str, error: str, timing_s: float | None = None) -> None:
        self.failed[key] = error

    def write_item(self, rows: object, timing_s: float | None = None) -> None:
        pass


class _Task:
    path, recipe = "store", None


class _Item:
    def __init__(self, key: str) -> None:
        self.key = key


@pytest.mark.parametrize(("exc", "level"), [(KeyError("frame_rate"), logging.WARNING),
                                            (ItemError("s01/t02: corrupt video"), logging.DEBUG)])
def test_worker_logs_an_unexpected_failure_with_its_traceback_at_warning(caplog: pytest.LogCaptureFixture,
                                                                        exc: Exception, level: int) -> None:
    try:
        raise exc
    except Exception as raised:  # gives it a traceback, as the extractor's would have
        result = raised
    writer = _Writer()
    with caplog.at_level(logging.DEBUG, logger="pipelines.jobs.worker"):
        outcome = WorkerContext(device="cpu")._record(writer, _Task(), _Item("s01/t02"), result, 0.1, {})  # type: ignore[arg-type]
    assert outcome.status == "failed" and writer.failed == {"s01/t02": outcome.error}
    records = [r for r in caplog.records if "s01/t02" in r.getMessage()]
    assert [r.levelno for r in records] == [level]
    assert "Traceback (most recent call last)" in records[0].getMessage()


def test_worker_warns_when_a_batched_call_falls_back_to_items(caplog: pytest.LogCaptureFixture) -> None:
    class Extractor:
        last_stage_s = None

        def extract_many(self, reader: object, items: list[_Item]) -> list[object]:
            raise RuntimeError("the model fell over")

        def extract(self, reader: object, item: _Item) -> _Rows:
            return _Rows(item.key)

    context = WorkerContext(device="cpu")
    context.extractor = lambda recipe: Extractor()  # type: ignore[method-assign]
    context.reader = lambda task: None  # type: ignore[method-assign,assignment,return-value]
    with caplog.at_level(logging.DEBUG, logger="pipelines.jobs.worker"):
        results, _ = context._extract(_Task(), [_Item("a"), _Item("b")])  # type: ignore[arg-type]
    assert [r.key for r in results] == ["a", "b"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the model fell over" in warnings[0].getMessage()
    assert "redoing the 2 items one by one" in warnings[0].getMessage() and warnings[0].exc_info is not None

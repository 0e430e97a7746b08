"""Progress within an item: the rows a worker makes reach the driver's progress while the item runs (serial, local
processes, dask), so a long video moves the line and gives an ETA before it is finished."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from extract_fakes import ROWS_PER_ITEM, write_fakeds
from rich.console import Console

from pipelines.jobs import ExtractConfig, run_extract

RUNNERS = {"serial": {}, "processes": {"workers": 2}, "dask": {"scheduler": "local-threads:1"}}


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_progress_lines_count_rows_within_a_running_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         runner: str) -> None:
    root = write_fakeds(tmp_path / "fakeds", subjects=1, trials=1)
    monkeypatch.setenv("FAKE_ROW_SLEEP_S", "0.3")  # the one item takes 1.5 s, one row at a time
    log = io.StringIO()
    monkeypatch.setattr("pipelines.logs.console", Console(file=log, width=250))  # not a terminal: plain lines
    cfg = ExtractConfig(dataset="fakeds", root=root, out_dir=tmp_path / "cache", gpu=(-1,), modality="vec",
                        plugins=("extract_fakes",), progress_interval_s=0.1, **RUNNERS[runner])  # type: ignore[arg-type]
    result = run_extract(cfg, out=Console(file=io.StringIO()))
    assert result.exit_code == 0
    lines = [line for line in log.getvalue().splitlines() if " items (" in line]
    assert all(re.match(r"^\d\d:\d\d:\d\d fakeds ", line) for line in lines), lines
    running = [line for line in lines if "0/1 items" in line and " 0 rows," not in line]
    assert running, lines  # rows counted while the item was still running
    assert any("ETA -:--:--" not in line and "(0%)" not in line for line in running), running
    assert f"1/1 items (100%), {ROWS_PER_ITEM} rows" in lines[-1]


def test_terminal_bar_moves_with_the_rows_of_a_running_item() -> None:
    import time
    from types import SimpleNamespace

    from pipelines.jobs.progress import JobProgress, MeanPaceEta

    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    plan = SimpleNamespace(path="cache/x/face.zarr", label="face", todo=[1, 2], manifest=SimpleNamespace(dataset="d"))
    with JobProgress(console) as progress:
        assert progress.plain is None  # a terminal: the rich bar
        progress.add_store(plan)
        progress.start(plan.path)
        time.sleep(0.05)
        progress.rows(plan.path, "d/s01/1", 40, 100)
        task = progress.progress.tasks[0]
        assert task.completed == pytest.approx(0.4) and task.fields["rows"] == 40
        assert "-:--:--" not in str(MeanPaceEta().render(task))
        progress.update(SimpleNamespace(store=plan.path, key="d/s01/1"), SimpleNamespace(rows=100, failed={}))
        progress.rows(plan.path, "d/s01/1", 60, 100)  # a late count of the finished item changes nothing
        assert task.completed == 1.0 and task.fields["rows"] == 100

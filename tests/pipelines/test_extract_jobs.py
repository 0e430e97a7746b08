"""Extraction jobs with a fake dataset and extractor: planning, resume after SIGKILL, retry, fail-fast, runners.

The real face/EEG path on the fixture DEAP is in test_extract_deap.py; here the framework is exercised in
milliseconds per item so the slow parts (process start-up, dask) stay affordable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from extract_fakes import ROWS_PER_ITEM, assert_same_store, store_table, write_fakeds
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.jobs import ExtractConfig, run_extract
from pipelines.jobs.plan import select_items, store_label
from pipelines.jobs.progress import summary_path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGINS = ("extract_fakes",)


def cfg_for(root: Path, out: Path, **kw: object) -> ExtractConfig:
    base: dict[str, object] = dict(dataset="fakeds", root=root, out_dir=out, gpu=(-1,), plugins=PLUGINS,
                                   progress=False)
    base.update(kw)
    return ExtractConfig(**base)  # type: ignore[arg-type]


@pytest.fixture()
def fakeds(tmp_path: Path) -> Path:
    return write_fakeds(tmp_path / "fakeds", subjects=2, trials=3)


def test_serial_run_writes_one_store_per_modality_and_resumes(fakeds: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    result = run_extract(cfg_for(fakeds, out))
    assert result.exit_code == 0
    vec, img = result.store("vec"), result.store("img")
    assert vec.path.parent == out / "fakeds" and vec.path.name.startswith("vec-") and vec.path.suffix == ".zarr"
    assert vec.path.name == f"vec-{vec.fingerprint[:8]}.zarr"
    assert len(vec.todo) == 6 and len(img.todo) == 5
    assert img.missing == ["fakeds/s02/t03"]  # no img source: reported, not an error

    table = store_table(vec.path)
    assert len(table["item"]) == 6 * ROWS_PER_ITEM
    assert store_table(img.path)["item"].tolist().count("fakeds/s02/t03") == 0

    summary = json.loads(summary_path(vec.path).read_text())
    assert summary["items"]["done"] == 6 and summary["rows"] == 6 * ROWS_PER_ITEM
    assert summary["fingerprint"] == vec.fingerprint and "read" in summary["stage_s"]
    assert json.loads(summary_path(img.path).read_text())["no_media_items"] == ["fakeds/s02/t03"]

    again = run_extract(cfg_for(fakeds, out))  # the same command continues: nothing left to do
    assert again.store("vec").todo == [] and len(again.store("vec").done) == 6
    assert again.summaries[0]["items"]["skipped_done"] == 6 and again.summaries[0]["items"]["done"] == 0


def test_failed_item_is_recorded_skipped_then_retried(fakeds: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    bad = fakeds / "vec" / "s01_t02.bin"
    good = bad.read_bytes()
    bad.write_bytes(b"BAD" + good[3:])  # same size: the store name does not change when it is fixed
    first = run_extract(cfg_for(fakeds, out, modality="vec"))
    assert first.exit_code == 0  # failures are data: the run goes on
    s = first.summaries[0]
    assert s["items"]["done"] == 5 and list(s["failures"]) == ["fakeds/s01/t02"]
    assert "corrupt vec file" in s["failures"]["fakeds/s01/t02"]

    bad.write_bytes(good)
    resumed = run_extract(cfg_for(fakeds, out, modality="vec"))
    plan = resumed.store("vec")
    assert plan.todo == [] and list(plan.failed) == ["fakeds/s01/t02"]  # skipped by default, reported
    assert resumed.summaries[0]["items"]["skipped_failed"] == 1

    before = store_table(plan.path)
    retried = run_extract(cfg_for(fakeds, out, modality="vec", retry_failed=True))
    plan = retried.store("vec")
    assert [it.key for it in plan.todo] == ["fakeds/s01/t02"]  # only the failed item is redone
    assert retried.summaries[0]["items"]["retried_ok"] == 1
    after = store_table(plan.path)
    assert len(after["item"]) == len(before["item"]) + ROWS_PER_ITEM
    reference = run_extract(cfg_for(fakeds, tmp_path / "ref", modality="vec"))
    assert_same_store(plan.path, reference.store("vec").path)


def test_fail_fast_stops_at_the_first_failure(fakeds: Path, tmp_path: Path) -> None:
    (fakeds / "vec" / "s01_t01.bin").write_bytes(b"BAD")
    result = run_extract(cfg_for(fakeds, tmp_path / "cache", modality="vec", fail_fast=True))
    assert result.exit_code == 1
    items = result.summaries[0]["items"]
    assert items["failed"] == 1 and items["done"] == 0 and items["not_run"] == 5


def test_selection_option_change_and_dry_run(fakeds: Path, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    from extract_fakes import FakeReader

    items = FakeReader(fakeds).items()
    assert [it.key for it in select_items(items, ["1"], 2)] == ["fakeds/s01/t01", "fakeds/s01/t02"]
    part = run_extract(cfg_for(fakeds, out, modality="vec", subjects=("s02",), limit=2))
    assert [it.key for it in part.store("vec").todo] == ["fakeds/s02/t01", "fakeds/s02/t02"]
    full = run_extract(cfg_for(fakeds, out, modality="vec", dry_run=True))
    assert full.store("vec").path == part.store("vec").path  # --limit/--subjects continue the same store
    assert len(full.store("vec").todo) == 4 and len(full.store("vec").done) == 2

    # A feature-changing option (here a reader option that changes the labels) -> a new store; old untouched.
    old = part.store("vec").path
    snapshot = {p: p.stat().st_mtime_ns for p in old.rglob("*")}
    other = run_extract(cfg_for(fakeds, out, modality="vec", reader_options={"label_offset": 1.0}))
    assert other.store("vec").path != old and other.store("vec").path.exists()
    assert {p: p.stat().st_mtime_ns for p in old.rglob("*")} == snapshot
    assert store_label("vec", cfg_for(fakeds, out)) == "vec"

    runner = CliRunner()
    res = runner.invoke(app, ["extract", "--dataset", "fakeds", "--root", str(fakeds), "--out", str(tmp_path / "dry"),
                              "--plugin", "extract_fakes", "--dry-run", "--gpu", "-1"])
    assert res.exit_code == 0, res.output
    assert "to do 6" in res.output and "would do: fakeds/s01/t01" in res.output
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing


def test_gpu_request_on_a_cpu_machine_says_so_and_runs(fakeds: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg_file = tmp_path / "extract.yaml"
    cfg_file.write_text(f"dataset: fakeds\nroot: {fakeds}\nmodality: img\nplugins: [extract_fakes]\nlimit: 1\n")
    res = CliRunner().invoke(app, ["extract", "--config", str(cfg_file), "--modality", "vec", "--gpu", "0",
                                   "--out", str(tmp_path / "cache"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "CUDA is not available" in res.output and "running on the CPU" in res.output
    assert "vec:" in res.output and "img:" not in res.output  # the CLI option wins over the file
    assert "done 1" in res.output


def _cli(*args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "extract", *args]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_sigkilled_run_resumes_to_the_uninterrupted_result(fakeds: Path, tmp_path: Path) -> None:
    from store import open_store

    args = ["--dataset", "fakeds", "--root", str(fakeds), "--plugin", "extract_fakes", "--gpu", "-1",
            "--modality", "vec", "--no-progress", "--commit-every", "0"]
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", str(out)), env=_env(FAKE_SLEEP_S="0.4"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    store = None
    try:
        while time.time() < deadline:  # kill once the first item has committed
            stores = list((out / "fakeds").glob("vec-*.zarr")) if (out / "fakeds").exists() else []
            if stores and open_store(stores[0]).items("done"):
                store = stores[0]
                break
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.05)
        assert store is not None, "no item committed in time"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done_at_kill = set(open_store(store).items("done"))
    assert 1 <= len(done_at_kill) < 6

    resumed = run_extract(cfg_for(fakeds, out, modality="vec"))
    plan = resumed.store("vec")
    assert plan.path == store and set(plan.done) == done_at_kill  # nothing finished is done twice
    assert len(plan.todo) == 6 - len(done_at_kill)
    reference = run_extract(cfg_for(fakeds, tmp_path / "ref", modality="vec"))
    assert_same_store(store, reference.store("vec").path)


def test_a_local_dask_run_does_not_need_port_8787(fakeds: Path, tmp_path: Path) -> None:
    """With 8787 taken (another local cluster, a notebook), a local:N run starts on a free port, no warning."""
    import socket

    taken = socket.socket()
    try:
        try:
            taken.bind(("", 8787))
            taken.listen()
        except OSError:
            pass  # already taken by another process: the same situation
        result = run_extract(cfg_for(fakeds, tmp_path / "dask", scheduler="local-threads:1"))
    finally:
        taken.close()
    assert result.exit_code == 0 and result.summaries[0]["runner"] == "dask local-threads:1"


def test_local_processes_and_dask_cluster_equal_the_serial_run(fakeds: Path, tmp_path: Path) -> None:
    serial = run_extract(cfg_for(fakeds, tmp_path / "serial"))
    procs = run_extract(cfg_for(fakeds, tmp_path / "procs", workers=2))
    dask = run_extract(cfg_for(fakeds, tmp_path / "dask", scheduler="local:2"))
    for result in (procs, dask):
        assert result.exit_code == 0
        for kind in ("vec", "img"):
            assert_same_store(serial.store(kind).path, result.store(kind).path)
    assert procs.summaries[0]["runner"] == "processes:2" and dask.summaries[0]["runner"] == "dask local:2"

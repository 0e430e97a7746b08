"""The CLI as a new user meets it: `--set` checked before any work, `--dry-run` without model weights, the info
report on stdout, help with examples and required options marked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.jobs.plan import ExtractorRecipe

runner = CliRunner()


@pytest.fixture(scope="module")
def deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures.deap import write_deap

    root = tmp_path_factory.mktemp("deap") / "DEAP"
    return write_deap(root, subjects=2, trials=2, seconds=1.0, seed=0, frame_size=(64, 48), fps=10.0)


@pytest.fixture()
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to build an extractor (load a detector or backbone) fails the test."""
    def refuse(self: ExtractorRecipe, device: object = None) -> None:
        raise AssertionError(f"extractor {self.name} built (weights loaded)")

    monkeypatch.setattr(ExtractorRecipe, "build", refuse)


@pytest.mark.parametrize(("override", "message"), [
    ("face_options.bogus=1", "unknown key(s) bogus; valid keys: "),
    ("face_options.min_score=abc", "face_options.min_score: expected float, got 'abc'"),
    ("eeg_options.baseline=sometimes", "eeg_options.baseline: 'sometimes' is not one of"),
    ("audio_options.n_mels=many", "audio_options.n_mels: expected int, got 'many'"),
    ("audio_options.bogus=1", "unknown key(s) bogus; valid keys: "),
    ("reader_options.labels_from=x", "reader_options.labels_from: 'x' is not one of"),
    ("nonsense=1", "unknown key(s) nonsense"),
])
def test_set_is_checked_before_any_work(deap: Path, tmp_path: Path, no_weights: None, override: str,
                                        message: str) -> None:
    out = tmp_path / "cache"
    result = runner.invoke(app, ["extract", "--dataset", "deap", "--root", str(deap), "--out", str(out), "--gpu",
                                 "-1", "--set", override])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and len(result.output.strip().splitlines()) <= 2, result.output
    if override.startswith("face_options.bogus"):
        assert "min_score" in errors[0] and "margin" in errors[0]  # the valid keys are listed
    if override.startswith("audio_options.bogus"):
        assert "n_mels" in errors[0] and "model" in errors[0]
    assert not out.exists()


def test_fuse_set_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    result = runner.invoke(app, ["fuse", "--stores", str(tmp_path), "--set", "train.bogus=1"])
    assert result.exit_code == 2 and "bogus" in result.output and "epochs" in result.output
    assert "Traceback" not in result.output


def test_dry_run_plans_without_weights(deap: Path, tmp_path: Path, no_weights: None) -> None:
    result = runner.invoke(app, ["extract", "--dataset", "deap", "--root", str(deap), "--out", str(tmp_path / "c"),
                                 "--gpu", "-1", "--dry-run"])  # the default backbone, offline (conftest)
    assert result.exit_code == 0, result.output
    assert "face: " in result.output and "eeg: " in result.output and "to do 4" in result.output
    assert "computed from the model weights" in result.output and not (tmp_path / "c").exists()


def test_dry_run_finds_the_store_it_would_continue(deap: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    args = ["extract", "--dataset", "deap", "--root", str(deap), "--out", str(out), "--gpu", "-1", "--modality",
            "eeg", "--limit", "1", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    store = next((out / "deap").glob("eeg-*.zarr"))
    dry = runner.invoke(app, [*args[:-3], "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{store} (resume, fingerprint {store.name.rsplit('-', 1)[1][:8]}" in dry.output
    assert "to do 3, done 1" in dry.output
    other = runner.invoke(app, [*args[:-3], "--eeg-feature", "psd", "--dry-run"])
    assert "(new, fingerprint computed" in other.output


def test_plain_progress_prints_timestamped_lines_with_a_real_eta() -> None:
    import io
    import re
    import time
    from types import SimpleNamespace

    from rich.console import Console

    from pipelines.jobs.progress import JobProgress, eta_s

    assert eta_s(10.0, 2, 6) == 20.0 and eta_s(5.0, 0, 6) is None and eta_s(5.0, 6, 6) == 0.0
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)  # not a terminal, like a log file
    plan = SimpleNamespace(path="cache/x/face.zarr", label="face-mtcnn", todo=[1, 2, 3, 4],
                           manifest=SimpleNamespace(dataset="deap"))
    with JobProgress(console, interval_s=0.05) as progress:
        progress.add_store(plan)
        started = time.perf_counter()
        progress.start(plan.path)
        first = buffer.getvalue()
        assert first and time.perf_counter() - started < 2.0  # a first line at once
        time.sleep(0.2)
        progress.update(SimpleNamespace(store=plan.path), SimpleNamespace(rows=50, failed={}))
        time.sleep(0.2)
    lines = buffer.getvalue().splitlines()
    assert all(re.match(r"^\d\d:\d\d:\d\d deap face-mtcnn: ", line) for line in lines)
    assert len(lines) >= 4  # every interval, not only at the end
    last = lines[-1]
    assert "1/4 items (25%)" in last and "50 rows" in last and "ETA 0:00:0" in last and "-:--:--" not in last


def test_info_writes_its_report_to_stdout() -> None:
    result = runner.invoke(app, ["info", "--no-hub-check"])
    assert result.exit_code == 0
    assert any(line.startswith("torch ") for line in result.stdout.splitlines()), result.stdout
    assert "torch_cuda_build" in result.stdout


COMMANDS = [["info"], ["demo-data"], ["extract"], ["fuse"], ["finetune"], ["predict"], ["stores", "ls"], ["stores", "info"],
            ["stores", "verify"], ["stores", "gc"], ["models", "ls"], ["results", "show"], ["results", "compare"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_has_examples(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output and f"$ pipeline {' '.join(command)}" in result.output


def test_required_options_are_marked_and_out_means_the_directory_written() -> None:
    for command, required in ((["extract"], ("--dataset", "--root")), (["fuse"], ("--cache",)),
                              (["demo-data"], ("--out",))):
        text = " ".join(runner.invoke(app, [*command, "--help"], terminal_width=200).output.split())
        assert text.lower().count("required") >= len(required) and all(opt in text for opt in required)
        assert "Directory this command writes" in text, command

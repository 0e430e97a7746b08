"""The skeleton: packages resolve to this project, the CLI answers, config loads and refuses bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest
from typer.testing import CliRunner

import pipelines
from pipelines.cli import app
from pipelines.config import ConfigError, build_config, dump_config, load_config, parse_overrides, to_dict

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["store", "extract", "fuse", "pipelines"])
def test_top_level_packages_are_this_project(name: str) -> None:
    module = __import__(name)
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_version_and_help_list_only_real_commands() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and pipelines.__version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.output


def test_info_reports_environment() -> None:
    from pipelines.info import environment_report

    report = environment_report(check_hub=False)
    for key in ("python", "torch", "cuda_available", "gpus", "transformers", "hf_cache_dir", "zarr", "h5py", "dask"):
        assert key in report
    result = CliRunner().invoke(app, ["info", "--no-hub-check"])
    assert result.exit_code == 0, result.output


def test_hub_status_respects_offline_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.info import hub_status

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_status().startswith("offline mode")


@dataclasses.dataclass(frozen=True)
class Inner:
    fps: float = 5.0
    bands: tuple[str, ...] = ("alpha", "beta")


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    n: int = 1
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_config_layers_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("n: 3\ninner:\n  fps: 10\n")
    cfg = load_config(Outer, path, parse_overrides(["inner.bands=theta,gamma", "mode=b"]))
    assert cfg == Outer(n=3, mode="b", inner=Inner(fps=10.0, bands=("theta", "gamma")))
    toml = tmp_path / "c.toml"
    toml.write_text("name = 'y'\n[inner]\nfps = 2\n")
    assert load_config(Outer, toml).inner.fps == 2.0
    dumped = dump_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(Outer, dumped) == cfg
    assert to_dict(cfg)["inner"]["bands"] == ["theta", "gamma"]


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        build_config(Outer, {"nope": 1})
    with pytest.raises(ConfigError, match="not one of"):
        build_config(Outer, {"mode": "c"})
    with pytest.raises(ConfigError, match="expected int"):
        build_config(Outer, {"n": "many"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Outer, bad)


def test_registry_lists_and_refuses_unknown_names() -> None:
    from registry import Registry, UnknownNameError

    reg: Registry[object] = Registry("widget")
    reg.add("b", dict, dim=2)
    assert reg.names() == ["b"] and reg.info("b") == {"dim": 2}
    assert reg.create("b", x=1) == {"x": 1}
    with pytest.raises(UnknownNameError, match="known: b"):
        reg.create("a")

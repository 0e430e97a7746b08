"""``--track wandb``: an offline run gets the config, the store fingerprints, per-fold metrics and the PNGs; tracking is
off by default (wandb is an optional extra, so a recording stand-in of its API takes its place here)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from fuse.config import FuseConfig
from fuse.data import ModalityData
from fuse.run import run_fuse


class FakeRun:
    def __init__(self, **kw: Any) -> None:
        self.init, self.logged, self.summary, self.finished, self.id = kw, [], {}, False, "offline-1"

    def log(self, data: dict[str, Any]) -> None:
        self.logged.append(data)

    def finish(self) -> None:
        self.finished = True


def test_wandb_offline_run_gets_config_fingerprints_folds_and_pngs(small: tuple[ModalityData, ModalityData],
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[FakeRun] = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: runs.append(FakeRun(**kw)) or runs[-1]  # type: ignore[attr-defined]
    fake.Image = lambda path: ("image", path)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    untracked = run_fuse(FuseConfig(strategy="early", out=str(tmp_path / "off"), save_final=False), small)
    assert untracked.config.track == "none" and not runs  # off by default
    result = run_fuse(FuseConfig(strategy="early", protocol="loso", out=str(tmp_path / "run"), save_final=False,
                                 track="wandb", track_uri=str(tmp_path / "wandb")), small)
    (run,) = runs
    assert run.init["mode"] == "offline" and run.init["dir"] == str(tmp_path / "wandb") and run.finished
    assert run.init["config"]["strategy"] == "early" and run.init["config"]["protocol"] == "loso"
    assert run.summary["store.eeg.fingerprint"] == result.metrics["stores"]["eeg"]["fingerprint"]
    folds = [d["fold.accuracy"] for d in run.logged if "fold.accuracy" in d]
    assert folds == pytest.approx(result.per_fold["accuracy"].tolist())
    images = {k for d in run.logged for k, v in d.items() if isinstance(v, tuple) and v[0] == "image"}
    assert {"confusion", "per_subject"} <= images
    headline = next(d for d in run.logged if "fold_mean.accuracy" in d)
    assert headline["fold_mean.accuracy"] == pytest.approx(result.metrics["fold_mean"]["accuracy"])

"""Tiny fixture datasets, written once per test session (a few seconds in all)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def deap_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures import write_deap

    return write_deap(tmp_path_factory.mktemp("deap") / "DEAP", subjects=2, trials=3, seconds=2.0, seed=0,
                      frame_size=(160, 128), fps=10.0)


@pytest.fixture(scope="session")
def dfew_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures import write_dfew

    return write_dfew(tmp_path_factory.mktemp("dfew") / "DFEW", clips=12, seconds=0.8, seed=0, frame_size=48)


@pytest.fixture(scope="session")
def seedv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures import write_seedv

    return write_seedv(tmp_path_factory.mktemp("seedv") / "SEED-V", subjects=2, trials=3, seed=0)


@pytest.fixture(scope="session")
def ravdess_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures import write_ravdess

    return write_ravdess(tmp_path_factory.mktemp("ravdess") / "RAVDESS", actors=5, clips=2, seconds=0.2, seed=0,
                         frame_size=(96, 64), audio_visual=True)


@pytest.fixture(scope="session")
def fer_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from extract.fixtures import write_fer2013

    return write_fer2013(tmp_path_factory.mktemp("fer") / "FER2013", images=14, seed=0, blank=1, folders=True)

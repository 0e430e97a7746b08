"""Planted-signal fixtures: in-memory modalities, and the same written through the store API."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuse.data import ModalityData
from fuse.synthetic import Planted, planted_modalities, write_planted_stores

PLANTED = Planted()  # 6 subjects x 8 trials x 10 windows; EEG 16-d, face 32-d at 5 fps


@pytest.fixture(scope="session")
def planted() -> tuple[ModalityData, ModalityData]:
    return planted_modalities(PLANTED)


@pytest.fixture(scope="session")
def small() -> tuple[ModalityData, ModalityData]:
    """Four subjects, a stronger signal: enough for the torch heads."""
    return planted_modalities(Planted(n_subjects=4, n_trials=6, n_windows=8, eeg_signal=0.35, face_signal=0.12, seed=3))


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted EEG and face stores of a 'deap' dataset, written through store.create_store."""
    directory = tmp_path_factory.mktemp("cache")
    root = tmp_path_factory.mktemp("DEAP")
    write_planted_stores(directory, PLANTED, dataset_root=str(root))
    return directory

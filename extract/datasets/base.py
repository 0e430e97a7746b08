"""The dataset-reader contract: list items without decoding media; load one item's media on demand."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from registry import Registry


class DatasetError(ValueError):
    """Bad dataset input. The message is one line naming the file and what is wrong with it."""


@dataclass(frozen=True)
class Item:
    """One unit of extraction work, keyed by a stable string such as ``deap/s01/trial07``."""

    key: str
    dataset: str
    subject: str
    session: int
    trial: str
    labels: Mapping[str, float] = field(default_factory=dict)
    # Where its media live: e.g. {"video": ".../s01_trial07.avi", "eeg": ".../s01.dat"}; may be empty per modality.
    sources: Mapping[str, str] = field(default_factory=dict)
    fold: int = -1  # dataset-defined test fold (DFEW set 1-5, RAVDESS actor group 1-6); -1 = none
    meta: Mapping[str, Any] = field(default_factory=dict)

    def has(self, modality: str) -> bool:
        return modality in self.sources


@dataclass
class EegRecording:
    """One trial's EEG: ``data`` (channels, samples) in µV, with the stimulus onset at ``onset_s`` seconds."""

    data: np.ndarray
    sfreq: float
    channel_names: Sequence[str]
    onset_s: float = 0.0  # DEAP: 3.0 (3 s pre-trial baseline precede the stimulus)


@dataclass
class FrameImage:
    """A still frame of an image-sequence dataset (DFEW frames, FER2013 pixels) with its time on the item clock."""

    t_s: float
    image: np.ndarray  # HxWx3 uint8 RGB


class DatasetReader(ABC):
    """Lists a dataset's items and loads their media on demand. Readers never write anything."""

    name: str = ""
    modalities: tuple[str, ...] = ()  # e.g. ("face", "eeg") for DEAP; ("eeg_de", "eye") for SEED-V

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset root not found (expected a {self.name} folder)")
        self._items: list[Item] | None = None

    def items(self) -> list[Item]:
        """All items, in a stable order, without decoding any media (listed once, then cached)."""
        if self._items is None:
            self._items = self._list_items()
        return list(self._items)

    @abstractmethod
    def _list_items(self) -> list[Item]:
        """List the dataset's items; ``items()`` calls it once."""

    def video_path(self, item: Item) -> Path | None:
        """The item's video file, for video datasets; None when the item has no video."""
        path = item.sources.get("video")
        return Path(path) if path else None

    def frames(self, item: Item) -> Iterator[FrameImage]:
        """Still frames for image datasets (DFEW, FER2013, image folders). Video datasets use ``video_path``."""
        raise NotImplementedError(f"{self.name} has no still frames; use video_path()")

    def eeg(self, item: Item) -> EegRecording:
        """The item's raw EEG trial, for datasets with EEG."""
        raise NotImplementedError(f"{self.name} has no raw EEG")

    def features(self, item: Item, kind: str) -> np.ndarray:
        """Precomputed per-window features (SEED-V ``eeg_de``, ``eye``): (windows, dim)."""
        raise NotImplementedError(f"{self.name} has no precomputed features")

    def label_names(self) -> dict[str, list[str]]:
        """Class names of categorical labels by id (``{"emotion": [...]}``); recorded in store manifests."""
        return {}

    def input_files(self) -> list[Path]:
        """The files whose names/sizes/mtimes make up the input fingerprint of stores built from this dataset."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())


DATASETS: Registry[DatasetReader] = Registry("dataset")


def create_dataset(name: str, root: str | Path, **options: Any) -> DatasetReader:
    """``create_dataset("deap", root=...)``: a reader from the registry."""
    return DATASETS.create(name, root=root, **options)


def list_datasets() -> list[str]:
    return DATASETS.names()

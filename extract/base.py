"""The extractor contract: one item of a dataset in, one ``ItemRows`` out, plus the manifest facts of the features."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from extract.datasets.base import DatasetReader, Item
from store.registry import Registry
from store.schema import ItemRows


class ItemError(RuntimeError):
    """This item cannot be extracted (corrupt video, NaN EEG, no face at all). Recorded as failed; the run goes on."""


class FeatureExtractor(ABC):
    """Turns one item into rows. Built once per worker (models load in ``__init__``), then called per item."""

    kind: str = ""  # the store kind it writes: "face", "eeg", "eeg_de", "eye", ...

    @abstractmethod
    def manifest_parts(self) -> dict[str, Any]:
        """Feature-changing facts for the store manifest: extractor, extractor_version, dim, dtype, config, model,
        preprocessing (and optionally feature_names)."""

    @abstractmethod
    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        """All rows of ``item``; raises ItemError for a bad item."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models / worker pools."""


EXTRACTORS: Registry[FeatureExtractor] = Registry("extractor")

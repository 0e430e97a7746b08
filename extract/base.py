"""The extractor contract: one item of a dataset in, one ``ItemRows`` out (or a few items in, one ``ItemRows`` or
error each out), plus the manifest facts of the features."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from extract.datasets.base import DatasetReader, Item
from registry import Registry
from store.schema import ItemRows


class ItemError(RuntimeError):
    """This item cannot be extracted (corrupt video, NaN EEG, no face at all). Recorded as failed; the run goes on."""


class FeatureExtractor(ABC):
    """Turns one item into rows. Built once per worker (models load in ``__init__``), then called per item, or per
    small group of items through ``extract_many`` when ``items_per_call`` says a group is worth it."""

    kind: str = ""  # the store kind it writes: "face", "eeg", "eeg_de", "eye", ...

    @abstractmethod
    def manifest_parts(self) -> dict[str, Any]:
        """Feature-changing facts for the store manifest: extractor, extractor_version, dim, dtype, config, model,
        preprocessing (and optionally feature_names)."""

    @abstractmethod
    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        """All rows of ``item``; raises ItemError for a bad item."""

    def items_per_call(self, reader: DatasetReader, items: Sequence[Item]) -> int:
        """How many of ``items`` one ``extract_many`` call should take: 1 (the default) when batching within an
        item is enough; more for items too small to fill a model batch alone (single images)."""
        return 1

    def extract_many(self, reader: DatasetReader, items: Sequence[Item]) -> list[ItemRows | Exception]:
        """The rows of each item, in order; a failing item's exception (usually ItemError) takes its place, so one
        bad item never sinks the others. The default calls ``extract`` per item."""
        out: list[ItemRows | Exception] = []
        for item in items:
            try:
                out.append(self.extract(reader, item))
            except Exception as exc:  # recorded as this item's failure by the caller
                out.append(exc)
        return out

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models / worker pools."""


EXTRACTORS: Registry[FeatureExtractor] = Registry("extractor")

"""Dataset readers. Importing this package registers every reader in ``DATASETS``.

``create_dataset("deap", root=...)`` builds one; ``docs/datasets.md`` lists layouts and options.
"""

from extract.datasets import deap, dfew, fer2013, folder, ravdess, seedv  # noqa: F401  (registers the readers)
from extract.datasets.base import (
    DATASETS,
    DatasetError,
    DatasetReader,
    EegRecording,
    FrameImage,
    Item,
    create_dataset,
    list_datasets,
)

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetReader",
    "EegRecording",
    "FrameImage",
    "Item",
    "create_dataset",
    "list_datasets",
]

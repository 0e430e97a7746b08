"""Dataset readers. Importing this package registers every reader in ``DATASETS``.

``create_dataset("deap", root=...)`` builds one; see ``.notes/README-datasets.md`` for layouts and options.
"""

from extract.datasets import deap  # noqa: F401  (registers "deap")
from extract.datasets.base import DATASETS, DatasetError, DatasetReader, EegRecording, FrameImage, Item, create_dataset, list_datasets

__all__ = ["DATASETS", "DatasetError", "DatasetReader", "EegRecording", "FrameImage", "Item", "create_dataset", "list_datasets"]

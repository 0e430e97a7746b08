"""The names of ``fuse.inputs`` (stores read into memory, found and loaded) and ``fuse.align`` (the aligned
table), under the old module name so ``from fuse.data import X`` keeps working."""

from __future__ import annotations

from fuse.align import (
    META_COLUMNS,
    AlignedTable,
    align,
    pool_into_windows,
    to_trials,
)
from fuse.inputs import (
    QUALITY_LIMITS,
    ROLE_OF_KIND,
    ROLES,
    FuseDataError,
    ModalityData,
    describe_store,
    find_stores,
    load_store,
    modality_of,
    ordered,
    roles_for,
)

__all__ = [
    "META_COLUMNS", "QUALITY_LIMITS", "ROLES", "ROLE_OF_KIND", "AlignedTable", "FuseDataError", "ModalityData",
    "align", "describe_store", "find_stores", "load_store", "modality_of", "ordered", "pool_into_windows",
    "roles_for", "to_trials",
]

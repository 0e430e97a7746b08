"""Both segment backends pass the same conformance suite (``store_conformance.StoreConformance``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from store_conformance import StoreConformance


class TestZarr(StoreConformance):
    backend = "zarr"
    compression = "zstd"

    def plain_segment(self, path: Path) -> dict[str, Any]:
        import zarr

        group = zarr.open_group(str(path), mode="r")
        out: dict[str, Any] = {"attrs": group.attrs["mmer_segment"]}
        for name, node in group.members(max_depth=None):
            if isinstance(node, zarr.Array):
                values = node[:]
                out[name] = values.astype(object) if node.dtype.kind == "T" else np.asarray(values)
        return out

    def corrupt_embeddings(self, path: Path) -> None:
        import zarr

        z = zarr.open_array(str(path / "embeddings"), mode="r+")
        z[1, 2] = z[1, 2] + 1


class TestHDF5(StoreConformance):
    backend = "hdf5"
    compression = "gzip"

    def plain_segment(self, path: Path) -> dict[str, Any]:
        import json

        import h5py

        out: dict[str, Any] = {}
        with h5py.File(path, "r") as f:
            out["attrs"] = json.loads(f.attrs["mmer_segment"])

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    is_str = h5py.check_string_dtype(obj.dtype) is not None
                    out[name] = obj.asstr()[:].astype(object) if is_str else obj[:]

            f.visititems(visit)
        return out

    def corrupt_embeddings(self, path: Path) -> None:
        import h5py

        with h5py.File(path, "r+") as f:
            f["embeddings"][1, 2] = f["embeddings"][1, 2] + 1

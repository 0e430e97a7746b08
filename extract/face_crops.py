"""The crop-store extractor: the face path's aligned crops themselves, one uint8 row per sampled frame.

``FaceCropExtractor`` (registered as ``"face_crops"``, store kind ``face_crops``) runs exactly the face path of
``FaceEmbeddingExtractor`` (decode, detect, track, align) and stores each aligned ``(crop, crop, 3)`` RGB crop
flattened row-major into a uint8 row of ``crop * crop * 3`` values; the store compresses them (zstd / gzip) in
chunks of whole rows. Detection and alignment are paid once; ``pipeline finetune`` then trains on the pixels every
epoch without decoding a video. A frame without the subject's face keeps its row (zeros, ``q_face_found`` False).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from extract.base import EXTRACTORS
from extract.face.extractor import FaceEmbeddingExtractor

CROPS_VERSION = "1"


class _KeepPixels:
    """Stands where the backbone would: 'embeds' a crop as its flattened uint8 pixels."""

    def __init__(self, crop_size: int) -> None:
        self.dim = crop_size * crop_size * 3
        self.spec: dict[str, Any] = {"name": "pixels"}

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """uint8 ``(n, H, W, 3)`` -> uint8 ``(n, H*W*3)``."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (*crops.shape[1:3], 3):
            raise ValueError(f"crops must be uint8 (n, H, W, 3), got {crops.shape} {crops.dtype}")
        return np.ascontiguousarray(crops.reshape(len(crops), -1))


@EXTRACTORS.register("face_crops", kind="face_crops")
class FaceCropExtractor(FaceEmbeddingExtractor):
    """``EXTRACTORS.create("face_crops", detector="mtcnn", fps=5, crop_size=224)``: the aligned crops, not embeddings.
    Takes the options of ``FaceEmbeddingExtractor`` except ``backbone`` and ``dtype``."""

    kind = "face_crops"

    def __init__(self, **options: Any) -> None:
        options.pop("backbone", None)
        options.pop("dtype", None)
        super().__init__(backbone="pixels", dtype="float32", **options)
        self.dtype = "uint8"

    def _build_backbone(self, create_backbone: Any) -> Any:
        return _KeepPixels(self.crop_size)

    def _empty_rows(self, n: int) -> np.ndarray:
        return np.zeros((n, self.backbone.dim), np.uint8)

    def manifest_parts(self) -> dict[str, Any]:
        parts = super().manifest_parts()
        for key in ("backbone", "compute_dtype"):
            parts["config"].pop(key, None)
        parts["model"].pop("backbone", None)
        parts["preprocessing"].pop("backbone", None)
        parts["preprocessing"]["crops"] = (f"uint8 RGB ({self.crop_size}, {self.crop_size}, 3) aligned face crop "
                                           "flattened row-major into one row")
        parts["preprocessing"]["no_face"] = "row kept: zeros, q_face_found False, q_det_score NaN"
        parts.update(extractor=f"face_crops/{self.detector_name}", extractor_version=CROPS_VERSION,
                     dim=int(self.backbone.dim), dtype="uint8")
        return parts

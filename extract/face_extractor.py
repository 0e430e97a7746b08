"""Old home of the face extractor, kept for old imports: it lives in ``extract.face.extractor``.

Importing either module registers ``"face"`` once (this one only re-exports).
"""

from __future__ import annotations

from extract.face.extractor import EXTRACTOR_VERSION, MAX_ITEMS_PER_CALL, ComputeDtype, FaceEmbeddingExtractor

__all__ = ["EXTRACTOR_VERSION", "MAX_ITEMS_PER_CALL", "ComputeDtype", "FaceEmbeddingExtractor"]

"""The face path: streaming decode, batched detection, subject tracking, five-point alignment.

Entry point for extractors: ``extract.face.pipeline.FacePipeline`` (see its module docstring for an example); the
face feature extractor (registered as ``"face"``) is ``extract.face.extractor.FaceEmbeddingExtractor``.
Names are imported lazily, so ``import extract.face.decode`` does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AlignConfig": "extract.face.align",
    "align_faces": "extract.face.align",
    "alignment_residual": "extract.face.align",
    "arcface_template": "extract.face.align",
    "estimate_alignment": "extract.face.align",
    "umeyama": "extract.face.align",
    "DecodedFrame": "extract.face.decode",
    "VideoDecodeError": "extract.face.decode",
    "VideoInfo": "extract.face.decode",
    "VideoReader": "extract.face.decode",
    "probe_video": "extract.face.decode",
    "Detections": "extract.face.detectors",
    "FaceDetector": "extract.face.detectors",
    "create_detector": "extract.face.detectors",
    "list_detectors": "extract.face.detectors",
    "FaceEmbeddingExtractor": "extract.face.extractor",
    "FaceBatch": "extract.face.pipeline",
    "FaceConfig": "extract.face.pipeline",
    "FacePipeline": "extract.face.pipeline",
    "FaceResult": "extract.face.pipeline",
    "SubjectTracker": "extract.face.track",
    "TrackConfig": "extract.face.track",
    "track_subject": "extract.face.track",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'extract.face' has no attribute {name!r}")

"""The face path: streaming decode, batched detection, subject tracking, five-point alignment.

Entry point for extractors: ``extract.face.pipeline.FacePipeline`` (see its module docstring for an example).
"""

from extract.face.align import AlignConfig, align_faces, arcface_template, estimate_alignment, umeyama
from extract.face.decode import DecodedFrame, VideoDecodeError, VideoInfo, VideoReader, probe_video
from extract.face.detectors import Detections, FaceDetector, create_detector, list_detectors
from extract.face.pipeline import FaceBatch, FaceConfig, FacePipeline, FaceResult
from extract.face.track import SubjectTracker, TrackConfig, track_subject

__all__ = [
    "AlignConfig",
    "DecodedFrame",
    "Detections",
    "FaceBatch",
    "FaceConfig",
    "FaceDetector",
    "FacePipeline",
    "FaceResult",
    "SubjectTracker",
    "TrackConfig",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "align_faces",
    "arcface_template",
    "create_detector",
    "estimate_alignment",
    "list_detectors",
    "probe_video",
    "track_subject",
    "umeyama",
]

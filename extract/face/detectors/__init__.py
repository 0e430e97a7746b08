"""Face detectors by name: ``create_detector("mtcnn", device="cuda:0")``, ``list_detectors()``.

=================  ==========================================================================================
``mtcnn``          facenet-pytorch MTCNN; weights inside its wheel: works offline and on the CPU
``retinaface-r50`` RetinaFace ResNet-50; weights ``Resnet50_Final.pth`` (or the retinaface-pytorch release zip)
``retinaface-mnet`` RetinaFace MobileNet-0.25; weights ``mobilenet0.25_Final.pth``
``tiny``           test twin: finds magenta marker rectangles, no weights
=================  ==========================================================================================

Every detector takes a batch of RGB uint8 frames and returns one ``Detections`` per frame from one forward call.
"""

from __future__ import annotations

from typing import Any

import torch

from extract.face.detectors.base import Detections, FaceDetector, Frames, normalize_landmark_order
from store.registry import Registry

DETECTORS: Registry[FaceDetector] = Registry("face detector")


@DETECTORS.register("mtcnn", weights="inside the facenet-pytorch wheel", offline=True)
def _mtcnn(device: torch.device | str = "cpu", **cfg: Any) -> FaceDetector:
    from extract.face.detectors.mtcnn import MTCNNDetector

    return MTCNNDetector(device, **cfg)


@DETECTORS.register("retinaface-r50", weights="Resnet50_Final.pth", offline=False)
def _retinaface_r50(device: torch.device | str = "cpu", **cfg: Any) -> FaceDetector:
    from extract.face.detectors.retinaface import RetinaFaceDetector

    return RetinaFaceDetector(device, backbone="resnet50", **cfg)


@DETECTORS.register("retinaface-mnet", weights="mobilenet0.25_Final.pth", offline=False)
def _retinaface_mnet(device: torch.device | str = "cpu", **cfg: Any) -> FaceDetector:
    from extract.face.detectors.retinaface import RetinaFaceDetector

    return RetinaFaceDetector(device, backbone="mobilenet0.25", **cfg)


@DETECTORS.register("tiny", weights="none (test twin)", offline=True)
def _tiny(device: torch.device | str = "cpu", **cfg: Any) -> FaceDetector:
    from extract.face.detectors.tiny import TinyMarkerDetector

    return TinyMarkerDetector(device, **cfg)


def create_detector(name: str, device: torch.device | str = "cpu", **cfg: Any) -> FaceDetector:
    """Build the detector registered as ``name`` on ``device``; ``cfg`` goes to its constructor."""
    return DETECTORS.create(name, device=device, **cfg)


def list_detectors() -> list[str]:
    return DETECTORS.names()


__all__ = [
    "DETECTORS",
    "Detections",
    "FaceDetector",
    "Frames",
    "create_detector",
    "list_detectors",
    "normalize_landmark_order",
]

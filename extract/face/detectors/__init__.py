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

import importlib
from typing import TYPE_CHECKING, Any

from extract.face.detectors.weight_files import RETINAFACE_FILES, cached_file
from registry import Registry

if TYPE_CHECKING:
    import torch

    from extract.face.detectors.base import Detections, FaceDetector, Frames, normalize_landmark_order

DETECTORS: Registry[Any] = Registry("face detector")
_BASE_NAMES = ("Detections", "FaceDetector", "Frames", "normalize_landmark_order")


def __getattr__(name: str) -> Any:
    """The torch-using base names, imported on first use (listing detectors stays torch-free)."""
    if name in _BASE_NAMES:
        return getattr(importlib.import_module("extract.face.detectors.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@DETECTORS.register("mtcnn", weights="inside the facenet-pytorch wheel", offline=True)
def _mtcnn(device: torch.device | str = "cpu", **cfg: Any) -> FaceDetector:
    from extract.face.detectors.mtcnn import MTCNNDetector

    return MTCNNDetector(device, **cfg)


@DETECTORS.register("retinaface-r50", weights="Resnet50_Final.pth", offline=False,
                    files=RETINAFACE_FILES["resnet50"])
def _retinaface_r50(device: torch.device | str = "cpu", **cfg: Any) -> FaceDetector:
    from extract.face.detectors.retinaface import RetinaFaceDetector

    return RetinaFaceDetector(device, backbone="resnet50", **cfg)


@DETECTORS.register("retinaface-mnet", weights="mobilenet0.25_Final.pth", offline=False,
                    files=RETINAFACE_FILES["mobilenet0.25"])
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


def weights_available(name: str) -> bool:
    """True when ``name`` builds without fetching weights: they ship with a package, or a known checkpoint file
    is in torch's hub cache (a ``weights=PATH`` option is checked when the detector is built)."""
    info = DETECTORS.info(name)
    return bool(info.get("offline")) or cached_file(tuple(info.get("files", ()))) is not None


__all__ = [
    "DETECTORS",
    "Detections",
    "FaceDetector",
    "Frames",
    "create_detector",
    "list_detectors",
    "normalize_landmark_order",
    "weights_available",
]

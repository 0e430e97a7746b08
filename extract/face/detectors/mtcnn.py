"""MTCNN from facenet-pytorch: the detector that works offline, on the CPU, out of the box.

Its three small networks' weights (``pnet.pt``, ``rnet.pt``, ``onet.pt``) ship inside the facenet-pytorch wheel.
facenet-pytorch pins old torch/numpy releases, so the Makefile installs it with ``--no-deps``; under numpy 2 its
batched ``detect`` returns object arrays holding ``None`` for frames without a face, normalised here.
A batch is one ``detect`` call (P-Net over the image pyramid of the whole batch, then R-Net and O-Net over all
candidate crops); frames of different sizes are zero-padded to a common size first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from extract.face.detectors.base import Detections, FaceDetector, file_sha256


def _import_mtcnn() -> Any:
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the 'mtcnn' detector needs facenet-pytorch: pip install --no-deps 'facenet-pytorch>=2.5' "
            "(make install does this)"
        ) from exc
    return MTCNN


class MTCNNDetector(FaceDetector):
    """facenet-pytorch MTCNN, batched. ``thresholds`` are its three stage thresholds; ``min_face_size`` in px."""

    name = "mtcnn"

    def __init__(
        self,
        device: torch.device | str = "cpu",
        *,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        super().__init__(device)
        mtcnn_cls = _import_mtcnn()
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.model = mtcnn_cls(
            keep_all=True,
            select_largest=False,  # sorted by probability
            min_face_size=self.min_face_size,
            thresholds=list(self.thresholds),
            factor=self.factor,
            device=self.device,
        ).eval()
        import facenet_pytorch

        self._weights_dir = Path(facenet_pytorch.__file__).parent / "data"
        self._version = getattr(facenet_pytorch, "__version__", None) or _dist_version("facenet-pytorch")
        self._spec: dict[str, Any] | None = None

    def _detect_batch(self, batch: torch.Tensor, sizes: list[tuple[int, int]]) -> list[Detections]:
        boxes, probs, points = self.model.detect(batch, landmarks=True)
        out = []
        for i, (h, w) in enumerate(sizes):
            dets = Detections.from_arrays(_plain(boxes[i]), _plain(points[i]), _plain(probs[i]))
            out.append(_clip_to_frame(dets, h, w))
        return out

    @property
    def spec(self) -> dict[str, Any]:
        if self._spec is None:
            weights = {
                name: {"path": str(self._weights_dir / name), "sha256": file_sha256(self._weights_dir / name)}
                for name in ("pnet.pt", "rnet.pt", "onet.pt")
                if (self._weights_dir / name).is_file()
            }
            self._spec = {
                "name": self.name,
                "implementation": f"facenet-pytorch {self._version}",
                "weights": weights,
                "thresholds": list(self.thresholds),
                "min_face_size": self.min_face_size,
                "factor": self.factor,
                "input_size": "original frame size (image pyramid)",
                "landmark_order": "left_eye,right_eye,nose,mouth_left,mouth_right (image sides)",
            }
        return dict(self._spec)


def _plain(value: Any) -> Any:
    """facenet-pytorch's per-frame entries: None / [None] for no face, else (object) arrays -> float arrays."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=object)
    if arr.size == 0 or any(v is None for v in arr.reshape(-1)):
        return None
    return arr.astype(np.float32)


def _clip_to_frame(dets: Detections, h: int, w: int) -> Detections:
    """Drop faces whose box lies wholly in the zero padding of a smaller frame; clip boxes to the frame."""
    if len(dets) == 0:
        return dets
    boxes = dets.boxes.copy()
    keep = (boxes[:, 0] < w) & (boxes[:, 1] < h)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    return Detections(boxes[keep], dets.landmarks[keep], dets.scores[keep])


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"

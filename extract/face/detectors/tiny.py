"""``tiny``: a deterministic test twin of a face detector that needs no weights.

It "detects" marker faces — solid magenta rectangles painted with ``draw_marker_face`` — so tests and demos can
place faces exactly where they want them (moving subjects, distractors, empty frames). It keeps the full
detector contract: one batched tensor operation per ``detect`` call (the forward call), ``Detections`` with
boxes, five landmarks (the ArcFace template laid into the box) and scores (the rectangle's fill ratio).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage

from extract.face.detectors.base import Detections, FaceDetector

MARKER_RGB = (255, 0, 255)
# Landmarks of the ArcFace 112x112 template as fractions of the box: a marker aligns onto the template exactly.
_TEMPLATE_FRACTIONS = (
    np.array(
        [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
        dtype=np.float32,
    )
    / 112.0
)


def draw_marker_face(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Paint a marker face into ``image`` (H, W, 3) uint8 in place over ``box`` = (x1, y1, x2, y2) px."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    h, w = image.shape[:2]
    image[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)] = MARKER_RGB
    return image


def marker_landmarks(box: np.ndarray) -> np.ndarray:
    """The five landmarks the tiny detector reports for ``box`` (x1, y1, x2, y2): (5, 2) float32."""
    box = np.asarray(box, dtype=np.float32)
    size = box[2:] - box[:2]
    return (box[:2] + _TEMPLATE_FRACTIONS * size).astype(np.float32)


class TinyMarkerDetector(FaceDetector):
    """Finds magenta rectangles of at least ``min_size`` px a side; score = fraction of the box that is marker."""

    name = "tiny"

    def __init__(self, device: torch.device | str = "cpu", *, min_size: int = 4, tolerance: int = 60) -> None:
        super().__init__(device)
        self.min_size = int(min_size)
        self.tolerance = int(tolerance)

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "implementation": "extract.face.detectors.tiny (marker rectangles, test twin)",
            "weights": {"path": None, "sha256": "none"},
            "min_size": self.min_size,
            "tolerance": self.tolerance,
            "input_size": "original frame size",
        }

    def _detect_batch(self, batch: torch.Tensor, sizes: list[tuple[int, int]]) -> list[Detections]:
        target = torch.tensor(MARKER_RGB, dtype=torch.int16, device=batch.device)
        # The forward call: one batched comparison, (N, H, W) marker mask.
        mask = ((batch.to(torch.int16) - target).abs() <= self.tolerance).all(dim=-1)
        masks = mask.cpu().numpy()
        out = []
        for m, (h, w) in zip(masks, sizes, strict=True):
            labels, _ = ndimage.label(m[:h, :w])
            boxes, scores = [], []
            for i, sl in enumerate(ndimage.find_objects(labels), start=1):
                if sl is None:
                    continue
                ys, xs = sl
                bh, bw = ys.stop - ys.start, xs.stop - xs.start
                if bh < self.min_size or bw < self.min_size:
                    continue
                fill = float((labels[sl] == i).sum()) / float(bh * bw)
                boxes.append([xs.start, ys.start, xs.stop, ys.stop])
                scores.append(fill)
            if not boxes:
                out.append(Detections.empty())
                continue
            b = np.asarray(boxes, dtype=np.float32)
            out.append(Detections.from_arrays(b, np.stack([marker_landmarks(x) for x in b]), scores))
        return out

"""The face-detector contract: a batch of RGB frames in, one ``Detections`` per frame out, one forward call.

Every detector returns boxes as ``(k, 4)`` float32 ``x1, y1, x2, y2`` in pixels of the frame it was given, five
landmarks ``(k, 5, 2)`` float32 in the order image-left eye, image-right eye, nose, image-left mouth corner,
image-right mouth corner (normalised here, whatever the network's own order), and scores ``(k,)`` float32 in
[0, 1], sorted by score, highest first.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

Frames = Sequence[np.ndarray] | np.ndarray | torch.Tensor
"""A batch of RGB uint8 frames: a list of (H, W, 3) arrays (sizes may differ), or an (N, H, W, 3) array/tensor."""


@dataclass(frozen=True)
class Detections:
    """The faces found in one frame, sorted by score (highest first)."""

    boxes: np.ndarray  # (k, 4) float32 x1, y1, x2, y2 in pixels
    # (k, 5, 2) float32 (x, y): left eye, right eye, nose, left mouth corner, right mouth corner (image sides)
    landmarks: np.ndarray
    scores: np.ndarray  # (k,) float32

    def __post_init__(self) -> None:
        k = self.scores.shape[0]
        if self.boxes.shape != (k, 4) or self.landmarks.shape != (k, 5, 2):
            raise ValueError(
                f"Detections: inconsistent shapes boxes {self.boxes.shape}, landmarks {self.landmarks.shape}, "
                f"scores {self.scores.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_arrays(cls, boxes: Any, landmarks: Any, scores: Any) -> Detections:
        """Build from anything array-like (None or empty: no face), normalising dtype, order and landmark sides."""
        if boxes is None or scores is None or np.size(scores) == 0:
            return cls.empty()
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if landmarks is None:
            landmarks = np.full((len(scores), 5, 2), np.nan, np.float32)
        landmarks = normalize_landmark_order(np.asarray(landmarks, dtype=np.float32).reshape(-1, 5, 2))
        order = np.argsort(-scores, kind="stable")
        return cls(boxes[order], landmarks[order], scores[order])

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, index: Any) -> Detections:
        """The subset at ``index`` (an int array or a boolean mask)."""
        index = np.asarray(index)
        if index.dtype != bool:
            index = index.astype(np.int64).reshape(-1)
        return Detections(self.boxes[index], self.landmarks[index], self.scores[index])

    def areas(self) -> np.ndarray:
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]


def normalize_landmark_order(landmarks: np.ndarray) -> np.ndarray:
    """Put the image-left eye first and the image-left mouth corner fourth, for faces at any roll angle.

    "Left" is taken in the face's own frame: with ``up`` the direction from the mouth to the eyes, the left
    direction is ``up`` turned a quarter turn counter-clockwise on screen, so an upright face orders by x and a
    face rotated by 90° still orders correctly. ``landmarks``: (..., 5, 2); returns a new array (same float dtype).
    """
    lm = np.array(landmarks, copy=True)
    if not np.issubdtype(lm.dtype, np.floating):
        lm = lm.astype(np.float32)
    if lm.size == 0:
        return lm
    eyes_mid = 0.5 * (lm[..., 0, :] + lm[..., 1, :])
    mouth_mid = 0.5 * (lm[..., 3, :] + lm[..., 4, :])
    up = eyes_mid - mouth_mid  # points from the mouth to the eyes (y grows downwards on screen)
    left = np.stack([up[..., 1], -up[..., 0]], axis=-1)  # upright face: up = (0, -1) -> left = (-1, 0)
    for a, b in ((0, 1), (3, 4)):
        swap = np.einsum("...i,...i->...", lm[..., a, :] - lm[..., b, :], left) < 0
        if np.any(swap):
            first, second = lm[..., a, :].copy(), lm[..., b, :].copy()
            lm[..., a, :] = np.where(swap[..., None], second, first)
            lm[..., b, :] = np.where(swap[..., None], first, second)
    return lm


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def frames_to_batch(
    frames: Frames, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Stack frames into one (N, H, W, 3) uint8 tensor on ``device``, zero-padding smaller frames at the
    bottom/right (pixel coordinates are unchanged by that padding). Returns the batch and each frame's (H, W)."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(
                f"expected an (N, H, W, 3) uint8 tensor, got {tuple(frames.shape)} {frames.dtype}"
            )
        n, h, w, _ = frames.shape
        return frames.to(device, non_blocking=True), [(int(h), int(w))] * int(n)
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        frames = list(frames)
    images = [np.asarray(f) for f in frames]
    for img in images:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8 RGB frames, got {img.shape} {img.dtype}")
    sizes = [(int(img.shape[0]), int(img.shape[1])) for img in images]
    if not images:
        return torch.zeros((0, 1, 1, 3), dtype=torch.uint8, device=device), []
    if len(set(sizes)) == 1:
        stacked = np.stack(images)
    else:
        stacked = np.zeros((len(images), max(s[0] for s in sizes), max(s[1] for s in sizes), 3), np.uint8)
        for i, img in enumerate(images):
            stacked[i, : img.shape[0], : img.shape[1]] = img
    batch = torch.from_numpy(stacked)
    device = torch.device(device)
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True), sizes


class FaceDetector(ABC):
    """Base of every registered detector. Subclasses implement ``_detect_batch`` (one forward call per batch).

    ``forward_calls`` counts batched forward calls and ``frames_seen`` the frames given, so a caller can check
    ``forward_calls / frames_seen ≈ 1 / batch``. ``spec`` is the manifest entry of the detector.
    """

    name: str = ""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.forward_calls = 0
        self.frames_seen = 0

    @abstractmethod
    def _detect_batch(self, batch: torch.Tensor, sizes: list[tuple[int, int]]) -> list[Detections]:
        """``batch``: (N, H, W, 3) uint8 on ``self.device``; ``sizes``: each frame's own (H, W)."""

    @property
    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Name, weights (path, sha256), thresholds and input size: what changes the detections."""

    @torch.inference_mode()
    def detect(self, frames: Frames) -> list[Detections]:
        """Detect faces in a batch of RGB uint8 frames with one forward call; one ``Detections`` per frame."""
        batch, sizes = frames_to_batch(frames, self.device)
        if not sizes:
            return []
        self.forward_calls += 1
        self.frames_seen += len(sizes)
        out = self._detect_batch(batch, sizes)
        if len(out) != len(sizes):
            raise RuntimeError(f"{self.name}: {len(out)} results for {len(sizes)} frames")
        return out

    def reset_counters(self) -> None:
        self.forward_calls = 0
        self.frames_seen = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device})"

"""Per-frame and per-face signals as pure array functions: shot cuts, appearance descriptors, head pose, blur.

- ``frame_signature`` / ``cut_distance``: a small joint colour histogram per frame; a hard shot cut is a large
  histogram distance between consecutive frames (``is_cut``). A cut ends every track (``extract.face.track``).
- ``face_descriptors``: a cheap appearance descriptor per face — equalised grey levels of a 32x32 crop
  aligned on the five landmarks, pooled to 8x8 — compared by cosine similarity (``similarity``) to a track's running
  template, so a track never silently continues on another person.
- ``head_pose``: yaw and pitch (degrees) estimated from the five landmarks alone (nose offset from the eye/mouth
  midline), ``face_size``: the box side in px, ``blur``: variance of the Laplacian of the aligned crop's grey.
"""

from __future__ import annotations

import cv2
import numpy as np

from extract.face.align import estimate_alignment

DESCRIPTOR_SIZE = 32


def frame_signature(image: np.ndarray, bins: int = 8) -> np.ndarray:
    """A normalised joint RGB histogram (bins**3,) of a frame, computed on a <= 64 px thumbnail."""
    h, w = image.shape[:2]
    step = max(1, max(h, w) // 64)
    small = np.ascontiguousarray(image[::step, ::step, :3])
    hist = cv2.calcHist([small], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).reshape(-1)
    return (hist / max(1.0, float(hist.sum()))).astype(np.float32)


def cut_distance(previous: np.ndarray, current: np.ndarray) -> float:
    """Total-variation distance in [0, 1] between two frame signatures."""
    return 0.5 * float(np.abs(previous - current).sum())


def is_cut(previous: np.ndarray | None, current: np.ndarray, threshold: float) -> bool:
    """A hard shot cut between two consecutive sampled frames (False for the first frame)."""
    return previous is not None and cut_distance(previous, current) >= threshold


def face_descriptors(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Unit-norm appearance descriptors (k, 64) float32 of the faces with ``landmarks`` (k, 5, 2) in ``image``:
    the grey levels of the face aligned to a 32x32 template (margin 0.1), histogram-equalised, averaged to 8x8,
    mean removed. Chosen by measurement (docs/face.md): on carphone the same man stays >= 0.70 to his running
    template while astronaut / Grace Hopper / carphone cross-similarities stay <= 0.54."""
    k = int(landmarks.shape[0])
    if k == 0:
        return np.zeros((0, 64), np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    mats = estimate_alignment(landmarks.astype(np.float64), DESCRIPTOR_SIZE, 0.1)
    out = []
    for m in mats:
        patch = cv2.warpAffine(grey, m.astype(np.float64), (DESCRIPTOR_SIZE, DESCRIPTOR_SIZE),
                               flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        patch = cv2.equalizeHist(patch)
        levels = cv2.resize(patch, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1)
        out.append(_unit(levels - levels.mean()))
    return np.stack(out).astype(np.float32)


def _unit(vec: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(vec))
    return vec / n if n > 1e-9 else vec


def similarity(template: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """Cosine similarity of one template (d,) with each descriptor (k, d)."""
    if descriptors.shape[0] == 0:
        return np.zeros(0, np.float32)
    return descriptors @ _unit(template)


def head_pose(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch in degrees (k,) from five landmarks (k, 5, 2); 0 = frontal, |yaw| ~ 90 = profile.

    Yaw: the nose's offset from the eye/mouth midline relative to half the eye distance (arcsin, clipped);
    pitch: the nose's height between the eye line and the mouth line relative to the frontal ratio (ArcFace
    template: 0.49 of the way down), positive = looking down.
    """
    lm = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    eyes = 0.5 * (lm[:, 0] + lm[:, 1])
    mouth = 0.5 * (lm[:, 3] + lm[:, 4])
    axis = mouth - eyes
    height = np.linalg.norm(axis, axis=1)
    u = axis / np.maximum(height, 1e-9)[:, None]
    across = np.stack([-u[:, 1], u[:, 0]], axis=1)  # perpendicular to the face's vertical axis
    half_eye = 0.5 * np.linalg.norm(lm[:, 1] - lm[:, 0], axis=1)
    mid = 0.5 * (eyes + mouth)
    nose = lm[:, 2]
    side = np.einsum("ij,ij->i", nose - mid, across)
    scale = np.maximum(np.maximum(half_eye, 0.5 * height), 1e-9)
    yaw = np.degrees(np.arcsin(np.clip(side / scale, -1.0, 1.0)))
    down = np.einsum("ij,ij->i", nose - eyes, u) / np.maximum(height, 1e-9)
    pitch = np.degrees(np.arcsin(np.clip((down - 0.49) / 0.5, -1.0, 1.0)))
    return yaw.astype(np.float32), pitch.astype(np.float32)


def face_size(boxes: np.ndarray) -> np.ndarray:
    """Face size in px (k,): sqrt of the box area."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    wh = np.clip(b[:, 2:] - b[:, :2], 0, None)
    return np.sqrt(wh[:, 0] * wh[:, 1]).astype(np.float32)


def blur(crops: np.ndarray) -> np.ndarray:
    """Sharpness (n,) of aligned crops (n, s, s, 3) uint8: variance of the Laplacian of the grey (low = blurred)."""
    out = np.zeros(len(crops), np.float32)
    for i, crop in enumerate(crops):
        grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
        out[i] = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return out

"""Cheap tracking between detector keyframes: move each face of the previous frame by sparse optical flow.

``propagate(prev_grey, grey, dets)`` tracks a grid of points inside each face box (plus its five landmarks) with
pyramidal Lucas-Kanade, keeps the points that pass a forward-backward check, fits a similarity transform to
them and applies it to the box and landmarks. A face whose points do not track (occlusion, a fast turn, a cut)
makes the whole frame fail (None): the caller then runs the detector on that frame instead. So does a face whose
aligned grey patch changed by more than ``max_change`` (mean absolute, 0-1) since the previous frame: points on a
flat region "track" even when the face is gone.
"""

from __future__ import annotations

import cv2
import numpy as np

from extract.face.align import estimate_alignment
from extract.face.detectors.base import Detections

_LK = {"winSize": (15, 15), "maxLevel": 2, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


def grey(image: np.ndarray) -> np.ndarray:
    """The grey image flow runs on."""
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


def _face_points(box: np.ndarray, landmarks: np.ndarray, n: int = 5) -> np.ndarray:
    x1, y1, x2, y2 = box
    xs = np.linspace(x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1), n)
    ys = np.linspace(y1 + 0.2 * (y2 - y1), y2 - 0.2 * (y2 - y1), n)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return np.concatenate([grid, landmarks]).astype(np.float32)


def propagate(prev_grey: np.ndarray, cur_grey: np.ndarray, dets: Detections, max_fb_px: float = 1.0,
              min_inliers: float = 0.5, max_change: float = 0.08) -> Detections | None:
    """``dets`` of the previous frame moved into the current one, or None when any face fails to track."""
    if len(dets) == 0:
        return dets
    pts = [_face_points(b, lm) for b, lm in zip(dets.boxes, dets.landmarks, strict=True)]
    sizes = [len(p) for p in pts]
    p0 = np.concatenate(pts).reshape(-1, 1, 2)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev_grey, cur_grey, p0, None, **_LK)
    if p1 is None:
        return None
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur_grey, prev_grey, p1, None, **_LK)
    if back is None:
        return None
    side = np.sqrt(np.maximum(dets.areas(), 1.0))
    fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
    good = (st1.reshape(-1) == 1) & (st2.reshape(-1) == 1)
    boxes, lms = [], []
    start = 0
    for k, n in enumerate(sizes):
        sl = slice(start, start + n)
        start += n
        ok = good[sl] & (fb[sl] <= max(max_fb_px, 0.02 * side[k]))
        if ok.sum() < max(3, min_inliers * n):
            return None
        src = p0[sl].reshape(-1, 2)[ok]
        dst = p1[sl].reshape(-1, 2)[ok]
        mat, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        if mat is None:
            return None
        scale = float(np.hypot(mat[0, 0], mat[1, 0]))
        if not 0.8 <= scale <= 1.25:
            return None
        corners = np.array([[dets.boxes[k, 0], dets.boxes[k, 1]], [dets.boxes[k, 2], dets.boxes[k, 3]]])
        moved = corners @ mat[:, :2].T + mat[:, 2]
        boxes.append([*np.minimum(moved[0], moved[1]), *np.maximum(moved[0], moved[1])])
        lms.append(dets.landmarks[k] @ mat[:, :2].T + mat[:, 2])
    moved = Detections(np.asarray(boxes, np.float32), np.asarray(lms, np.float32), dets.scores.copy())
    if photometric_change(prev_grey, cur_grey, dets.landmarks, moved.landmarks).max() > max_change:
        return None  # the face left (or was covered): points on flat regions can "track" without it
    return moved


def photometric_change(prev_grey: np.ndarray, cur_grey: np.ndarray, prev_lm: np.ndarray, cur_lm: np.ndarray,
                       size: int = 24) -> np.ndarray:
    """Per face, the mean absolute grey difference (0-1) between its aligned patch in the previous frame and its
    aligned patch in the current one."""
    out = np.zeros(len(prev_lm), np.float32)
    pm = estimate_alignment(np.asarray(prev_lm, np.float64), size, 0.1)
    cm = estimate_alignment(np.asarray(cur_lm, np.float64), size, 0.1)
    for k in range(len(prev_lm)):
        a = cv2.warpAffine(prev_grey, pm[k], (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        b = cv2.warpAffine(cur_grey, cm[k], (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        out[k] = float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean()) / 255.0
    return out

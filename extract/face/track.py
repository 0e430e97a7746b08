"""Subject face selection: one person per video, kept by box continuity.

The rule (``SubjectTracker``; ``track_subject`` runs it over a whole sequence):

1. Acquire: over a window of ``init_frames`` frames, follow every face forward by continuity and keep the chain
   with the largest sum of ``score × box side`` (side = sqrt(area)) — the most confident, largest face that
   stays in view; a big detection in one frame only does not outweigh a face present throughout. Frames
   of the window before that chain starts, or where it is missing, have no subject face.
2. Track: in each later frame the subject is the face that continues the last kept box: IoU ≥ ``iou_min`` or a
   centre shift ≤ ``center_tol`` × the box side (the allowance grows with each missed frame), with an area ratio
   within ``size_ratio_max``; among several, the highest IoU, then the nearest centre. A bigger face elsewhere is
   never taken over the subject.
3. Miss: a frame without such a face has no subject face (no fallback to another person). After
   ``max_misses`` consecutive misses the subject is considered lost and is acquired again as in step 1.

Everything here is pure array code over ``Detections``; the tracker only keeps the last box and a counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from extract.face.detectors.base import Detections


@dataclass(frozen=True)
class TrackConfig:
    init_frames: int = 5
    iou_min: float = 0.3
    center_tol: float = 0.5
    size_ratio_max: float = 2.0
    max_misses: int = 10

    def __post_init__(self) -> None:
        if self.init_frames < 1 or self.max_misses < 0 or self.size_ratio_max < 1:
            raise ValueError(f"invalid TrackConfig {self}")


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with each of ``boxes`` (k, 4), all x1, y1, x2, y2."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(np.clip(box[2:] - box[:2], 0, None))
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_face(ref_box: np.ndarray, dets: Detections, cfg: TrackConfig, misses: int = 0) -> int | None:
    """Index of the face in ``dets`` that continues ``ref_box``, or None (see the module rule, step 2)."""
    if len(dets) == 0:
        return None
    ref = np.asarray(ref_box, dtype=np.float64)
    boxes = dets.boxes.astype(np.float64)
    iou = box_iou(ref, boxes)
    ref_wh = np.clip(ref[2:] - ref[:2], 1e-6, None)
    side = float(np.sqrt(ref_wh[0] * ref_wh[1]))
    centers = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    shift = np.linalg.norm(centers - 0.5 * (ref[:2] + ref[2:]), axis=1)
    ratio = np.clip(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1e-6, None), axis=1), 1e-12, None) / (
        ref_wh[0] * ref_wh[1]
    )
    size_ok = (ratio <= cfg.size_ratio_max**2) & (ratio >= cfg.size_ratio_max**-2)
    ok = size_ok & ((iou >= cfg.iou_min) | (shift <= cfg.center_tol * side * (1 + misses)))
    if not ok.any():
        return None
    candidates = np.flatnonzero(ok)
    best = candidates[np.lexsort((shift[candidates], -iou[candidates]))[0]]
    return int(best)


def _follow(
    start: int, first: int, window: Sequence[Detections], cfg: TrackConfig
) -> tuple[list[int | None], float]:
    """The chain starting at face ``start`` of frame ``first``: per-frame indices of the window and its weight."""
    picks: list[int | None] = [None] * len(window)
    picks[first] = start
    ref = window[first].boxes[start]
    weight = float(window[first].scores[start] * np.sqrt(window[first].areas()[start]))
    misses = 0
    for t in range(first + 1, len(window)):
        j = match_face(ref, window[t], cfg, misses)
        if j is None:
            misses += 1
            continue
        picks[t], ref, misses = j, window[t].boxes[j], 0
        weight += float(window[t].scores[j] * np.sqrt(window[t].areas()[j]))
    return picks, weight


def acquire_subject(window: Sequence[Detections], cfg: TrackConfig) -> list[int | None]:
    """Step 1 of the rule over ``window``: the chain with the largest sum of score × box side (ties: earliest
    start, then the higher-scoring start). All None when the window has no face."""
    best: tuple[float, list[int | None]] | None = None
    for first, dets in enumerate(window):
        for start in range(len(dets)):
            picks, weight = _follow(start, first, window, cfg)
            if best is None or weight > best[0] * (1 + 1e-9):
                best = (weight, picks)
    return best[1] if best is not None else [None] * len(window)


class SubjectTracker:
    """Incremental form of the rule: ``push(dets)`` per frame returns the decisions now final (possibly several
    frames at once, possibly none while a window is being acquired); ``flush()`` returns the rest at the end.
    Decisions are face indices into that frame's ``Detections`` or None, in frame order."""

    def __init__(self, cfg: TrackConfig | None = None) -> None:
        self.cfg = cfg or TrackConfig()
        self._pending: list[Detections] = []
        self._ref: np.ndarray | None = None
        self._misses = 0

    @property
    def tracking(self) -> bool:
        return self._ref is not None

    def push(self, dets: Detections) -> list[int | None]:
        if self._ref is not None:
            j = match_face(self._ref, dets, self.cfg, self._misses)
            if j is not None:
                self._ref, self._misses = dets.boxes[j].copy(), 0
                return [j]
            self._misses += 1
            if self._misses > self.cfg.max_misses:
                self._ref, self._misses = None, 0  # lost: acquire again from the next frame
            return [None]
        self._pending.append(dets)
        if all(len(d) == 0 for d in self._pending):
            self._pending.clear()
            return [None]
        if len(self._pending) < self.cfg.init_frames:
            return []
        return self._acquire()

    def flush(self) -> list[int | None]:
        return self._acquire() if self._pending else []

    def _acquire(self) -> list[int | None]:
        window, self._pending = self._pending, []
        picks = acquire_subject(window, self.cfg)
        last = max((t for t, p in enumerate(picks) if p is not None), default=None)
        if last is not None:
            self._ref = window[last].boxes[picks[last]].copy()
            self._misses = len(window) - 1 - last
        return picks


def track_subject(detections: Sequence[Detections], cfg: TrackConfig | None = None) -> list[int | None]:
    """The subject's face index in each frame of one video (None: no subject face there)."""
    tracker = SubjectTracker(cfg)
    out: list[int | None] = []
    for dets in detections:
        out += tracker.push(dets)
    out += tracker.flush()
    return out


def largest_face(detections: Sequence[Detections]) -> list[int | None]:
    """Per-frame choice for unrelated still images: the face with the largest score × area."""
    return [int(np.argmax(d.scores * d.areas())) if len(d) else None for d in detections]

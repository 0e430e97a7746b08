"""Subject face selection: one person per track, kept by box continuity and an appearance gate.

The rule (``SubjectTracker``; ``track_subject`` runs it over a whole sequence):

1. Acquire: over a window of ``init_frames`` frames, follow every face forward by continuity (and, when
   appearance descriptors are given, similarity to the chain's first face >= ``min_similarity``) and keep the
   chain present in the most frames; ties go to the larger sum of ``score x box side``. A big detection in one
   frame only never outweighs a face present throughout. Frames of the window before that chain starts, or
   where it is missing, have no subject face.
2. Track: in each later frame the subject is the face that continues the last kept box (IoU >= ``iou_min`` or a
   centre shift <= ``center_tol`` x the box side, the allowance growing with each missed frame, area ratio within
   ``size_ratio_max``) *and* whose descriptor is >= ``min_similarity`` to the track's running template. A face
   elsewhere is never taken, however similar (look-alikes; marker faces): a subject that jumped is re-acquired
   after the misses (step 3) and gets its old ``track_id`` back by appearance (step 5). A face overlapping the
   last box by IoU >= ``hold_iou`` needs only ``hold_similarity``: without a cut (step 4) a person does not turn
   into another in place, while a hand, a turn or passing light lowers the similarity of the same face (real
   carphone footage at 5 fps: 0.56 at IoU 0.79).
3. Miss: a frame without such a face has no subject face. Missed frames are held, not decided: if the subject
   comes back within ``max_misses`` frames they are no-face rows; if not, the subject is lost and the held
   frames start the next acquisition window, so the faces in them are not thrown away.
4. A shot cut (``cut=True``, see ``extract.face.quality``) ends the track: a new acquisition starts at the cut.
5. Identities: each acquired chain is compared with the templates of the identities seen before in the item
   (>= ``reid_similarity``: the same ``track_id``), else it gets a new ``track_id`` and its first row is flagged
   ``identity_changed`` (when an earlier identity existed).

Without descriptors (``desc=None``) the appearance terms are skipped (geometry only). ``MultiTracker`` gives
every face of every frame a track id (``subject="all"``). Everything here is pure array code over ``Detections``.
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
    min_similarity: float = 0.6  # appearance gate for continuing a track (cosine of quality.face_descriptors)
    reid_similarity: float = 0.65  # a known identity again / the subject away from its last box
    template_rate: float = 0.1  # running template update per kept face
    hold_iou: float = 0.5  # a face this far over the track's last box (no cut between) continues it ...
    hold_similarity: float = 0.4  # ... at this lower similarity: pose and light change looks more than place

    def __post_init__(self) -> None:
        if self.init_frames < 1 or self.max_misses < 0 or self.size_ratio_max < 1 or not 0 < self.template_rate <= 1:
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
    """Index of the face in ``dets`` that continues ``ref_box`` (geometry only), or None."""
    cand = continuations(ref_box, dets, cfg, misses)
    return int(cand[0]) if len(cand) else None


def continuations(ref_box: np.ndarray, dets: Detections, cfg: TrackConfig, misses: int = 0) -> np.ndarray:
    """Indices of the faces in ``dets`` that continue ``ref_box`` geometrically, best first (step 2)."""
    if len(dets) == 0:
        return np.zeros(0, np.int64)
    ref = np.asarray(ref_box, dtype=np.float64)
    boxes = dets.boxes.astype(np.float64)
    iou = box_iou(ref, boxes)
    ref_wh = np.clip(ref[2:] - ref[:2], 1e-6, None)
    side = float(np.sqrt(ref_wh[0] * ref_wh[1]))
    centers = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    shift = np.linalg.norm(centers - 0.5 * (ref[:2] + ref[2:]), axis=1)
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1e-6, None), axis=1)
    ratio = np.clip(areas, 1e-12, None) / (ref_wh[0] * ref_wh[1])
    size_ok = (ratio <= cfg.size_ratio_max**2) & (ratio >= cfg.size_ratio_max**-2)
    ok = size_ok & ((iou >= cfg.iou_min) | (shift <= cfg.center_tol * side * (1 + misses)))
    candidates = np.flatnonzero(ok)
    return candidates[np.lexsort((shift[candidates], -iou[candidates]))]


def _unit(vec: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(vec))
    return vec / n if n > 1e-9 else vec


@dataclass(frozen=True)
class Observation:
    """One frame for the tracker: its detections and (optionally) one unit descriptor per face (k, d)."""

    dets: Detections
    desc: np.ndarray | None = None


@dataclass(frozen=True)
class Decision:
    """The subject in one frame: face index (None: none), identity id (-1: none), first row of a new person."""

    pick: int | None
    track_id: int = -1
    identity_changed: bool = False


NO_FACE = Decision(None)


def _step(ref: np.ndarray, template: np.ndarray | None, obs: Observation, cfg: TrackConfig, misses: int) -> int | None:
    """The face of ``obs`` continuing a track at ``ref`` with appearance ``template`` (steps 2 and 3)."""
    cand = continuations(ref, obs.dets, cfg, misses)
    if template is None or obs.desc is None:
        return int(cand[0]) if len(cand) else None
    sims = obs.desc @ _unit(template)
    good = [int(j) for j in cand if appearance_continues(ref, obs.dets.boxes[j], float(sims[j]), cfg)]
    return good[0] if good else None


def appearance_continues(ref_box: np.ndarray, box: np.ndarray, sim: float, cfg: TrackConfig) -> bool:
    """The appearance gate of step 2: ``sim`` to the template >= ``min_similarity``, or >= ``hold_similarity``
    for a face that stays in place (IoU with the last box >= ``hold_iou``)."""
    if sim >= cfg.min_similarity:
        return True
    return sim >= cfg.hold_similarity and float(box_iou(ref_box, box[None])[0]) >= cfg.hold_iou


def _follow(start: int, first: int, window: Sequence[Observation], cfg: TrackConfig) -> tuple[list[int | None], int, float]:
    """The chain starting at face ``start`` of frame ``first``: per-frame picks, frames present, weight."""
    picks: list[int | None] = [None] * len(window)
    picks[first] = start
    d0 = window[first]
    ref = d0.dets.boxes[start]
    template = d0.desc[start].copy() if d0.desc is not None else None
    weight = float(d0.dets.scores[start] * np.sqrt(d0.dets.areas()[start]))
    misses, count = 0, 1
    for t in range(first + 1, len(window)):
        j = _step(ref, template, window[t], cfg, misses)
        if j is None:
            misses += 1
            continue
        picks[t], ref, misses, count = j, window[t].dets.boxes[j], 0, count + 1
        weight += float(window[t].dets.scores[j] * np.sqrt(window[t].dets.areas()[j]))
    return picks, count, weight


def acquire_subject(window: Sequence[Detections | Observation], cfg: TrackConfig) -> list[int | None]:
    """Step 1 of the rule over ``window``: the chain present in the most frames (ties: the larger sum of score x
    box side, then the earliest start). All None when the window has no face."""
    obs = [w if isinstance(w, Observation) else Observation(w) for w in window]
    best: tuple[int, float, list[int | None]] | None = None
    for first, o in enumerate(obs):
        for start in range(len(o.dets)):
            picks, count, weight = _follow(start, first, obs, cfg)
            if best is None or count > best[0] or (count == best[0] and weight > best[1] * (1 + 1e-9)):
                best = (count, weight, picks)
    return best[2] if best is not None else [None] * len(obs)


class SubjectTracker:
    """Incremental form of the rule: ``observe(dets, desc, cut)`` per frame returns the ``Decision`` s now final
    (possibly several frames at once, possibly none while a window is being acquired or a miss is held);
    ``finish()`` returns the rest at the end. ``push``/``flush`` are the same with face indices only."""

    def __init__(self, cfg: TrackConfig | None = None) -> None:
        self.cfg = cfg or TrackConfig()
        self._pending: list[Observation] = []  # acquisition window
        self._waiting: list[Observation] = []  # missed frames held while the subject may come back
        self._ref: np.ndarray | None = None
        self._template: np.ndarray | None = None
        self._misses = 0
        self._id = -1
        self._last_id = -1
        self.identities: list[np.ndarray | None] = []  # template per track id

    @property
    def tracking(self) -> bool:
        return self._ref is not None

    def push(self, dets: Detections) -> list[int | None]:
        return [d.pick for d in self.observe(dets)]

    def flush(self) -> list[int | None]:
        return [d.pick for d in self.finish()]

    def observe(self, dets: Detections, desc: np.ndarray | None = None, cut: bool = False) -> list[Decision]:
        obs = Observation(dets, desc)
        out = self._end() if cut else []
        if self._ref is None:
            self._pending.append(obs)
            return out + self._maybe_acquire()
        j = _step(self._ref, self._template, obs, self.cfg, self._misses)
        if j is not None:
            out += [NO_FACE] * len(self._waiting)
            self._waiting.clear()
            self._keep(obs, j)
            return out + [Decision(j, self._id)]
        self._misses += 1
        self._waiting.append(obs)
        if self._misses > self.cfg.max_misses:  # lost: the held frames open the next acquisition window
            self._ref, self._pending, self._waiting = None, self._waiting, []
            return out + self._maybe_acquire()
        return out

    def finish(self) -> list[Decision]:
        return self._end()

    # ---------------------------------------------------------------------------------------------- internals
    def _end(self) -> list[Decision]:
        """Decide every held frame and end the current track (a cut, or the end of the sequence)."""
        out = [NO_FACE] * len(self._waiting)
        self._waiting.clear()
        if self._pending:
            out += self._acquire()
        self._ref, self._template, self._misses = None, None, 0
        return out

    def _keep(self, obs: Observation, j: int) -> None:
        self._ref, self._misses = obs.dets.boxes[j].copy(), 0
        if obs.desc is not None:
            d = obs.desc[j]
            rate = self.cfg.template_rate
            self._template = d.copy() if self._template is None else _unit((1 - rate) * self._template + rate * d)
            self.identities[self._id] = self._template

    def _maybe_acquire(self) -> list[Decision]:
        if all(len(o.dets) == 0 for o in self._pending):
            out = [NO_FACE] * len(self._pending)
            self._pending.clear()
            return out
        if len(self._pending) < self.cfg.init_frames:
            return []
        return self._acquire()

    def _acquire(self) -> list[Decision]:
        window, self._pending = self._pending, []
        picks = acquire_subject(window, self.cfg)
        found = [t for t, p in enumerate(picks) if p is not None]
        if not found:
            return [NO_FACE] * len(window)
        descs = [window[t].desc[picks[t]] for t in found if window[t].desc is not None]
        template = _unit(np.mean(descs, axis=0)) if descs else None
        self._id = self._identity(template)
        changed = self._last_id >= 0 and self._id != self._last_id
        self._last_id = self._id
        self._template = template
        last = found[-1]
        self._ref = window[last].dets.boxes[picks[last]].copy()
        self._misses = len(window) - 1 - last
        out = []
        for t, p in enumerate(picks):
            out.append(NO_FACE if p is None else Decision(p, self._id, changed and t == found[0]))
        return out

    def _identity(self, template: np.ndarray | None) -> int:
        """The id of a known identity within ``reid_similarity`` of ``template``, else a new id."""
        if template is not None:
            known = [(float(t @ template), i) for i, t in enumerate(self.identities) if t is not None]
            if known:
                sim, i = max(known)
                if sim >= self.cfg.reid_similarity:
                    return i
        self.identities.append(template)
        return len(self.identities) - 1


def track_subject(detections: Sequence[Detections], cfg: TrackConfig | None = None) -> list[int | None]:
    """The subject's face index in each frame of one video (None: no subject face there)."""
    tracker = SubjectTracker(cfg)
    out: list[int | None] = []
    for dets in detections:
        out += tracker.push(dets)
    out += tracker.flush()
    return out


class MultiTracker:
    """``subject="all"``: a track id for every face of every frame (greedy by continuity + appearance gate;
    a cut ends every track; a track unseen for more than ``max_misses`` frames ends)."""

    def __init__(self, cfg: TrackConfig | None = None) -> None:
        self.cfg = cfg or TrackConfig()
        self._active: list[list] = []  # [id, box, template, misses]
        self._next = 0

    def observe(self, dets: Detections, desc: np.ndarray | None = None, cut: bool = False) -> np.ndarray:
        """Track ids (k,) int32 of the faces of ``dets`` (in their order)."""
        if cut:
            self._active = []
        ids = np.full(len(dets), -1, np.int32)
        used: set[int] = set()
        for j in range(len(dets)):
            best = None
            for a, (_tid, box, template, misses) in enumerate(self._active):
                if a in used or j not in continuations(box, dets, self.cfg, misses):
                    continue
                if template is not None and desc is not None and not appearance_continues(
                        box, dets.boxes[j], float(desc[j] @ template), self.cfg):
                    continue
                iou = float(box_iou(box, dets.boxes[j : j + 1])[0])
                if best is None or iou > best[0]:
                    best = (iou, a)
            if best is None:
                self._active.append([self._next, None, None, 0])
                self._next += 1
                a = len(self._active) - 1
            else:
                a = best[1]
            used.add(a)
            track = self._active[a]
            ids[j] = track[0]
            track[1] = dets.boxes[j].copy()
            if desc is not None:
                d = desc[j]
                track[2] = d.copy() if track[2] is None else _unit(
                    (1 - self.cfg.template_rate) * track[2] + self.cfg.template_rate * d)
            track[3] = 0
        for a, track in enumerate(self._active):
            if a not in used:
                track[3] += 1
        self._active = [t for t in self._active if t[3] <= self.cfg.max_misses]
        return ids


def largest_face(detections: Sequence[Detections]) -> list[int | None]:
    """Per-frame choice for unrelated still images: the face with the largest score × area."""
    return [int(np.argmax(d.scores * d.areas())) if len(d) else None for d in detections]

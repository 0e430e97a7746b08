"""The face path of one video (or frame sequence): decode → detect in batches → subject → align → rows.

``FacePipeline`` is what the face extractor calls per item. Decoding runs in a background thread feeding a
bounded queue, so it overlaps with detection; detection runs one forward call per ``detector_batch`` frames; the
subject's face is kept across frames (``extract.face.track``); its five landmarks are aligned to the ArcFace
template (``extract.face.align``) in one batched warp. Every frame gives one result; a frame without the subject's
face has ``face_found=False`` and no crop — nothing is fabricated.

Example::

    from extract.face.decode import VideoDecodeError
    from extract.face.pipeline import FaceConfig, FacePipeline

    pipe = FacePipeline.from_config(FaceConfig(fps=5.0, detector="mtcnn"), device="cuda:0")
    rows, crops = [], []
    try:
        for batch in pipe.video_batches("s01_trial07.avi"):   # FaceBatch: arrays over up to a batch of frames
            rows.append(batch)                                 # batch.t_s, batch.face_found, batch.det_score, ...
            crops.append(batch.crops)                          # (n_found, 224, 224, 3) uint8, rows where found
    except VideoDecodeError as exc:                            # raised after every decodable frame was processed
        failed = str(exc)
    print(pipe.stats.as_dict())                                # per-stage seconds and frames/s, forward calls

``pipe.process_video(path)`` yields one ``FaceResult`` per frame instead; ``pipe.process(frames)`` takes any
iterable of objects with ``.t_s`` and ``.image`` (``DecodedFrame``, a dataset reader's ``FrameImage``).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from extract.face.align import (
    AlignConfig,
    WarpBackend,
    alignment_residual,
    estimate_alignment,
    valid_landmarks,
    warp_faces,
)
from extract.face.decode import TimeOrigin, VideoReader
from extract.face.detectors import FaceDetector, create_detector
from extract.face.detectors.base import Detections, frames_to_batch
from extract.face.flow import grey, propagate
from extract.face.quality import blur, face_descriptors, face_size, frame_signature, head_pose, is_cut
from extract.face.track import Decision, MultiTracker, SubjectTracker, TrackConfig, largest_face

FACE_PIPELINE_VERSION = "2"


@dataclass(frozen=True)
class FaceConfig:
    """Everything that changes the face rows, except ``detector_batch``, ``detector_batch_cpu``,
    ``prefetch_batches`` and ``warp_backend``, which change only speed (and interpolation rounding for the
    backend).

    ``detector_batch_cpu`` caps the batch when the detector runs on the CPU (None: no cap): there, batches of
    big frames allocate tensors above glibc's 32 MiB mmap threshold, which are page-faulted afresh on every
    call; measured on 720x576 frames, RetinaFace-mnet spends 45 ms CPU/frame at batch 1 and 4 but 107 ms at
    16 (see docs/face.md). On a GPU, bigger batches are what makes it fast.
    """

    fps: float = 5.0  # frames per second taken from a video (0: every frame)
    detector: str = "mtcnn"
    detector_batch: int = 16
    detector_batch_cpu: int | None = 4
    detector_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"weights": "...", "max_side": 640}
    crop_size: int = 224
    margin: float = 0.0
    min_score: float = 0.9
    # Shrink decoded frames whose longer side exceeds this (px); None: native size.
    max_side: int | None = None
    # "largest": per frame, for unrelated still images; "all": every face above min_score is its own row
    subject: Literal["track", "largest", "all"] = "track"
    track: TrackConfig = field(default_factory=TrackConfig)
    # Detector keyframes at least this many seconds apart (0.75 x tolerance, so 5 fps sampling detects every
    # frame); in between, faces move by optical flow (extract.face.flow) and a frame whose faces do not track,
    # a shot cut, or a frame after one without faces is detected. 0: detect every frame.
    keyframe_s: float = 0.2
    # Run the detector on a copy whose longer side is at most this (px); boxes and landmarks are scaled back and
    # crops are aligned from the full-resolution frame. None: detect at the decoded size.
    detect_max_side: int | None = None
    cut_threshold: float = 0.5  # histogram distance between consecutive sampled frames that is a shot cut
    # The clock of a video's t_s (``VideoReader``): t = 0 at the first decoded frame, or at the file's start
    time_origin: TimeOrigin = "first_frame"
    warp_backend: WarpBackend = "auto"
    prefetch_batches: int = 2

    def __post_init__(self) -> None:
        if self.fps < 0 or self.detector_batch < 1 or self.crop_size < 1 or self.prefetch_batches < 1:
            raise ValueError(f"invalid FaceConfig: {self}")
        if self.subject not in ("track", "largest", "all"):
            raise ValueError(f"invalid FaceConfig: subject must be 'track', 'largest' or 'all', got {self.subject!r}")
        if self.keyframe_s < 0 or not 0 < self.cut_threshold <= 1:
            raise ValueError(f"invalid FaceConfig: keyframe_s must be >= 0 and cut_threshold in (0, 1], got {self}")
        if self.detect_max_side is not None and self.detect_max_side < 32:
            raise ValueError(f"invalid FaceConfig: detect_max_side must be >= 32 or None, got {self.detect_max_side}")
        if self.time_origin not in ("first_frame", "stream_start", "file_start"):
            raise ValueError(f"invalid FaceConfig: time_origin must be first_frame, stream_start or file_start, "
                             f"got {self.time_origin!r}")
        if self.detector_batch_cpu is not None and self.detector_batch_cpu < 1:
            raise ValueError(f"invalid FaceConfig: detector_batch_cpu must be >= 1 or None, got {self}")

    @property
    def align(self) -> AlignConfig:
        return AlignConfig(size=self.crop_size, margin=self.margin, backend=self.warp_backend)


class FrameLike(Protocol):
    t_s: float
    image: np.ndarray


@dataclass(frozen=True)
class FaceResult:
    """One frame's outcome. ``box``/``landmarks``/``crop`` are None when ``face_found`` is False."""

    index: int
    t_s: float
    face_found: bool
    det_score: float  # NaN without a face
    box: np.ndarray | None  # (4,) x1, y1, x2, y2 px
    landmarks: np.ndarray | None  # (5, 2) px, image-left eye first
    crop: np.ndarray | None  # (size, size, 3) uint8 RGB
    n_faces: int  # faces above min_score in the frame (the subject and others)
    track_id: int = -1  # identity id of the face within the item (-1: no face)
    face_index: int = -1  # subject="all": the face's rank in the frame (by score); -1: no face


QUALITY_FIELDS = ("track_id", "face_index", "shot_cut", "identity_changed", "keyframe", "yaw_deg", "pitch_deg",
                  "face_px", "blur", "align_residual")


@dataclass
class FaceBatch:
    """Results of consecutive frames as arrays; ``crops[j]`` belongs to row ``found_rows[j]``."""

    index: np.ndarray  # (b,) int64
    t_s: np.ndarray  # (b,) float64
    face_found: np.ndarray  # (b,) bool
    det_score: np.ndarray  # (b,) float32, NaN where no face
    boxes: np.ndarray  # (b, 4) float32, NaN where no face
    landmarks: np.ndarray  # (b, 5, 2) float32, NaN where no face
    n_faces: np.ndarray  # (b,) int32
    crops: np.ndarray  # (n_found, size, size, 3) uint8
    track_id: np.ndarray  # (b,) int32, -1 where no face
    face_index: np.ndarray  # (b,) int32: rank of the face in its frame (subject="all"), -1 where no face
    shot_cut: np.ndarray  # (b,) bool: a shot cut right before this frame
    identity_changed: np.ndarray  # (b,) bool: first row of a subject track on another person
    keyframe: np.ndarray  # (b,) bool: detector ran on this frame (False: faces moved by optical flow)
    yaw_deg: np.ndarray  # (b,) float32, from the landmarks; NaN where no face
    pitch_deg: np.ndarray  # (b,) float32
    face_px: np.ndarray  # (b,) float32: box side (sqrt of area) in px of the decoded frame
    blur: np.ndarray  # (b,) float32: variance of the Laplacian of the aligned crop (low = blurred)
    # (b,) float32: RMS distance (crop px) of the five landmarks, after the similarity fit, from the template
    align_residual: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def found_rows(self) -> np.ndarray:
        return np.flatnonzero(self.face_found)

    def results(self) -> Iterator[FaceResult]:
        crop_of = {int(r): j for j, r in enumerate(self.found_rows)}
        for r in range(len(self)):
            found = bool(self.face_found[r])
            yield FaceResult(
                index=int(self.index[r]),
                t_s=float(self.t_s[r]),
                face_found=found,
                det_score=float(self.det_score[r]),
                box=self.boxes[r].copy() if found else None,
                landmarks=self.landmarks[r].copy() if found else None,
                crop=self.crops[crop_of[r]] if found else None,
                n_faces=int(self.n_faces[r]),
                track_id=int(self.track_id[r]),
                face_index=int(self.face_index[r]),
            )


@dataclass
class PipelineStats:
    """Per-stage wall seconds (decode runs in its own thread, so the stages overlap) and counters."""

    frames: int = 0
    faces: int = 0
    batches: int = 0
    forward_calls: int = 0
    keyframes: int = 0  # frames the detector ran on
    flow_frames: int = 0  # frames whose faces came from optical flow
    decode_s: float = 0.0
    detect_s: float = 0.0
    align_s: float = 0.0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = dataclasses.asdict(self)
        for stage in ("decode", "detect", "align", "wall"):
            secs = out[f"{stage}_s"]
            out[f"{stage}_fps"] = self.frames / secs if secs > 0 else float("nan")
        out["forward_calls_per_frame"] = self.forward_calls / self.frames if self.frames else float("nan")
        return out


@dataclass
class _Pending:
    index: int
    t_s: float
    image: np.ndarray
    dets: Detections
    device_ref: tuple[torch.Tensor, int] | None = None
    cut: bool = False
    keyframe: bool = True
    desc: np.ndarray | None = None


@dataclass
class _SeqState:
    """What the keyframe/cut logic carries from frame to frame within one sequence."""

    signature: np.ndarray | None = None
    grey: np.ndarray | None = None
    dets: Detections | None = None
    last_key_t: float | None = None


Pick = tuple[int | None, int, bool]  # face index, track id, identity changed


def _as_rgb(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB from RGB, gray (H, W) or (H, W, 1) images (FER2013 pixels are gray)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames, got {arr.dtype}")
    return arr


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


def prefetch(source: Iterable[Any], maxsize: int, stats: PipelineStats | None = None) -> Iterator[Any]:
    """Iterate ``source`` in a background thread through a queue of at most ``maxsize`` items.

    An exception in ``source`` is re-raised here after the items before it. Stopping early (closing this
    generator) stops the thread and closes ``source`` if it is a generator.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, maxsize))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(source)
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                finally:
                    if stats is not None:
                        stats.decode_s += time.perf_counter() - t0
                if not put(item):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Raised(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            put(_END)

    thread = threading.Thread(target=work, name="face-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


class FacePipeline:
    """Batched face path for one sequence at a time (create once per worker, reuse across items)."""

    def __init__(
        self, detector: FaceDetector | str, config: FaceConfig | None = None, device: Any = None
    ) -> None:
        self.config = config or FaceConfig()
        if isinstance(detector, str):
            detector = create_detector(detector, device=device or "cpu", **self.config.detector_options)
        self.detector = detector
        self.stats = PipelineStats()
        self.reader: VideoReader | None = None  # of the last ``video_batches`` call (its ``first_frame_file_s``)

    @classmethod
    def from_config(cls, config: FaceConfig, device: Any = "cpu") -> FacePipeline:
        return cls(config.detector, config, device=device)

    @property
    def detector_batch(self) -> int:
        """Frames per forward call: ``config.detector_batch``, capped by ``detector_batch_cpu`` on the CPU."""
        cfg = self.config
        if self.detector.device.type == "cpu" and cfg.detector_batch_cpu is not None:
            return min(cfg.detector_batch, cfg.detector_batch_cpu)
        return cfg.detector_batch

    @property
    def spec(self) -> dict[str, Any]:
        """Manifest facts: the feature-changing config, the detector's spec and the alignment template."""
        cfg = self.config
        return {
            "face_pipeline_version": FACE_PIPELINE_VERSION,
            "fps": cfg.fps,
            "max_side": cfg.max_side,
            "min_score": cfg.min_score,
            "subject": cfg.subject,
            "track": dataclasses.asdict(cfg.track) if cfg.subject != "largest" else None,
            "keyframe_s": cfg.keyframe_s,
            "detect_max_side": cfg.detect_max_side,
            "cut_threshold": cfg.cut_threshold,
            "appearance": "quality.face_descriptors (32x32 aligned grey, equalised, 8x8) cosine vs running template",
            "detector": self.detector.spec,
            "alignment": cfg.align.spec(),
            "time_origin": cfg.time_origin,
        }

    # ----------------------------------------------------------------------------------------------- public
    def video_batches(self, path: str | Path) -> Iterator[FaceBatch]:
        """Decode ``path`` at ``config.fps`` (background thread) and yield ``FaceBatch`` es. A damaged video
        raises ``VideoDecodeError`` after the batches of every frame that could be decoded."""
        reader = VideoReader(path, self.config.fps or None, max_side=self.config.max_side,
                             time_origin=self.config.time_origin)
        self.reader = reader
        return self.batches(reader)

    def process_video(self, path: str | Path) -> Iterator[FaceResult]:
        """As ``video_batches``, one ``FaceResult`` per frame."""
        for batch in self.video_batches(path):
            yield from batch.results()

    def process(self, frames: Iterable[FrameLike], background: bool = True) -> Iterator[FaceResult]:
        """One ``FaceResult`` per frame of ``frames`` (objects with ``.t_s`` and ``.image``)."""
        for batch in self.batches(frames, background=background):
            yield from batch.results()

    def batches(self, frames: Iterable[FrameLike], background: bool = True) -> Iterator[FaceBatch]:
        """The core loop: frames (pulled in a background thread unless ``background=False``) -> FaceBatches.
        An exception from ``frames`` is re-raised after the batches of the frames before it."""
        cfg = self.config
        size = self.detector_batch
        source: Iterable[Any] = (
            prefetch(frames, size * cfg.prefetch_batches, self.stats) if background else frames
        )
        tracker = SubjectTracker(cfg.track) if cfg.subject == "track" else None
        multi = MultiTracker(cfg.track) if cfg.subject == "all" else None
        state = _SeqState()
        pending: deque[_Pending] = deque()
        error: BaseException | None = None
        count = 0
        t_start = time.perf_counter()
        calls_before = self.detector.forward_calls
        it = iter(source)
        try:
            while True:
                chunk: list[Any] = []
                try:
                    while len(chunk) < size:
                        t0 = time.perf_counter()
                        try:
                            chunk.append(next(it))
                        finally:
                            if not background:
                                self.stats.decode_s += time.perf_counter() - t0
                except StopIteration:
                    pass
                except Exception as exc:  # a damaged source: finish what we have, then re-raise
                    error = exc
                if chunk:
                    items = self._detect(chunk, count, state)
                    count += len(chunk)
                    decided = self._decide(items, tracker, multi, pending)
                    if decided:
                        yield self._finish(decided)
                if error is not None or len(chunk) < size:
                    break
            if tracker is not None:
                rest = tracker.finish()
                if rest:
                    yield self._finish([(pending.popleft(), _pick(d)) for d in rest])
        finally:
            self.stats.forward_calls += self.detector.forward_calls - calls_before
            self.stats.wall_s += time.perf_counter() - t_start
            close = getattr(it, "close", None)
            if close is not None:
                close()
        if error is not None:
            raise error

    # ---------------------------------------------------------------------------------------------- stages
    def _run_detector(self, images: list[np.ndarray]) -> tuple[list[Detections], Any]:
        """Detections (above ``min_score``) in full-resolution pixels; the device batch when crops can be warped
        from it (else None). With ``detect_max_side`` the detector sees a downscaled copy."""
        cfg = self.config
        limit = cfg.detect_max_side
        scales = [min(1.0, limit / max(im.shape[:2])) if limit else 1.0 for im in images]
        device_batch = None
        if any(sc < 1.0 for sc in scales):
            import cv2

            small = [im if sc >= 1.0 else cv2.resize(im, (max(1, round(im.shape[1] * sc)),
                                                          max(1, round(im.shape[0] * sc))),
                                                      interpolation=cv2.INTER_AREA)
                     for im, sc in zip(images, scales, strict=True)]
            dets = self.detector.detect(small)
            dets = [_rescale(d, 1.0 / sc) for d, sc in zip(dets, scales, strict=True)]
        elif self._warp_on_device(images):
            device_batch, _ = frames_to_batch(images, self.detector.device)
            dets = self.detector.detect(device_batch)
        else:
            dets = self.detector.detect(images)
        return [d.take(d.scores >= cfg.min_score) for d in dets], device_batch

    def _detect(self, chunk: list[Any], first_index: int, state: _SeqState) -> list[_Pending]:
        """Cut flags, keyframe detection in one batched call, optical flow in between (detector on failure)."""
        cfg = self.config
        images = [_as_rgb(f.image) for f in chunk]
        t0 = time.perf_counter()
        times = [float(f.t_s) for f in chunk]
        cuts, keys = _cuts_and_keyframes(images, times, state, cfg.cut_threshold, cfg.keyframe_s)
        key_rows = [i for i, k in enumerate(keys) if k]
        key_dets: dict[int, Detections] = {}
        device_batch = None
        if key_rows:
            dets, device_batch = self._run_detector([images[i] for i in key_rows])
            key_dets = dict(zip(key_rows, dets, strict=True))
            if device_batch is not None and len(key_rows) != len(images):
                device_batch = None
        need_grey = cfg.keyframe_s > 0 and len(key_rows) < len(images)
        out: list[_Pending] = []
        for i, frame in enumerate(chunk):
            g = grey(images[i]) if need_grey else None
            keyframe = keys[i]
            if keyframe:
                d = key_dets[i]
            else:
                moved = None
                if state.dets is not None and len(state.dets) and state.grey is not None and g is not None:
                    moved = propagate(state.grey, g, state.dets)
                if moved is None:  # nothing to move, or the faces did not track: detect this frame
                    d = self._run_detector([images[i]])[0][0]
                    keyframe = True
                    state.last_key_t = times[i]
                else:
                    d = moved
            if keys[i]:
                state.last_key_t = times[i]
            state.dets, state.grey = d, g
            index = getattr(frame, "index", None)
            desc = face_descriptors(images[i], d.landmarks) if cfg.subject != "largest" and len(d) else None
            out.append(_Pending(
                index=first_index + i if index is None else int(index),
                t_s=times[i],
                image=images[i],
                dets=d,
                device_ref=(device_batch, i) if device_batch is not None else None,
                cut=cuts[i],
                keyframe=keyframe,
                desc=desc,
            ))
            self.stats.keyframes += int(keyframe)
            self.stats.flow_frames += int(not keyframe)
        self.stats.detect_s += time.perf_counter() - t0
        self.stats.batches += 1
        return out

    def _decide(self, items: list[_Pending], tracker: SubjectTracker | None, multi: MultiTracker | None,
                pending: deque[_Pending]) -> list[tuple[_Pending, Pick | None]]:
        """The subject's face (track, largest) or every face (all) of each frame, as far as now decided."""
        decided: list[tuple[_Pending, Pick | None]] = []
        for item in items:
            if multi is not None:
                ids = multi.observe(item.dets, item.desc, item.cut)
                if len(item.dets) == 0:
                    decided.append((item, None))
                decided += [(item, (j, int(ids[j]), False)) for j in range(len(item.dets))]
            elif tracker is None:
                pick = largest_face([item.dets])[0]
                decided.append((item, None if pick is None else (pick, -1, False)))
            else:
                pending.append(item)
                for d in tracker.observe(item.dets, item.desc, item.cut):
                    decided.append((pending.popleft(), _pick(d)))
        return decided

    def _warp_on_device(self, images: list[np.ndarray]) -> bool:
        backend = self.config.warp_backend
        if backend == "cv2":
            return False
        same_size = len({im.shape for im in images}) == 1
        if backend == "torch":
            return same_size
        return self.detector.device.type == "cuda" and same_size

    def _finish(self, decided: list[tuple[_Pending, Pick | None]]) -> FaceBatch:
        cfg = self.config
        t0 = time.perf_counter()
        b = len(decided)
        found, score, boxes, lms, track_id, face_index, changed = _picked(decided, cfg.subject == "all")
        found &= valid_landmarks(lms)
        rows = np.flatnonzero(found)
        crops, residual = self._align(decided, lms, rows)
        not_found = ~found
        score[not_found], boxes[not_found], lms[not_found] = np.nan, np.nan, np.nan
        track_id[not_found], face_index[not_found], changed[not_found] = -1, -1, False
        yaw = np.full(b, np.nan, np.float32)
        pitch = np.full(b, np.nan, np.float32)
        px = np.full(b, np.nan, np.float32)
        sharp = np.full(b, np.nan, np.float32)
        if len(rows):
            yaw[rows], pitch[rows] = head_pose(lms[rows])
            px[rows] = face_size(boxes[rows])
            sharp[rows] = blur(np.asarray(crops))
        out = FaceBatch(
            index=np.array([it.index for it, _ in decided], np.int64),
            t_s=np.array([it.t_s for it, _ in decided], np.float64),
            face_found=found,
            det_score=score,
            boxes=boxes,
            landmarks=lms,
            n_faces=np.array([len(it.dets) for it, _ in decided], np.int32),
            crops=crops,
            track_id=track_id,
            face_index=face_index,
            shot_cut=np.array([it.cut for it, _ in decided], bool),
            identity_changed=changed,
            keyframe=np.array([it.keyframe for it, _ in decided], bool),
            yaw_deg=yaw,
            pitch_deg=pitch,
            face_px=px,
            blur=sharp,
            align_residual=residual,
        )
        self.stats.frames += len({id(it) for it, _ in decided})
        self.stats.faces += int(found.sum())
        self.stats.align_s += time.perf_counter() - t0
        return out

    def _align(self, decided: list[tuple[_Pending, Pick | None]], lms: np.ndarray,
               rows: np.ndarray) -> tuple[Any, np.ndarray]:
        """Aligned crops of ``rows`` (warped on the device when every frame is there) and every row's alignment
        residual (NaN where no face)."""
        cfg = self.config
        crops = np.zeros((0, cfg.crop_size, cfg.crop_size, 3), np.uint8)
        residual = np.full(len(decided), np.nan, np.float32)
        if len(rows):
            mats = estimate_alignment(lms[rows], cfg.crop_size, cfg.margin)
            residual[rows] = alignment_residual(lms[rows], cfg.crop_size, cfg.margin, mats)
            refs = [decided[r][0].device_ref for r in rows]
            if all(ref is not None for ref in refs):
                frames = torch.stack([ref[0][ref[1]] for ref in refs if ref is not None])
                crops = warp_faces(frames, mats, None, cfg.crop_size, "torch")
            else:
                crops = warp_faces([decided[r][0].image for r in rows], mats, None, cfg.crop_size, "cv2")
        return crops, residual

    def reset_stats(self) -> None:
        self.stats = PipelineStats()


def _cuts_and_keyframes(images: list[np.ndarray], times: list[float], state: _SeqState, cut_threshold: float,
                        keyframe_s: float) -> tuple[list[bool], list[bool]]:
    """Per frame: a shot cut (vs the previous frame's signature), and whether the detector runs (a cut, the first
    frame, or ``0.75 * keyframe_s`` since the last keyframe). Updates ``state.signature``."""
    cuts, keys = [], []
    last_key, signature = state.last_key_t, state.signature
    for im, t in zip(images, times, strict=True):
        sig = frame_signature(im)
        cut = is_cut(signature, sig, cut_threshold)
        signature = sig
        key = cut or last_key is None or keyframe_s <= 0 or t - last_key >= 0.75 * keyframe_s
        if key:
            last_key = t
        cuts.append(cut)
        keys.append(key)
    state.signature = signature
    return cuts, keys


def _picked(decided: list[tuple[_Pending, Pick | None]], every_face: bool) -> tuple[np.ndarray, ...]:
    """found, det score, box, landmarks, track id, face index and identity-changed of each decided row's face
    (NaN / -1 / False where none was picked)."""
    b = len(decided)
    found = np.zeros(b, bool)
    score = np.full(b, np.nan, np.float32)
    boxes = np.full((b, 4), np.nan, np.float32)
    lms = np.full((b, 5, 2), np.nan, np.float32)
    track_id = np.full(b, -1, np.int32)
    face_index = np.full(b, -1, np.int32)
    changed = np.zeros(b, bool)
    for r, (item, pick) in enumerate(decided):
        if pick is None or pick[0] is None:
            continue
        j = pick[0]
        found[r] = True
        score[r] = item.dets.scores[j]
        boxes[r] = item.dets.boxes[j]
        lms[r] = item.dets.landmarks[j]
        track_id[r], changed[r] = pick[1], pick[2]
        face_index[r] = j if every_face else -1
    return found, score, boxes, lms, track_id, face_index, changed


def _pick(d: Decision) -> Pick | None:
    return None if d.pick is None else (d.pick, d.track_id, d.identity_changed)


def _rescale(dets: Detections, factor: float) -> Detections:
    """Detections of a resized copy back in the original frame's pixels."""
    if factor == 1.0 or len(dets) == 0:
        return dets
    return Detections(dets.boxes * factor, dets.landmarks * factor, dets.scores)

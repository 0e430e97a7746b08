"""The face feature extractor: an item's video (or still frames) -> one row per sampled frame with a face embedding.

``FaceEmbeddingExtractor`` (registered as ``"face"``) is built once per worker: the detector and the backbone load
in ``__init__`` on the worker's device. Per item it runs the batched ``FacePipeline`` (decode in a background
thread, detection ``detect_batch`` frames per call, subject tracking, 5-point alignment) and embeds the aligned
crops ``embed_batch`` at a time, across the frame-batch boundaries of the video, so the backbone sees full batches.

Rows: one per sampled frame (``subject="all"``: one per face, or one no-face row), ``t_start_s`` = the frame's
time on the stream's clock (first decoded frame = 0), ``t_end_s`` = the next sample's time (the last row: + the
median sample step). A frame without the subject's face keeps its row with a NaN embedding (masked, never zeros),
``q_face_found`` False and ``q_det_score`` NaN. An item without a face in any frame is data, not a failure: all
its rows are no-face rows, the item is done, and a warning is logged and kept in its meta. Per row the store also
records the face's box (``q_box_x1`` ...), five landmarks (``q_lm0_x`` ...), ``q_track_id``, ``q_face_index``,
``q_shot_cut``, ``q_identity_changed``, ``q_keyframe``, ``q_yaw_deg``, ``q_pitch_deg``, ``q_face_px``, ``q_blur`` and
``q_align_residual`` (RMS distance in crop px of the five landmarks from the template after the similarity fit:
small for a frontal face, large for a profile or a non-human face). The item's meta summarises them: ``identities``
(distinct track ids), ``identity_changes``, ``shot_cuts``, ``align_residual_median``, and says the clock:
``time_origin`` (``first_frame``) with ``first_frame_file_s``, the first frame's time on the file's clock. A corrupt
or truncated video fails the item by default (``on_corrupt="fail"``): a store then holds only complete videos, and
the error is recorded; ``on_corrupt="keep"`` keeps the rows of the frames decoded before the damage and records
the error in the item's meta instead.

``detector="none"`` is for datasets whose images are face crops already (FER2013's 48x48): the whole image is
resized to ``crop_size`` and embedded; every row has ``q_face_found`` True and ``q_det_score`` NaN.

Items without a video (single images: FER2013, image folders) are worth batching across: ``items_per_call`` asks
for ``embed_batch`` of them and ``extract_many`` streams their crops through shared ``embed_batch``-sized backbone
calls, then splits the embeddings back per item (rows built exactly as ``extract`` builds them; a bad item fails
alone). The detector, when there is one, still runs per item.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from extract import progress
from extract.base import EXTRACTORS, FeatureExtractor, ItemError
from extract.datasets.base import DatasetReader, Item
from store.schema import ItemRows

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EXTRACTOR_VERSION = "1"
MAX_ITEMS_PER_CALL = 256  # still-image items per extract_many call: bounds a group's work (its crops are streamed)
ComputeDtype = Literal["auto", "float32", "float16", "bfloat16"]


@EXTRACTORS.register("face", kind="face")
class FaceEmbeddingExtractor(FeatureExtractor):
    """Face path + backbone. ``EXTRACTORS.create("face", detector="mtcnn", backbone="clip-vit-l14", fps=5,
    device="cuda:0")``. Extra keyword options are ``FaceConfig`` fields (``min_score``, ``margin``, ``max_side``,
    ``subject``, ``track`` ...)."""

    kind = "face"

    def __init__(
        self,
        detector: str = "mtcnn",
        backbone: str = "clip-vit-l14",
        fps: float = 5.0,
        crop_size: int = 224,
        dtype: str = "float16",
        detect_batch: int = 16,
        embed_batch: int = 64,
        on_corrupt: Literal["fail", "keep"] = "fail",
        compute_dtype: ComputeDtype = "auto",
        device: str | torch.device = "cpu",
        **face_options: Any,
    ) -> None:
        import torch  # here, not at import: registering the extractor must not cost a torch import

        from extract.backbones import create_backbone

        if on_corrupt not in ("fail", "keep"):
            raise ValueError(f"on_corrupt {on_corrupt!r} is not one of 'fail', 'keep'")
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype {dtype!r} is not one of 'float16', 'float32'")
        self.device = torch.device(device)
        self.detector_name = detector
        self.backbone_name = backbone
        self.fps = float(fps)
        self.crop_size = int(crop_size)
        self.dtype = dtype
        self.embed_batch = int(embed_batch)
        self.on_corrupt = on_corrupt
        self.compute_dtype_option = compute_dtype
        # fp16 weights on the GPU, fp32 on the CPU (fp16 matmuls on the CPU are slow and imprecise).
        self.compute_dtype = compute_dtype if compute_dtype != "auto" else (
            "float16" if self.device.type == "cuda" else "float32")
        self.backbone = self._build_backbone(create_backbone)
        self.pipeline = None
        if detector != "none":
            from extract.face.pipeline import FaceConfig, FacePipeline
            from extract.face.track import TrackConfig

            options = dict(face_options)
            if isinstance(options.get("track"), dict):
                options["track"] = TrackConfig(**options["track"])
            config = FaceConfig(fps=self.fps, detector=detector, detector_batch=int(detect_batch),
                                crop_size=self.crop_size, **options)
            self.pipeline = FacePipeline.from_config(config, device=self.device)
        elif face_options:
            unknown = sorted(set(face_options) - {"max_side"})
            if unknown:
                raise ValueError(f"detector 'none' takes no face options, got {', '.join(unknown)}")
        self.max_side = face_options.get("max_side")
        self.last_stage_s: dict[str, float] = {}

    def _build_backbone(self, create_backbone: Any) -> Any:
        """The crop embedder (a hook: the crop-store extractor keeps the pixels instead)."""
        return create_backbone(self.backbone_name, device=self.device, dtype=self.compute_dtype,
                               batch_size=self.embed_batch)

    def _empty_rows(self, n: int) -> np.ndarray:
        """The item's row array before the found faces fill it: NaN where no face (masked, never zeros)."""
        return np.full((n, self.backbone.dim), np.nan, np.float32)

    # ------------------------------------------------------------------------------------------------ manifest
    def manifest_parts(self) -> dict[str, Any]:
        bspec = dict(self.backbone.spec)
        bspec.pop("dtype", None)  # the compute precision follows the device; it is in each item's meta
        config: dict[str, Any] = {
            "fps": self.fps,
            "detector": self.detector_name,
            "backbone": self.backbone_name,
            "crop_size": self.crop_size,
            "on_corrupt": self.on_corrupt,
            "compute_dtype": self.compute_dtype_option,
        }
        if self.pipeline is not None:
            fc = self.pipeline.config
            config.update(min_score=fc.min_score, margin=fc.margin, max_side=fc.max_side, subject=fc.subject,
                          track=dataclasses.asdict(fc.track) if fc.subject == "track" else None,
                          detector_options=dict(fc.detector_options))
            face = self.pipeline.spec
            detector_spec = face.get("detector", {})
        else:
            face = {"detector": "none", "crop": f"whole image resized to {self.crop_size}x{self.crop_size} "
                                                 "(bilinear, antialiased), gray replicated to RGB"}
            detector_spec = {"name": "none"}
        return {
            "extractor": f"face/{self.detector_name}+{self.backbone_name}",
            "extractor_version": EXTRACTOR_VERSION,
            "dim": int(self.backbone.dim),
            "dtype": self.dtype,
            "config": config,
            "model": {"backbone": bspec, "detector": detector_spec},
            "preprocessing": {
                "face": face,
                "backbone": bspec.get("preprocessing", {}),
                "rows": "one per sampled frame (subject=all: per face); t_start_s = frame time (pts, from the "
                        "first frame), t_end_s = next sample time",
                "no_face": "row kept: NaN embedding, q_face_found False, q_det_score NaN",
            },
        }

    # --------------------------------------------------------------------------------------------- extraction
    def extract(self, reader: DatasetReader, item: Item) -> ItemRows:
        t_item = time.perf_counter()
        batcher = _CropBatcher(self.backbone, self.embed_batch)
        stats_before = self._pipeline_stats()
        gathered = self._gather(reader, item, batcher)
        embeddings = batcher.finish()
        self._note_stages(stats_before, batcher.seconds)
        return self._rows(item, gathered, embeddings, time.perf_counter() - t_item)

    def items_per_call(self, reader: DatasetReader, items: Sequence[Item]) -> int:
        """Still-image items (FER2013, image folders): ``embed_batch`` of them per call, so the backbone sees full
        batches across items; video items: one each (their frames fill the batches)."""
        if any(reader.video_path(it) is not None for it in items):
            return 1
        return max(1, min(self.embed_batch, MAX_ITEMS_PER_CALL))

    def extract_many(self, reader: DatasetReader, items: Sequence[Item]) -> list[ItemRows | Exception]:
        """Still-image items share the backbone batches (``embed_batch`` crops per call across items); each item's
        rows equal what ``extract`` gives it, and a bad item fails alone. Video items go through ``extract``."""
        if any(reader.video_path(it) is not None for it in items):
            return super().extract_many(reader, items)
        t0 = time.perf_counter()
        batcher = _CropBatcher(self.backbone, self.embed_batch)
        stats_before = self._pipeline_stats()
        gathered = [self._gather(reader, item, batcher) for item in items]
        embeddings = batcher.finish()
        self._note_stages(stats_before, batcher.seconds)
        seconds = (time.perf_counter() - t0) / max(1, len(items))
        out: list[ItemRows | Exception] = []
        offset = 0
        for item, g in zip(items, gathered, strict=True):
            part, offset = embeddings[offset: offset + g.n_crops], offset + g.n_crops
            try:
                out.append(self._rows(item, g, part, seconds))
            except Exception as exc:
                out.append(exc)
        return out

    def _gather(self, reader: DatasetReader, item: Item, batcher: _CropBatcher) -> _Gathered:
        """Run the face path over ``item``, handing its crops to ``batcher``; keeps the per-frame facts, not the
        crops. The item's own errors are kept for ``_rows``; backbone errors propagate (they are not the item's)."""
        g = _Gathered(video=reader.video_path(item))
        before = batcher.added
        if g.video is not None and progress.active():  # probe the header only when a job's progress listens
            progress.expect_rows(_expected_frames(g.video, self.fps))
        try:
            frames = None if g.video is not None else reader.frames(item)
            batches = self._batches(g.video, frames)
            while True:
                try:
                    batch = next(batches, None)
                except ItemError as exc:  # VideoDecodeError: raised after every decodable frame went through
                    g.error = exc
                    break
                if batch is None:
                    break
                g.chunks.append({k: v for k, v in batch.items() if k != "crops"})
                batcher.add(batch["crops"])
                progress.add_rows(len(batch["t_s"]))  # the job's progress moves per frame batch, not per item
            reader = self.pipeline.reader if self.pipeline is not None and g.video is not None else None
            g.first_frame_file_s = None if reader is None else reader.first_frame_file_s
        except Exception as exc:
            if batcher.failed:
                raise
            g.failure = exc
        g.n_crops = batcher.added - before
        return g

    def _note_stages(self, stats_before: dict[str, float], embed_s: float) -> None:
        stats = self._pipeline_stats()
        self.last_stage_s = {k: stats[k] - stats_before.get(k, 0.0) for k in stats}
        self.last_stage_s["embed"] = embed_s

    def _rows(self, item: Item, g: _Gathered, embedded: np.ndarray, seconds: float) -> ItemRows:
        """The item's rows from its gathered frames and the embeddings of its found crops (in order)."""
        if g.failure is not None:
            raise g.failure
        chunks, video, error = g.chunks, g.video, g.error
        n = sum(len(c["t_s"]) for c in chunks)
        source = str(video) if video is not None else f"{n} still frames"
        if error is not None and (self.on_corrupt == "fail" or n == 0):
            raise ItemError(f"{item.key}: {error}") from error
        if n == 0:
            raise ItemError(f"{item.key}: no frames in {source}")
        t_s = np.concatenate([c["t_s"] for c in chunks])
        found = np.concatenate([c["face_found"] for c in chunks])
        embeddings = self._empty_rows(n)
        embeddings[found] = embedded
        meta: dict[str, Any] = {
            "source": source,
            "n_frames": int(n),
            "n_faces": int(found.sum()),
            "device": str(self.device),
            "compute_dtype": self.compute_dtype,
            "seconds": round(seconds, 4),
        }
        if error is not None:
            meta["decode_error"] = str(error)
        if not found.any():
            meta["warning"] = f"no face found in any of the {n} sampled frames"
            log.warning("%s: no face found in any of the %d sampled frames of %s", item.key, n, source)
        extra = _extra_quality(chunks)
        meta.update(_summary(extra))
        if video is not None and self.pipeline is not None:
            meta["time_origin"] = self.pipeline.config.time_origin
            meta["first_frame_file_s"] = g.first_frame_file_s
        return ItemRows(
            key=item.key,
            embeddings=embeddings,
            subject=item.subject,
            session=item.session,
            trial=item.trial,
            t_start_s=t_s,
            t_end_s=_end_times(t_s, self.fps if video is not None else None),
            labels=dict(item.labels),
            quality={
                "face_found": found,
                "det_score": np.concatenate([c["det_score"] for c in chunks]).astype(np.float32),
                "n_faces": np.concatenate([c["n_faces"] for c in chunks]).astype(np.int32),
                **{k[2:]: v for k, v in extra.items()},
            },
            fold=item.fold,
            meta=meta,
        )

    def _pipeline_stats(self) -> dict[str, float]:
        if self.pipeline is None:
            return dict(self._none_stats) if hasattr(self, "_none_stats") else {}
        s = self.pipeline.stats
        return {"decode": s.decode_s, "detect": s.detect_s, "align": s.align_s}

    def _batches(self, video: Any, frames: Iterable[Any] | None) -> Iterator[dict[str, np.ndarray]]:
        from extract.face.pipeline import QUALITY_FIELDS

        if self.pipeline is not None:
            batches = self.pipeline.video_batches(video) if video is not None else self.pipeline.batches(frames)
            for b in batches:
                out = {"t_s": b.t_s, "face_found": b.face_found, "det_score": b.det_score, "n_faces": b.n_faces,
                       "crops": b.crops}
                for k in range(4):
                    out[f"q_box_{'x1 y1 x2 y2'.split()[k]}"] = b.boxes[:, k]
                for k in range(5):
                    out[f"q_lm{k}_x"], out[f"q_lm{k}_y"] = b.landmarks[:, k, 0], b.landmarks[:, k, 1]
                for name in QUALITY_FIELDS:
                    out[f"q_{name}"] = getattr(b, name)
                yield out
            return
        yield from self._whole_images(video, frames)

    def _whole_images(self, video: Any, frames: Iterable[Any] | None) -> Iterator[dict[str, np.ndarray]]:
        """detector="none": each frame, resized whole to the crop size, is the face crop."""
        import cv2

        from extract.face.decode import VideoReader

        source: Iterable[Any] = VideoReader(video, self.fps, max_side=self.max_side) if video is not None else frames
        stats = self.__dict__.setdefault("_none_stats", {"decode": 0.0, "align": 0.0})
        size = self.crop_size
        times: list[float] = []
        crops: list[np.ndarray] = []
        it = iter(source)
        error: ItemError | None = None
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(it, None)
            except ItemError as exc:  # a damaged video: embed what was decoded, then re-raise
                frame, error = None, exc
            stats["decode"] += time.perf_counter() - t0
            if frame is not None:
                t0 = time.perf_counter()
                image = np.asarray(frame.image)
                if image.ndim == 2:
                    image = np.repeat(image[..., None], 3, axis=2)
                if image.shape[:2] != (size, size):
                    interp = cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR
                    image = cv2.resize(image, (size, size), interpolation=interp)
                crops.append(np.ascontiguousarray(image, dtype=np.uint8))
                times.append(float(frame.t_s))
                stats["align"] += time.perf_counter() - t0
            if crops and (frame is None or len(crops) >= self.embed_batch):
                n = len(crops)
                yield {"t_s": np.asarray(times, np.float64), "face_found": np.ones(n, bool),
                       "det_score": np.full(n, np.nan, np.float32), "n_faces": np.ones(n, np.int32),
                       "crops": np.stack(crops)}
                times, crops = [], []
            if frame is None:
                if error is not None:
                    raise error
                return

    def close(self) -> None:
        self.pipeline = None
        self.backbone = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


@dataclass
class _Gathered:
    """One item after the face path: its per-frame facts (crops gone to the batcher) and how many crops it gave."""

    video: Any
    chunks: list[dict[str, np.ndarray]] = field(default_factory=list)  # t_s, face_found, det_score, n_faces
    error: ItemError | None = None  # a decode error after the decodable frames went through
    failure: Exception | None = None  # the item's own error (unreadable image ...): raised by ``_rows``
    n_crops: int = 0
    first_frame_file_s: float | None = None  # a video's first frame on the file's clock


class _CropBatcher:
    """Buffers crops (of one item or of several) and embeds them ``size`` at a time in order, so the backbone sees
    full batches; the last, partial batch goes at ``finish``."""

    def __init__(self, backbone: Any, size: int) -> None:
        self.backbone = backbone
        self.size = max(1, size)
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.added = 0
        self.parts: list[np.ndarray] = []
        self.seconds = 0.0
        self.failed = False  # the backbone raised: the buffered crops are lost, the caller must not go on

    def add(self, crops: np.ndarray) -> None:
        if len(crops):
            self.buffer.append(crops)
            self.buffered += len(crops)
            self.added += len(crops)
            self._flush(force=False)

    def finish(self) -> np.ndarray:
        """The embeddings of every crop added, in order: ``(added, dim)`` float32."""
        self._flush(force=True)
        if not self.parts:
            return np.zeros((0, self.backbone.dim), np.float32)
        return np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]

    def _flush(self, force: bool) -> None:
        while self.buffered >= self.size or (force and self.buffered):
            crops = np.concatenate(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
            take = crops if force else crops[: self.size]
            rest = crops[len(take):]
            t0 = time.perf_counter()
            try:
                self.parts.append(self.backbone.embed(take))
            except BaseException:
                self.failed = True
                raise
            self.seconds += time.perf_counter() - t0
            self.buffer = [rest] if len(rest) else []
            self.buffered = len(rest)


def _expected_frames(video: Any, fps: float) -> int | None:
    """About how many frames sampling ``video`` at ``fps`` (0: every frame) gives, from its header; None if unknown."""
    from extract.face.decode import expected_count, probe_video

    try:
        info = probe_video(video)
    except Exception:  # the decode itself reports a bad video
        return None
    if fps and info.duration_s:
        return expected_count(info.duration_s, fps)
    return info.n_frames


def _end_times(t_s: np.ndarray, fps: float | None) -> np.ndarray:
    """Each row lasts until the next sample's time (rows of one frame share it); the last sample lasts the
    median step between samples (1/fps for a single video frame, 1 s for a single still image)."""
    times = np.unique(t_s)
    if len(times) > 1:
        step = float(np.median(np.diff(times)))
    else:
        step = 1.0 / fps if fps else 1.0
    nxt = np.append(times[1:], times[-1] + step) if len(times) else times
    return nxt[np.searchsorted(times, t_s)] if len(times) else t_s.copy()


def _summary(extra: dict[str, np.ndarray]) -> dict[str, Any]:
    """The item meta's summary of the face columns: identities, identity changes, cuts, median residual."""
    out: dict[str, Any] = {}
    if "q_track_id" in extra:
        ids = extra["q_track_id"]
        out["identities"] = int(len(np.unique(ids[ids >= 0])))
        out["identity_changes"] = int(extra["q_identity_changed"].sum())
        out["shot_cuts"] = int(extra["q_shot_cut"].sum())
    if "q_align_residual" in extra:
        res = extra["q_align_residual"][np.isfinite(extra["q_align_residual"])]
        out["align_residual_median"] = round(float(np.median(res)), 3) if len(res) else None
    return out


def _extra_quality(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The ``q_*`` columns the face pipeline adds (box, landmarks, track id, flags, pose, size, blur)."""
    names = [k for k in (chunks[0] if chunks else {}) if k.startswith("q_")]
    return {k: np.concatenate([c[k] for c in chunks]) for k in names}

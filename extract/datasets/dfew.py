"""DFEW: in-the-wild movie clips as face-crop frame folders, 7 emotions, 5 official folds.

Layout (``shared/specs/datasets.md`` section 2)::

    DFEW/Clip/clip_224x224_16f/<5-digit id>/1.jpg ... 16.jpg   (sorted numerically)
    DFEW/Clip/clip_224x224/<5-digit id>/*.jpg                   (all frames; variable length)
    DFEW/EmoLabel_DataSplit/test(single-labeled)/set_1.csv ... set_5.csv   video_name,label (1-based)
    DFEW/EmoLabel_DataSplit/train(single-labeled)/set_1.csv ... set_5.csv  (optional; checked when present)

Item ``dfew/00042``; ``fold`` = the test set (1-5) the clip belongs to. ``labels["emotion"]`` is 0-based after
the chosen preset; ``labels["emotion7"]`` keeps the original 7-class id.

Frame times: the frame folders carry no timestamps. ``frames()`` gives frame ``i`` the time
``t_s = i / fps_assumed``; ``fps_assumed`` defaults to 25 for ``frames="all"`` (the clips' usual frame rate) and
to 16 / 3 for ``frames="16f"`` (16 frames spread over a ~3 s clip). Only the order is real; say so in results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from extract.datasets._common import natural_key, parse_int, read_csv_rows, read_image_rgb
from extract.datasets.base import DATASETS, DatasetError, DatasetReader, FrameImage, Item

log = logging.getLogger(__name__)

CLASSES_7: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
# preset -> (class names, mapping from the 0-based 7-class id)
LABEL_PRESETS: dict[int, tuple[tuple[str, ...], tuple[int, ...]]] = {
    7: (CLASSES_7, (0, 1, 2, 3, 4, 5, 6)),
    # Disgust -> Angry, Fear -> Sad
    5: (("happy", "sad", "neutral", "angry", "surprise"), (0, 1, 2, 3, 4, 3, 1)),
    # Positive(Happy) / Negative(Sad, Angry, Disgust, Fear) / Neutral / Surprise
    4: (("positive", "negative", "neutral", "surprise"), (0, 1, 2, 1, 3, 1, 1)),
    # Positive(Happy, Neutral, Surprise) / Negative(Sad, Angry, Disgust, Fear)
    2: (("positive", "negative"), (0, 1, 0, 1, 0, 1, 1)),
}
FRAME_DIRS = {"16f": "clip_224x224_16f", "all": "clip_224x224"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def map_label(label7: int, preset: int) -> int:
    """The preset's class id of a 0-based 7-class DFEW label."""
    return LABEL_PRESETS[preset][1][label7]


def class_names(preset: int = 7) -> tuple[str, ...]:
    return LABEL_PRESETS[preset][0]


@DATASETS.register("dfew", modalities=("face",))
class DfewReader(DatasetReader):
    """DFEW reader. Options: ``frames`` ("16f" or "all"), ``label_preset`` (7, 5, 4 or 2), ``fps_assumed``."""

    name = "dfew"
    modalities = ("face",)

    def label_names(self) -> dict[str, list[str]]:
        return {"emotion": list(class_names(self.label_preset)), "emotion7": list(class_names(7))}

    def __init__(
        self,
        root: str | Path,
        *,
        frames: Literal["16f", "all"] = "16f",
        label_preset: int = 7,
        fps_assumed: float | None = None,
    ) -> None:
        super().__init__(root)
        if frames not in FRAME_DIRS:
            raise ValueError(f"frames must be one of {', '.join(FRAME_DIRS)}, got {frames!r}")
        if int(label_preset) not in LABEL_PRESETS:
            raise ValueError(f"label_preset must be one of {sorted(LABEL_PRESETS)}, got {label_preset!r}")
        self.frames_variant = frames
        self.label_preset = int(label_preset)
        self.fps_assumed = float(fps_assumed) if fps_assumed else (25.0 if frames == "all" else 16.0 / 3.0)
        self.frames_root = self.root / "Clip" / FRAME_DIRS[frames]
        self.split_dir = self.root / "EmoLabel_DataSplit"
        self._missing: list[str] = []

    def _split_file(self, part: str, k: int) -> Path:
        return self.split_dir / f"{part}(single-labeled)" / f"set_{k}.csv"

    def _read_split(self, path: Path) -> dict[int, int]:
        """clip id -> 0-based 7-class label."""
        out: dict[int, int] = {}
        for line, row in enumerate(read_csv_rows(path, ("video_name", "label"), expected="video_name,label"), 2):
            clip = parse_int(row["video_name"], path, "video_name", line)
            label = parse_int(row["label"], path, "label", line)
            if not 1 <= label <= 7:
                raise DatasetError(f"{path}: line {line}: unknown label {label} (DFEW labels are 1-7)")
            if clip in out:
                raise DatasetError(f"{path}: line {line}: clip {clip} listed twice")
            out[clip] = label - 1
        return out

    def missing_frames(self) -> list[str]:
        """Keys of listed clips whose frame folder is absent (their ``frames()`` raises DatasetError)."""
        self.items()
        return list(self._missing)

    def _list_items(self) -> list[Item]:
        if not self.split_dir.is_dir():
            raise DatasetError(f"{self.split_dir}: folder not found (expected DFEW's EmoLabel_DataSplit)")
        if not self.frames_root.is_dir():
            raise DatasetError(f"{self.frames_root}: folder not found (frames={self.frames_variant!r})")
        fold_of: dict[int, int] = {}
        label_of: dict[int, int] = {}
        for k in range(1, 6):
            path = self._split_file("test", k)
            for clip, label in self._read_split(path).items():
                if clip in fold_of:
                    raise DatasetError(f"{path}: clip {clip} is also in test set_{fold_of[clip]} (test sets must be disjoint)")
                fold_of[clip], label_of[clip] = k, label
        for k in range(1, 6):
            path = self._split_file("train", k)
            if not path.is_file():
                continue
            for clip, label in self._read_split(path).items():
                if fold_of.get(clip) == k:
                    raise DatasetError(f"{path}: clip {clip} is in both train and test of set_{k}")
                if clip in label_of and label_of[clip] != label:
                    raise DatasetError(f"{path}: clip {clip} has label {label + 1} here but {label_of[clip] + 1} in the test split")
        existing = {p.name: p for p in self.frames_root.iterdir() if p.is_dir()}
        items, self._missing = [], []
        for clip in sorted(fold_of):
            name = f"{clip:05d}"
            folder = existing.get(name) or existing.get(str(clip))
            key = f"dfew/{name}"
            sources = {"frames": str(folder)} if folder is not None else {}
            if folder is None:
                self._missing.append(key)
            label7 = label_of[clip]
            items.append(
                Item(
                    key=key, dataset="dfew", subject=name, session=1, trial=name,
                    labels={"emotion": map_label(label7, self.label_preset), "emotion7": label7},
                    sources=sources, fold=fold_of[clip],
                    meta={"clip_id": clip, "label_preset": self.label_preset,
                          "class_name": class_names(self.label_preset)[map_label(label7, self.label_preset)],
                          "frames": self.frames_variant, "fps_assumed": self.fps_assumed},
                )
            )
        if self._missing:
            log.warning("DFEW: %d of %d clips have no frame folder under %s (e.g. %s)", len(self._missing),
                        len(items), self.frames_root, self._missing[0])
        return items

    def frame_paths(self, item: Item) -> list[Path]:
        folder = item.sources.get("frames")
        if not folder:
            raise DatasetError(f"{self.frames_root / item.key.split('/')[-1]}: frame folder not found for {item.key}")
        paths = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if not paths:
            raise DatasetError(f"{folder}: no frames (.jpg/.png) in the clip folder")
        return sorted(paths, key=lambda p: natural_key(p.name))

    def frames(self, item: Item) -> Iterator[FrameImage]:
        """The clip's frames in numeric order, RGB uint8, at ``t_s = i / fps_assumed`` (see module docstring)."""
        for i, path in enumerate(self.frame_paths(item)):
            yield FrameImage(t_s=i / self.fps_assumed, image=read_image_rgb(path))

    def input_files(self) -> list[Path]:
        files = sorted(self.split_dir.rglob("*.csv")) if self.split_dir.is_dir() else []
        return files + sorted(p for p in self.frames_root.rglob("*") if p.is_file())

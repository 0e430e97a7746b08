"""FER2013: 48x48 grayscale faces, 7 emotions; the Kaggle CSV or the image-folder variant.

Layouts (``shared/specs/datasets.md`` section 5)::

    fer2013.csv (or fer2013/fer2013.csv)      emotion,pixels,Usage   (2304 space-separated ints per row)
    train/<class>/*.jpg, test/<class>/*.jpg   classes angry disgust fear happy neutral sad surprise

Items: ``fer2013/<row index, 5 digits>`` for the CSV, ``fer2013/<split>/<class>/<file stem>`` for folders (stems
repeat across class folders, so the key keeps the path). ``labels["emotion"]`` uses the CSV ids
(0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral) for both variants.
``meta["split"]``: train / val / test (CSV Usage Training / PublicTest / PrivateTest; folders train / test);
``fold``: 0 train, 1 val, 2 test. ``meta["blank"]`` is True for the blank images (pixel std < 1); the CSV variant sets it while listing
(the pixels are parsed anyway), the folder variant leaves it out (listing decodes no image).
Frames are gray expanded to RGB, one frame per item at t = 0.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from extract.datasets._common import parse_int, read_csv_rows, read_image_rgb
from extract.datasets.base import DATASETS, DatasetError, DatasetReader, FrameImage, Item

log = logging.getLogger(__name__)

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_FOLDS = {"train": 0, "val": 1, "test": 2}
SIDE = 48
BLANK_STD = 1.0
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def _parse_pixels(text: str) -> np.ndarray | None:
    """Space-separated numbers -> float array, or None when something in it is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy warns (and stops early) on unparsable text
        try:
            return np.fromstring(text, dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


@DATASETS.register("fer2013", modalities=("face",))
class Fer2013Reader(DatasetReader):
    """FER2013 reader. Option ``variant``: "auto" (CSV if present, else folders), "csv" or "folder"."""

    name = "fer2013"
    modalities = ("face",)

    def label_names(self) -> dict[str, list[str]]:
        return {"emotion": list(EMOTIONS)}

    def __init__(self, root: str | Path, *, variant: Literal["auto", "csv", "folder"] = "auto") -> None:
        super().__init__(root)
        if variant not in ("auto", "csv", "folder"):
            raise ValueError(f"variant must be auto, csv or folder, got {variant!r}")
        csv_path = next((p for p in (self.root / "fer2013.csv", self.root / "fer2013" / "fer2013.csv") if p.is_file()),
                        self.root / "fer2013.csv")
        if variant == "auto":
            variant = "csv" if csv_path.is_file() else "folder"
        self.variant = variant
        self.csv_path = csv_path
        self._pixels: np.ndarray | None = None  # (rows, 48, 48) uint8 for the CSV variant
        self._bad_rows: dict[str, str] = {}

    def bad_rows(self) -> dict[str, str]:
        """Rows / files skipped while listing, with the reason."""
        self.items()
        return dict(self._bad_rows)

    def _list_items(self) -> list[Item]:
        return self._list_csv() if self.variant == "csv" else self._list_folders()

    def _list_csv(self) -> list[Item]:
        path = self.csv_path
        rows = read_csv_rows(path, ("emotion", "pixels", "Usage"), expected="emotion,pixels,Usage")
        pixels = np.zeros((len(rows), SIDE, SIDE), dtype=np.uint8)
        items: list[Item] = []
        self._bad_rows = {}
        for index, row in enumerate(rows):
            line = index + 2
            try:
                emotion = parse_int(row["emotion"], path, "emotion", line)
                if not 0 <= emotion <= 6:
                    raise DatasetError(f"{path}: line {line}: unknown emotion {emotion} (FER2013 labels are 0-6)")
                split = USAGE_SPLITS.get(row["Usage"])
                if split is None:
                    raise DatasetError(f"{path}: line {line}: unknown Usage {row['Usage']!r} "
                                       f"(expected {', '.join(USAGE_SPLITS)})")
                text = row["pixels"]
                n_values = len(text.split())
                flat = _parse_pixels(text) if n_values == SIDE * SIDE else None
                if flat is None or flat.size != SIDE * SIDE:
                    raise DatasetError(f"{path}: line {line}: {n_values} pixel values, expected {SIDE * SIDE} integers")
                if not np.all(flat == np.round(flat)) or flat.min() < 0 or flat.max() > 255:
                    raise DatasetError(f"{path}: line {line}: pixel values must be integers in 0-255")
            except DatasetError as exc:
                self._bad_rows[f"{path}:{line}"] = str(exc)
                log.warning("FER2013: skipping %s", exc)
                continue
            pixels[index] = flat.reshape(SIDE, SIDE)
            items.append(self._item(f"{index:05d}", emotion, split, float(flat.std()), {"row": index}))
        self._pixels = pixels
        return items

    def _list_folders(self) -> list[Item]:
        items: list[Item] = []
        self._bad_rows = {}
        found = False
        for split_dir, split in (("train", "train"), ("test", "test")):
            base = self.root / split_dir
            if not base.is_dir():
                continue
            found = True
            for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
                if class_dir.name.lower() not in EMOTIONS:
                    msg = f"{class_dir}: unknown class folder {class_dir.name!r} (expected {', '.join(EMOTIONS)})"
                    self._bad_rows[str(class_dir)] = msg
                    log.warning("FER2013: skipping %s", msg)
                    continue
                emotion = EMOTIONS.index(class_dir.name.lower())
                for path in sorted(class_dir.iterdir()):
                    if path.suffix.lower() in IMAGE_SUFFIXES:
                        key = f"{split_dir}/{class_dir.name}/{path.stem}"
                        items.append(self._item(key, emotion, split, None, {"path": str(path)},
                                                sources={"image": str(path)}))
        if not found:
            raise DatasetError(f"{self.root}: neither fer2013.csv nor train/ and test/ class folders found")
        return items

    def _item(self, stem: str, emotion: int, split: str, std: float | None, meta: dict,
              sources: dict | None = None) -> Item:
        meta = {**meta, "split": split, "emotion_name": EMOTIONS[emotion]}
        if std is not None:
            meta["blank"] = bool(std < BLANK_STD)
        return Item(key=f"fer2013/{stem}", dataset="fer2013", subject=stem, session=1, trial=stem,
                    labels={"emotion": emotion}, sources=sources or {"csv": str(self.csv_path)},
                    fold=SPLIT_FOLDS[split], meta=meta)

    def image(self, item: Item) -> np.ndarray:
        """The item's face as RGB uint8 (48, 48, 3)."""
        if "image" in item.sources:
            return read_image_rgb(Path(item.sources["image"]))
        if self._pixels is None:
            self.items()
        row = int(item.meta["row"])
        if self._pixels is None or not 0 <= row < len(self._pixels):
            raise DatasetError(f"{self.csv_path}: no row {row} for {item.key}")
        return np.repeat(self._pixels[row][:, :, None], 3, axis=2)

    def frames(self, item: Item) -> Iterator[FrameImage]:
        yield FrameImage(t_s=0.0, image=self.image(item))

    def input_files(self) -> list[Path]:
        if self.variant == "csv":
            return [self.csv_path]
        return sorted(p for d in ("train", "test") if (self.root / d).is_dir()
                      for p in (self.root / d).rglob("*") if p.is_file())

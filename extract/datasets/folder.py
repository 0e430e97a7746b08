"""A generic folder of videos and/or images, with an optional CSV of labels.

Every ``.mp4 .avi .mov .mkv`` (a video item) and ``.jpg .jpeg .png`` (an image item, one frame at t = 0) under
the root, recursively, becomes item ``folder/<relative path without suffix>``.

Labels CSV (option ``labels_csv``; by default ``<root>/labels.csv`` when it exists), header ``path,label`` and
optionally ``subject``: ``path`` is relative to the root *with* its suffix (``clips/a.mp4``); ``label`` is an
integer class id or a class name (names are numbered in sorted order; ``meta["label_name"]`` keeps the name).
Files the CSV does not list get no label; a CSV row naming a missing file is a DatasetError. ``subject`` defaults
to the first folder of the relative path (``"0"`` for files directly under the root).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from extract.datasets._common import natural_key, read_csv_rows, read_image_rgb
from extract.datasets.base import DATASETS, DatasetError, DatasetReader, FrameImage, Item

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@DATASETS.register("folder", modalities=("face",))
class FolderReader(DatasetReader):
    """Generic reader. Options: ``labels_csv`` (path; default ``labels.csv`` in the root if present),
    ``kinds`` ("video", "image" or both)."""

    name = "folder"
    modalities = ("face",)

    def __init__(
        self, root: str | Path, *, labels_csv: str | Path | None = None, kinds: tuple[str, ...] = ("video", "image")
    ) -> None:
        super().__init__(root)
        bad = set(kinds) - {"video", "image"}
        if bad:
            raise ValueError(f"kinds must be 'video' and/or 'image', got {sorted(bad)}")
        self.kinds = tuple(kinds)
        default_csv = self.root / "labels.csv"
        self.labels_csv = Path(labels_csv) if labels_csv else (default_csv if default_csv.is_file() else None)

    def _labels(self) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
        if self.labels_csv is None:
            return {}, {}
        rows = read_csv_rows(self.labels_csv, ("path", "label"), expected="path,label[,subject]")
        table: dict[str, dict[str, str]] = {}
        for line, row in enumerate(rows, start=2):
            rel = row["path"].replace("\\", "/")
            if not (self.root / rel).is_file():
                raise DatasetError(f"{self.labels_csv}: line {line}: {rel!r} does not exist under {self.root}")
            if not row["label"]:
                raise DatasetError(f"{self.labels_csv}: line {line}: empty label for {rel!r}")
            table[rel] = row
        names = sorted({r["label"] for r in table.values() if not _is_int(r["label"])})
        if names and any(_is_int(r["label"]) for r in table.values()):
            raise DatasetError(f"{self.labels_csv}: labels mix class ids and class names; use one kind")
        return table, {name: i for i, name in enumerate(names)}

    def _files(self) -> list[Path]:
        suffixes = (VIDEO_SUFFIXES if "video" in self.kinds else ()) + (IMAGE_SUFFIXES if "image" in self.kinds else ())
        files = [p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes]
        return sorted(files, key=lambda p: natural_key(p.relative_to(self.root).as_posix()))

    def _list_items(self) -> list[Item]:
        table, name_ids = self._labels()
        items: list[Item] = []
        seen: dict[str, Path] = {}
        for path in self._files():
            rel = path.relative_to(self.root).as_posix()
            stem = rel[: -len(path.suffix)]
            if stem in seen:
                raise DatasetError(f"{path}: same item key folder/{stem} as {seen[stem]} (rename one of them)")
            seen[stem] = path
            is_video = path.suffix.lower() in VIDEO_SUFFIXES
            row = table.get(rel)
            labels, meta = {}, {"kind": "video" if is_video else "image", "path": rel}
            if row is not None:
                label = row["label"]
                labels["label"] = int(label) if _is_int(label) else name_ids[label]
                if not _is_int(label):
                    meta["label_name"] = label
            parts = rel.split("/")
            subject = (row or {}).get("subject") or (parts[0] if len(parts) > 1 else "0")
            items.append(
                Item(key=f"folder/{stem}", dataset="folder", subject=subject, session=1, trial=stem,
                     labels=labels, sources={"video" if is_video else "image": str(path)}, meta=meta)
            )
        if not items:
            raise DatasetError(f"{self.root}: no videos ({' '.join(VIDEO_SUFFIXES)}) or images "
                               f"({' '.join(IMAGE_SUFFIXES)}) found")
        return items

    def frames(self, item: Item) -> Iterator[FrameImage]:
        """One frame for an image item; video items are read through ``video_path()``."""
        path = item.sources.get("image")
        if not path:
            raise NotImplementedError(f"{item.key} is a video; use video_path()")
        yield FrameImage(t_s=0.0, image=read_image_rgb(Path(path)))

    def input_files(self) -> list[Path]:
        return self._files() + ([self.labels_csv] if self.labels_csv else [])


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()

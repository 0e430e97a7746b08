"""RAVDESS: 24 actors, file names that encode seven fields ``MM-VV-EE-II-SS-RR-AA``.

Layout (``shared/specs/datasets.md`` section 4): ``Actor_XX/MM-VV-EE-II-SS-RR-AA.mp4``.

Fields: modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel (01 speech, 02 song), emotion
(01 neutral ... 08 surprised), intensity (01 normal, 02 strong), statement (01, 02), repetition (01, 02),
actor (01-24). Item ``ravdess/<file stem>``; ``labels["emotion"]`` = emotion - 1 (0-based, 8 classes);
``fold`` = actor group (actors 1-4 -> 1, 5-8 -> 2, ... 21-24 -> 6), the standard 6-fold protocol.

Modalities: ``face`` (the video) and ``audio``. An audio-video (01) item's audio is its own track; a video-only
(02) item's audio is the track of the 01 file of the same recording (same other six fields) when it is there
(the 02 files are the 01 recordings without sound, so the clocks agree); audio-only (03) ``.wav`` files are
items with audio only (``modality="audio"`` or ``"all"``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from extract.datasets.base import DATASETS, DatasetError, DatasetReader, Item

log = logging.getLogger(__name__)

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "audio-video", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
_FIELDS = ("modality", "vocal_channel", "emotion", "intensity", "statement", "repetition", "actor")
_RANGES = {"modality": (1, 3), "vocal_channel": (1, 2), "emotion": (1, 8), "intensity": (1, 2),
           "statement": (1, 2), "repetition": (1, 2), "actor": (1, 24)}
_MODALITY_OPTION = {"video": (2,), "av": (1,), "both": (1, 2), "audio": (3,), "all": (1, 2, 3)}
_VOCAL_OPTION = {"speech": (1,), "song": (2,), "both": (1, 2)}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv"}
AUDIO_SUFFIXES = {".wav"}


@dataclass(frozen=True)
class RavdessName:
    """The seven fields of a RAVDESS file name, as numbers (1-based, as in the name)."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.emotion - 1]

    @property
    def fold(self) -> int:
        return (self.actor - 1) // 4 + 1


def parse_ravdess_name(path: str | Path) -> RavdessName:
    """Parse ``MM-VV-EE-II-SS-RR-AA.ext``; a DatasetError naming the file for anything malformed."""
    path = Path(path)
    parts = path.stem.split("-")
    if len(parts) != 7:
        raise DatasetError(f"{path}: malformed RAVDESS name: {len(parts)} fields, expected 7 (MM-VV-EE-II-SS-RR-AA)")
    values = {}
    for field, part in zip(_FIELDS, parts, strict=True):
        if len(part) != 2 or not part.isdigit():
            raise DatasetError(f"{path}: malformed RAVDESS name: {field} {part!r} is not a two-digit number")
        lo, hi = _RANGES[field]
        if not lo <= int(part) <= hi:
            raise DatasetError(f"{path}: malformed RAVDESS name: {field} {part} outside {lo:02d}-{hi:02d}")
        values[field] = int(part)
    return RavdessName(**values)


@DATASETS.register("ravdess", modalities=("face", "audio"))
class RavdessReader(DatasetReader):
    """RAVDESS reader. Options: ``modality`` ("video" = 02 video-only, the default and the standard video
    protocol; "av" = 01 audio-visual; "both"; "audio" = 03 audio-only wavs; "all"), ``vocal`` ("speech" default, "song", "both"), ``strict``
    (raise on a malformed file name instead of logging and skipping it)."""

    name = "ravdess"
    modalities = ("face", "audio")

    def label_names(self) -> dict[str, list[str]]:
        return {"emotion": list(EMOTIONS)}

    def __init__(
        self,
        root: str | Path,
        *,
        modality: Literal["video", "av", "both", "audio", "all"] = "video",
        vocal: Literal["speech", "song", "both"] = "speech",
        strict: bool = False,
    ) -> None:
        super().__init__(root)
        if modality not in _MODALITY_OPTION:
            raise ValueError(f"modality must be one of {', '.join(_MODALITY_OPTION)}, got {modality!r}")
        if vocal not in _VOCAL_OPTION:
            raise ValueError(f"vocal must be one of {', '.join(_VOCAL_OPTION)}, got {vocal!r}")
        self.modality, self.vocal, self.strict = modality, vocal, strict
        self._bad_files: dict[str, str] = {}

    def bad_files(self) -> dict[str, str]:
        self.items()
        return dict(self._bad_files)

    def _actor_dirs(self) -> list[Path]:
        dirs = sorted(p for p in self.root.glob("Actor_*") if p.is_dir())
        if not dirs:
            raise DatasetError(f"{self.root}: no Actor_XX folders (expected RAVDESS's Actor_01 ... Actor_24)")
        return dirs

    def _list_items(self) -> list[Item]:
        items: list[Item] = []
        self._bad_files = {}
        modalities, vocals = _MODALITY_OPTION[self.modality], _VOCAL_OPTION[self.vocal]
        for folder in self._actor_dirs():
            paths = sorted(folder.iterdir())
            av_files = {p.stem[3:]: p for p in paths if p.stem.startswith("01-") and p.suffix.lower() in VIDEO_SUFFIXES}
            for path in paths:
                suffix = path.suffix.lower()
                if suffix not in VIDEO_SUFFIXES and suffix not in AUDIO_SUFFIXES:
                    continue
                try:
                    name = parse_ravdess_name(path)
                    folder_actor = folder.name.split("_")[-1]
                    if folder_actor.isdigit() and int(folder_actor) != name.actor:
                        raise DatasetError(f"{path}: actor {name.actor:02d} in the name but folder {folder.name}")
                except DatasetError as exc:
                    if self.strict:
                        raise
                    self._bad_files[str(path)] = str(exc)
                    log.warning("RAVDESS: skipping %s", exc)
                    continue
                if name.modality not in modalities or name.vocal_channel not in vocals:
                    continue
                if (suffix in AUDIO_SUFFIXES) != (name.modality == 3):
                    continue  # a wav is audio-only (03); a video file is 01 or 02
                if name.modality == 3:
                    sources = {"audio": str(path)}
                elif name.modality == 1:
                    sources = {"video": str(path), "audio": str(path)}
                else:
                    sources = {"video": str(path)}
                    if path.stem[3:] in av_files:
                        sources["audio"] = str(av_files[path.stem[3:]])
                meta = asdict(name)
                meta.update(emotion_name=name.emotion_name, modality_name=MODALITIES[name.modality],
                            vocal_channel_name=VOCAL_CHANNELS[name.vocal_channel])
                items.append(
                    Item(
                        key=f"ravdess/{path.stem}", dataset="ravdess", subject=f"{name.actor:02d}", session=1,
                        trial=path.stem,
                        labels={"emotion": name.emotion - 1, "intensity": name.intensity - 1},
                        sources=sources, fold=name.fold, meta=meta,
                    )
                )
        if self._bad_files:
            log.warning("RAVDESS: %d file(s) with malformed names skipped", len(self._bad_files))
        return items

    def input_files(self) -> list[Path]:
        return sorted(p for d in self._actor_dirs() for p in d.iterdir() if p.is_file())

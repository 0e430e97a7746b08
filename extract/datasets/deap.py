"""DEAP: 32 participants x 40 music-video trials; preprocessed EEG (+ peripheral) and, for s01-s22, face video.

Layout (``shared/specs/datasets.md`` section 1)::

    DEAP/data_preprocessed_python/sXX.dat         Python 2 pickle {'data': (40, 40, 8064), 'labels': (40, 4)}
    DEAP/face_video/sXX/sXX_trialYY.avi           YY = presentation order (participant_ratings "Trial")
    DEAP/metadata_csv/participant_ratings.csv     Participant_id,Trial,Experiment_id,...

Item ``deap/sXX/trialYY`` is participant XX's YY-th trial *in presentation order* (the video's number). Its EEG
is ``data[Experiment_id - 1]`` where ``Experiment_id`` comes from the ratings row ``(Participant_id=XX, Trial=YY)``;
indexing ``data[YY - 1]`` (the classic bug) pairs the face with another video's EEG.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from extract.datasets._common import FileCache, parse_float, parse_int, read_csv_rows
from extract.datasets.base import DATASETS, DatasetError, DatasetReader, EegRecording, Item
from extract.safe_pickle import PickleLoadError, safe_load

log = logging.getLogger(__name__)

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # Geneva order, channels 1-32 of the .dat
PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)  # channels 33-40
LABELS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
SFREQ_HZ = 128.0
BASELINE_S = 3.0  # samples [:384] precede the stimulus
RATINGS_HEADER = (
    "Participant_id", "Trial", "Experiment_id", "Start_time", "Valence", "Arousal", "Dominance", "Liking",
    "Familiarity",
)
FACE_VIDEO_SUBJECTS = 22  # the real set has face video for s01-s22 only


def binarize(values: Any, threshold: float = 5.0, side: Literal[">=", ">"] = ">=") -> np.ndarray:
    """High (1) / low (0) classes of ratings: ``values >= threshold`` (TorchEEG, the default) or ``> threshold``
    (TSception). Papers differ; record the choice with the results."""
    if side not in (">=", ">"):
        raise ValueError(f"side must be '>=' or '>', got {side!r}")
    arr = np.asarray(values, dtype=np.float64)
    return (arr >= threshold if side == ">=" else arr > threshold).astype(np.int64)


@DATASETS.register("deap", modalities=("face", "eeg", "peripheral"))
class DeapReader(DatasetReader):
    """DEAP reader. Options:

    - ``labels_from``: ``"dat"`` (default; the ``labels`` array of each ``.dat``, read once per subject while
      listing) or ``"ratings"`` (participant_ratings.csv, listing reads no ``.dat``).
    - ``require_video``: list only items that have a face video (default False: EEG-only items are listed and
      reported by :meth:`missing_video`).
    - ``subjects``: restrict to these participant numbers.
    - ``cache_subjects``: how many loaded ``.dat`` files to keep (LRU, each ~100 MB for the real set).
    """

    name = "deap"
    modalities = ("face", "eeg", "peripheral")

    def __init__(
        self,
        root: str | Path,
        *,
        labels_from: Literal["dat", "ratings"] = "dat",
        require_video: bool = False,
        subjects: Sequence[int] | None = None,
        cache_subjects: int = 2,
    ) -> None:
        super().__init__(root)
        if labels_from not in ("dat", "ratings"):
            raise ValueError(f"labels_from must be 'dat' or 'ratings', got {labels_from!r}")
        self.labels_from = labels_from
        self.require_video = require_video
        self.subject_filter = None if subjects is None else {int(s) for s in subjects}
        self.dat_dir = self.root / "data_preprocessed_python"
        self.video_dir = self.root / "face_video"
        self.ratings_path = self.root / "metadata_csv" / "participant_ratings.csv"
        self._cache: FileCache[dict[str, np.ndarray]] = FileCache(cache_subjects)
        self._missing_video: list[str] = []
        self._bad_files: dict[str, str] = {}

    # -- listing -----------------------------------------------------------------------------------------------
    def missing_video(self) -> list[str]:
        """Keys of listed items without a face video (EEG-only): s23-s32 and the missing last trials."""
        self.items()
        return list(self._missing_video)

    def bad_files(self) -> dict[str, str]:
        """Subject files skipped while listing, with the one-line reason."""
        self.items()
        return dict(self._bad_files)

    def _dat_files(self) -> dict[int, Path]:
        if not self.dat_dir.is_dir():
            raise DatasetError(f"{self.dat_dir}: folder not found (expected DEAP's data_preprocessed_python/sXX.dat)")
        files: dict[int, Path] = {}
        for path in sorted(self.dat_dir.glob("s*.dat")):
            stem = path.stem[1:]
            if stem.isdigit() and (self.subject_filter is None or int(stem) in self.subject_filter):
                files[int(stem)] = path
        if not files:
            raise DatasetError(f"{self.dat_dir}: no sXX.dat files")
        return files

    def _ratings(self) -> dict[int, dict[int, dict[str, Any]]]:
        """participant -> presentation trial -> {"experiment_id", "ratings": {...} or None, "line"}."""
        rows = read_csv_rows(self.ratings_path, ("Participant_id", "Trial", "Experiment_id"),
                             expected=",".join(RATINGS_HEADER))
        table: dict[int, dict[int, dict[str, Any]]] = {}
        for line, row in enumerate(rows, start=2):
            pid = parse_int(row["Participant_id"], self.ratings_path, "Participant_id", line)
            trial = parse_int(row["Trial"], self.ratings_path, "Trial", line)
            exp = parse_int(row["Experiment_id"], self.ratings_path, "Experiment_id", line)
            ratings = None
            if all(row.get(c.capitalize(), "") for c in LABELS):
                ratings = {c: parse_float(row[c.capitalize()], self.ratings_path, c.capitalize(), line) for c in LABELS}
            if trial in table.setdefault(pid, {}):
                raise DatasetError(f"{self.ratings_path}: line {line}: participant {pid} trial {trial} listed twice")
            table[pid][trial] = {"experiment_id": exp, "ratings": ratings, "line": line}
        return table

    def _list_items(self) -> list[Item]:
        files = self._dat_files()
        ratings = self._ratings()
        items: list[Item] = []
        self._missing_video, self._bad_files = [], {}
        for pid, dat in files.items():
            try:
                items.extend(self._subject_items(pid, dat, ratings.get(pid)))
            except DatasetError as exc:
                self._bad_files[str(dat)] = str(exc)
                log.warning("DEAP: skipping participant s%02d: %s", pid, exc)
        with_video = sum(1 for it in items if it.has("video"))
        if self._missing_video:
            shown = ", ".join(self._missing_video[:6]) + (" ..." if len(self._missing_video) > 6 else "")
            log.info("DEAP: %d items, %d with face video, %d EEG-only (%s)", len(items), with_video,
                     len(self._missing_video), shown)
        return items

    def _subject_items(self, pid: int, dat: Path, table: dict[int, dict[str, Any]] | None) -> list[Item]:
        if not table:
            raise DatasetError(f"{self.ratings_path}: no rows for participant {pid} (needed to join {dat.name})")
        trials = sorted(table)
        n = len(trials)
        exp_ids = sorted(r["experiment_id"] for r in table.values())
        if trials != list(range(1, n + 1)) or exp_ids != list(range(1, n + 1)):
            raise DatasetError(
                f"{self.ratings_path}: participant {pid}: Trial and Experiment_id must each be 1..{n} exactly once"
            )
        dat_labels = None
        if self.labels_from == "dat":
            dat_labels = self._load(dat)["labels"]
            if dat_labels.shape[0] != n:
                raise DatasetError(f"{dat}: {dat_labels.shape[0]} trials but {self.ratings_path.name} lists {n}")
        subject = f"s{pid:02d}"
        items = []
        for trial in trials:
            row = table[trial]
            exp = row["experiment_id"]
            if dat_labels is not None:
                labels = {name: float(dat_labels[exp - 1, i]) for i, name in enumerate(LABELS)}
            elif row["ratings"] is not None:
                labels = dict(row["ratings"])
            else:
                raise DatasetError(f"{self.ratings_path}: line {row['line']}: empty rating for participant {pid}")
            video = self.video_dir / subject / f"{subject}_trial{trial:02d}.avi"
            key = f"deap/{subject}/trial{trial:02d}"
            sources = {"eeg": str(dat)}
            if video.is_file():
                sources["video"] = str(video)
            elif self.require_video:
                self._missing_video.append(key)
                continue
            else:
                self._missing_video.append(key)
            items.append(
                Item(
                    key=key, dataset="deap", subject=subject, session=1, trial=f"{trial:02d}", labels=labels,
                    sources=sources,
                    meta={"participant": pid, "presentation_trial": trial, "experiment_id": exp},
                )
            )
        return items

    # -- loading -----------------------------------------------------------------------------------------------
    def _load(self, dat: Path) -> dict[str, np.ndarray]:
        return self._cache.get(str(dat), lambda: self._read_dat(dat))

    @staticmethod
    def _read_dat(dat: Path) -> dict[str, np.ndarray]:
        try:
            obj = safe_load(dat, encoding="latin1")
        except PickleLoadError as exc:
            raise DatasetError(str(exc)) from None
        if isinstance(obj, dict):
            obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
        if not isinstance(obj, dict) or not {"data", "labels"} <= set(obj):
            got = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise DatasetError(f"{dat}: expected a dict with 'data' and 'labels', got {got}")
        data, labels = obj["data"], obj["labels"]
        if not isinstance(data, np.ndarray) or data.ndim != 3 or data.shape[1] != 40:
            shape = getattr(data, "shape", type(data).__name__)
            raise DatasetError(f"{dat}: 'data' has shape {shape}, expected (trials, 40 channels, samples)")
        if not isinstance(labels, np.ndarray) or labels.shape != (data.shape[0], 4):
            shape = getattr(labels, "shape", type(labels).__name__)
            raise DatasetError(f"{dat}: 'labels' has shape {shape}, expected ({data.shape[0]}, 4)")
        for arr in (data, labels):
            arr.flags.writeable = False  # shared through the cache: callers get read-only views
        return {"data": data, "labels": labels.astype(np.float64, copy=False)}

    def _trial(self, item: Item) -> np.ndarray:
        if item.dataset != "deap" or "eeg" not in item.sources:
            raise DatasetError(f"{item.key}: not a DEAP item with EEG")
        dat = Path(item.sources["eeg"])
        data = self._load(dat)["data"]
        exp = int(item.meta["experiment_id"])
        if not 1 <= exp <= data.shape[0]:
            raise DatasetError(f"{dat}: has {data.shape[0]} trials, item {item.key} needs Experiment_id {exp}")
        return data[exp - 1]

    def eeg(self, item: Item) -> EegRecording:
        """The 32 EEG channels (Geneva order, µV) of ``data[Experiment_id - 1]``; onset 3 s (baseline first)."""
        return EegRecording(data=self._trial(item)[:32], sfreq=SFREQ_HZ, channel_names=EEG_CHANNELS,
                            onset_s=BASELINE_S)

    def peripheral(self, item: Item) -> EegRecording:
        """Channels 33-40 (EOG, EMG, GSR, respiration, plethysmograph, temperature) of the same trial."""
        return EegRecording(data=self._trial(item)[32:40], sfreq=SFREQ_HZ, channel_names=PERIPHERAL_CHANNELS,
                            onset_s=BASELINE_S)

    def input_files(self) -> list[Path]:
        files = list(self._dat_files().values())
        if self.ratings_path.is_file():
            files.append(self.ratings_path)
        if self.video_dir.is_dir():
            files.extend(self.video_dir.glob("s*/s*_trial*.avi"))
        return sorted(files)

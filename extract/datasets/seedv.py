"""SEED-V: 16 subjects x 3 sessions x 15 trials, precomputed EEG DE (310-d) and eye-movement (33-d) features.

Layout (``shared/specs/datasets.md`` section 3)::

    SEED-V/EEG_DE_features/<sub>_123.npz        keys 'data', 'label': 0-d bytes arrays holding pickled dicts
    SEED-V/Eye_movement_features/<sub>_123.npz  same layout, 33 features per window

Dict keys are ints 0..44: session = k // 15 + 1, trial = k % 15 + 1. Each row is one 4 s window. The pickled
dicts are loaded with the restricted unpickler (``np.load(allow_pickle=False)``, then the bytes are unpickled by
:mod:`extract.safe_pickle`): a file that names any other callable is refused and nothing in it runs.

Item ``seedv/3/s2t05`` = subject 3, session 2, trial 5; ``fold`` = the paper's subject-dependent 3-fold split
(trials 1-5, 6-10, 11-15 of each session -> 1, 2, 3).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from extract.datasets._common import FileCache
from extract.datasets.base import DATASETS, DatasetError, DatasetReader, Item
from extract.safe_pickle import PickleLoadError, safe_load, safe_loads

log = logging.getLogger(__name__)

EMOTIONS: tuple[str, ...] = ("disgust", "fear", "sad", "neutral", "happy")
FEATURE_DIRS = {"eeg_de": "EEG_DE_features", "eye": "Eye_movement_features"}
FEATURE_DIMS = {"eeg_de": 310, "eye": 33}
WINDOW_S = 4.0
SESSION_LABELS = {
    1: (4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0),
    2: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
    3: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
}


def key_to_session_trial(k: int) -> tuple[int, int]:
    return k // 15 + 1, k % 15 + 1


def load_npz_dicts(path: Path, members: tuple[str, ...] = ("data", "label")) -> dict[str, dict[int, np.ndarray]]:
    """``{'data': {k: array}, 'label': {k: array}}`` of one SEED-V npz (only ``members``), through the restricted
    unpickler."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    out: dict[str, dict[int, np.ndarray]] = {}
    try:
        # our own handle: np.load leaks the file it opened when the zip is truncated (ResourceWarning)
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            missing = [k for k in ("data", "label") if k not in npz.files]
            if missing:
                raise DatasetError(f"{path}: npz lacks key(s) {', '.join(missing)} (has {', '.join(npz.files) or 'none'})")
            for name in members:
                try:
                    arr = npz[name]
                    obj = safe_loads(arr.tobytes(), source=f"{path}[{name}]")
                except ValueError as exc:
                    if isinstance(exc, PickleLoadError):
                        raise
                    obj = _load_object_member(path, name)  # a 0-d object array: its .npy body is a pickle
                out[name] = _as_int_dict(obj, path, name)
    except PickleLoadError as exc:
        raise DatasetError(str(exc)) from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable npz (truncated or corrupt: {exc})") from None
    return out


def _load_object_member(path: Path, name: str) -> Any:
    """Tolerate npz files whose member is a pickled *object* array: unpickle it with the restricted unpickler."""
    with zipfile.ZipFile(path) as zf, zf.open(f"{name}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise DatasetError(f"{path}[{name}]: unsupported .npy format version {version}")
        _, _, dtype = readers[version](fh)
        if not dtype.hasobject:
            raise DatasetError(f"{path}[{name}]: expected a pickled dict, found a plain {dtype} array")
        arr = safe_load(fh, source=f"{path}[{name}]")
    arr = np.asarray(arr)
    return arr.item() if arr.shape == () else arr


def _as_int_dict(obj: Any, path: Path, name: str) -> dict[int, np.ndarray]:
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}[{name}]: expected a pickled dict of trials, got {type(obj).__name__}")
    out: dict[int, np.ndarray] = {}
    for key, value in obj.items():
        try:
            k = int(key)
        except (TypeError, ValueError):
            raise DatasetError(f"{path}[{name}]: trial key {key!r} is not an integer") from None
        if not 0 <= k <= 44:
            raise DatasetError(f"{path}[{name}]: trial key {k} outside 0..44")
        out[k] = np.asarray(value)
    return out


@DATASETS.register("seedv", modalities=("eeg_de", "eye"))
class SeedVReader(DatasetReader):
    """SEED-V reader. Options: ``cache_subjects`` (loaded npz files kept, per kind)."""

    name = "seedv"
    modalities = ("eeg_de", "eye")

    def label_names(self) -> dict[str, list[str]]:
        return {"emotion": list(EMOTIONS)}

    def __init__(self, root: str | Path, *, cache_subjects: int = 2) -> None:
        super().__init__(root)
        self._cache: FileCache[dict[int, np.ndarray]] = FileCache(2 * cache_subjects)
        self._bad_files: dict[str, str] = {}

    def _files(self, kind: str) -> dict[str, Path]:
        folder = self.root / FEATURE_DIRS[kind]
        if not folder.is_dir():
            return {}
        return {p.name.split("_")[0]: p for p in folder.glob("*_123.npz") if p.name.split("_")[0].isdigit()}

    def _load(self, path: Path, member: str) -> dict[int, np.ndarray]:
        """One member ('data' or 'label') of an npz; listing reads only the labels."""
        return self._cache.get((str(path), member), lambda: load_npz_dicts(path, (member,))[member])

    def bad_files(self) -> dict[str, str]:
        self.items()
        return dict(self._bad_files)

    def _list_items(self) -> list[Item]:
        de_files = self._files("eeg_de")
        eye_files = self._files("eye")
        if not de_files and not eye_files:
            raise DatasetError(
                f"{self.root}: no {FEATURE_DIRS['eeg_de']}/<sub>_123.npz or {FEATURE_DIRS['eye']}/<sub>_123.npz files"
            )
        items: list[Item] = []
        self._bad_files = {}
        for sub in sorted(set(de_files) | set(eye_files), key=int):
            primary = de_files.get(sub) or eye_files[sub]
            try:
                labels = self._load(primary, "label")
            except DatasetError as exc:
                self._bad_files[str(primary)] = str(exc)
                log.warning("SEED-V: skipping subject %s: %s", sub, exc)
                continue
            for k in sorted(labels):
                session, trial = key_to_session_trial(k)
                lab = labels[k].reshape(-1)
                key = f"seedv/{sub}/s{session}t{trial:02d}"
                if lab.size == 0 or not np.all(lab == lab[0]) or not 0 <= int(lab[0]) <= 4:
                    msg = f"{primary}[label][{k}]: labels {np.unique(lab).tolist()} are not one class in 0..4"
                    self._bad_files[f"{primary}[{k}]"] = msg
                    log.warning("SEED-V: skipping %s: %s", key, msg)
                    continue
                sources = {kind: str(files[sub]) for kind, files in (("eeg_de", de_files), ("eye", eye_files))
                           if sub in files}
                items.append(
                    Item(
                        key=key, dataset="seedv", subject=sub, session=session, trial=f"{trial:02d}",
                        labels={"emotion": int(lab[0])}, sources=sources, fold=(trial - 1) // 5 + 1,
                        meta={"window_s": WINDOW_S, "n_windows": int(lab.size), "npz_key": k},
                    )
                )
        return items

    def features(self, item: Item, kind: str) -> np.ndarray:
        """(windows, 310) DE features for ``kind='eeg_de'``, (windows, 33) for ``'eye'``; row i covers
        [4 i, 4 i + 4) s of the trial."""
        if kind not in FEATURE_DIRS:
            raise ValueError(f"SEED-V feature kind must be one of {', '.join(FEATURE_DIRS)}, got {kind!r}")
        path = item.sources.get(kind)
        if not path:
            raise DatasetError(f"{self.root / FEATURE_DIRS[kind]}: no file for subject {item.subject} ({item.key})")
        path = Path(path)
        k = int(item.meta["npz_key"])
        loaded = self._load(path, "data")
        if k not in loaded:
            raise DatasetError(f"{path}[data]: trial key {k} missing ({item.key})")
        data = np.asarray(loaded[k])
        expected_rows = int(item.meta["n_windows"])
        if data.ndim != 2 or data.shape != (expected_rows, FEATURE_DIMS[kind]):
            raise DatasetError(
                f"{path}[data][{k}]: shape {data.shape}, expected ({expected_rows}, {FEATURE_DIMS[kind]}) "
                f"({expected_rows} labelled windows x {FEATURE_DIMS[kind]} {kind} features)"
            )
        return data.astype(np.float64, copy=True)

    def input_files(self) -> list[Path]:
        return sorted([*self._files("eeg_de").values(), *self._files("eye").values()])

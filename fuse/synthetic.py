"""Planted-signal stores for tests, the benchmark and demos: DEAP-shaped EEG windows and face frames whose
features carry the label with independent noise per modality (so fusing them helps).

``planted_modalities`` returns in-memory ``ModalityData``; ``write_planted_stores`` writes the same through the
store API (``store.create_store``), exactly as ``pipeline extract`` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fuse.inputs import ModalityData


@dataclass(frozen=True)
class Planted:
    n_subjects: int = 6
    n_trials: int = 8
    n_windows: int = 10  # 1 s EEG windows per trial
    eeg_dim: int = 16
    face_dim: int = 32
    fps: float = 5.0
    eeg_signal: float = 0.22  # label shift along a fixed direction (projected d-prime = 2 * signal * sqrt(dim))
    face_signal: float = 0.075  # per frame; about 4.5 valid frames pool into a window
    subject_shift: float = 0.3  # per-subject offset (what makes LOSO harder than within-subject)
    no_face_rate: float = 0.1  # frames without a face (q_face_found False, NaN embedding)
    dataset: str = "deap"
    seed: int = 0


def _trial_labels(p: Planted, rng: np.random.Generator) -> np.ndarray:
    """Valence ratings in [1, 9], about 60 % of trials >= 5 per subject."""
    ratings = np.empty((p.n_subjects, p.n_trials))
    for s in range(p.n_subjects):
        high = rng.permutation(p.n_trials) < int(round(0.6 * p.n_trials))
        ratings[s] = np.where(high, rng.uniform(5.0, 9.0, p.n_trials), rng.uniform(1.0, 4.9, p.n_trials))
    return np.round(ratings, 2)


def _rows(p: Planted, subject: int, trial: int, t_start: np.ndarray, t_end: np.ndarray,
          rating: float) -> pd.DataFrame:
    n = len(t_start)
    return pd.DataFrame({
        "item": f"{p.dataset}/s{subject + 1:02d}/trial{trial + 1:02d}", "subject": f"s{subject + 1:02d}",
        "session": 1, "trial": f"{trial + 1:02d}", "row": np.arange(n, dtype=np.int32),
        "t_start_s": t_start, "t_end_s": t_end, "fold": -1,
        "label_valence": rating, "label_arousal": 10.0 - rating,
    })


def planted_items(p: Planted = Planted()) -> tuple[list[dict], list[dict]]:
    """Per item: dicts of rows (DataFrame), embeddings and quality for the EEG and the face store."""
    rng = np.random.default_rng(p.seed)
    ratings = _trial_labels(p, rng)
    eeg_dir = rng.normal(size=p.eeg_dim)
    eeg_dir /= np.linalg.norm(eeg_dir)
    face_dir = rng.normal(size=p.face_dim)
    face_dir /= np.linalg.norm(face_dir)
    eeg_items, face_items = [], []
    n_frames = int(round(p.n_windows * p.fps))
    for s in range(p.n_subjects):
        eeg_off = rng.normal(scale=p.subject_shift, size=p.eeg_dim)
        face_off = rng.normal(scale=p.subject_shift, size=p.face_dim)
        for t in range(p.n_trials):
            sign = 1.0 if ratings[s, t] >= 5.0 else -1.0
            starts = np.arange(p.n_windows, dtype=np.float64)
            eeg = rng.normal(size=(p.n_windows, p.eeg_dim)) + eeg_off + sign * p.eeg_signal * eeg_dir * np.sqrt(p.eeg_dim)
            eeg_items.append({"rows": _rows(p, s, t, starts, starts + 1.0, ratings[s, t]),
                              "embeddings": eeg.astype(np.float32), "quality": {"q_input_nan": np.zeros(p.n_windows, bool)}})
            times = np.arange(n_frames) / p.fps
            face = rng.normal(size=(n_frames, p.face_dim)) + face_off + sign * p.face_signal * face_dir * np.sqrt(p.face_dim)
            found = rng.random(n_frames) >= p.no_face_rate
            face[~found] = np.nan
            face_items.append({"rows": _rows(p, s, t, times, times, ratings[s, t]),
                               "embeddings": face.astype(np.float32),
                               "quality": {"q_face_found": found, "q_det_score": np.where(found, 0.99, 0.0)}})
    return eeg_items, face_items


def _as_modality(items: list[dict], kind: str, p: Planted) -> ModalityData:
    rows = pd.concat([it["rows"].assign(**it["quality"]) for it in items], ignore_index=True)
    emb = np.concatenate([it["embeddings"] for it in items])
    return ModalityData(kind=kind, dataset=p.dataset, embeddings=emb, rows=rows,
                        manifest={"kind": kind, "dataset": p.dataset, "extractor": f"synthetic/{kind}"},
                        fingerprint=f"synthetic-{kind}-{p.seed}", path=f"<memory:{kind}>")


def planted_modalities(p: Planted = Planted()) -> tuple[ModalityData, ModalityData]:
    """(EEG, face) in memory."""
    eeg_items, face_items = planted_items(p)
    return _as_modality(eeg_items, "eeg", p), _as_modality(face_items, "face", p)


def planted_window_modality(like: ModalityData, kind: str, *, dim: int = 8, signal: float = 0.25,
                            subject_shift: float = 0.3, seed: int = 0) -> ModalityData:
    """Another modality (``peripheral``, ``audio``, ...) on the windows of ``like`` (rows copied): its own label
    direction, subject offsets and noise, drawn independently of the others, so it adds information to a fusion.
    The label is ``like``'s ``label_valence`` (>= 5 high)."""
    rng = np.random.default_rng([seed, len(like.rows), dim])
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    rows = like.rows.drop(columns=[c for c in like.rows.columns if c.startswith("q_")]).copy()
    subjects = rows["subject"].to_numpy()
    offsets = {s: rng.normal(scale=subject_shift, size=dim) for s in sorted(set(subjects.tolist()))}
    sign = np.where(rows["label_valence"].to_numpy() >= 5.0, 1.0, -1.0)[:, None]
    emb = (rng.normal(size=(len(rows), dim)) + np.stack([offsets[s] for s in subjects])
           + sign * signal * direction * np.sqrt(dim))
    return ModalityData(kind=kind, dataset=like.dataset, embeddings=emb.astype(np.float32), rows=rows,
                        manifest={"kind": kind, "dataset": like.dataset, "extractor": f"synthetic/{kind}"},
                        fingerprint=f"synthetic-{kind}-{seed}", path=f"<memory:{kind}>")


def write_planted_stores(directory: str | Path, p: Planted = Planted(), backend: str = "zarr",
                         dataset_root: str = "", dtype: str = "float32") -> tuple[Path, Path]:
    """Write the planted EEG and face stores through the store API; returns their paths."""
    from store import create_store
    from store.schema import ItemRows, Manifest

    directory = Path(directory)
    eeg_items, face_items = planted_items(p)
    paths = []
    for kind, items, dim, config in (
        ("eeg", eeg_items, p.eeg_dim, {"window_s": 1.0, "step_s": 1.0, "features": "planted"}),
        ("face", face_items, p.face_dim, {"fps": p.fps, "backbone": "planted"}),
    ):
        manifest = Manifest(kind=kind, dataset=p.dataset, extractor=f"synthetic/{kind}", extractor_version="1",
                            dim=dim, dtype=dtype, config=config, dataset_root=dataset_root,
                            input_fingerprint=f"planted-seed{p.seed}")
        path = directory / f"{p.dataset}-{kind}"
        writer = create_store(path, manifest, backend=backend)
        for it in items:
            rows = it["rows"]
            writer.write_item(ItemRows(
                key=rows["item"].iloc[0], embeddings=it["embeddings"], subject=rows["subject"].iloc[0],
                session=int(rows["session"].iloc[0]), trial=rows["trial"].iloc[0],
                t_start_s=rows["t_start_s"].to_numpy(), t_end_s=rows["t_end_s"].to_numpy(),
                labels={"valence": float(rows["label_valence"].iloc[0]), "arousal": float(rows["label_arousal"].iloc[0])},
                quality=it["quality"],
            ))
        writer.close()
        paths.append(path)
    return paths[0], paths[1]


def planted_clips(classes: tuple[str, ...], *, n_clips: int = 40, n_frames: int = 16, dim: int = 12,
                  dataset: str = "dfew", n_folds: int = 5, signal: float = 0.6, order_signal: float = 0.0,
                  seed: int = 0) -> ModalityData:
    """A face store of frame-sequence clips (DFEW/RAVDESS-shaped): one subject per clip, ``label_emotion`` class
    ids, ``fold`` 1..n_folds, and a manifest recording the class names. ``signal`` shifts every frame along its
    class's direction; ``order_signal`` adds a class-dependent ramp over the clip whose mean is zero (only a model
    that sees frame order can use it)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(classes), dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    ramp = np.linspace(-1.0, 1.0, n_frames)[:, None]
    rows, emb = [], []
    for c in range(n_clips):
        label = c % len(classes)
        frames = rng.normal(size=(n_frames, dim)) + signal * directions[label]
        frames += order_signal * ramp * directions[(label + 1) % len(classes)] * (1 if label % 2 else -1)
        times = np.arange(n_frames) / 25.0
        rows.append(pd.DataFrame({
            "item": f"{dataset}/{c:05d}", "subject": f"{dataset}/{c:05d}", "session": 1, "trial": f"{c:05d}",
            "row": np.arange(n_frames, dtype=np.int32), "t_start_s": times, "t_end_s": times,
            "fold": c % n_folds + 1, "label_emotion": float(label), "q_face_found": True,
        }))
        emb.append(frames)
    return ModalityData(kind="face", dataset=dataset, embeddings=np.concatenate(emb).astype(np.float32),
                        rows=pd.concat(rows, ignore_index=True),
                        manifest={"kind": "face", "dataset": dataset, "label_names": {"emotion": list(classes)}},
                        fingerprint=f"synthetic-clips-{dataset}-{seed}", path=f"<memory:{dataset}>")

"""`pipeline predict --model fer2013`: a built-in pretrained model on a video, an image folder or a labelled dataset.

- video: per-window (or per-frame, ``window_s=0``) probabilities, one series per face track;
- image folder: per-image probabilities; sub-folders named after classes (``happy/``, ``Fearful/`` ...) are the
  true labels, giving per-folder accuracy, UAR and a confusion matrix;
- dataset (a registry reader such as ``ravdess``): zero-shot, each item's label mapped onto the model's classes
  (RAVDESS: neutral, calm -> neutral; fearful -> fear; surprised -> surprise ...), per-item probabilities = the
  mean over the item's sampled frames with a face.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.predict import PredictError, Prediction
from pipelines.predict_tables import (
    RAVDESS_TO_FER2013,
    Metrics,
    argmax_names,
    evaluate,
    map_label,
    per_group_accuracy,
    pool_windows,
    prob_columns,
)
from pipelines.pretrained import VIDEO_CLOCK, FaceScorer

log = logging.getLogger(__name__)

DATASET_MAPPINGS: dict[str, dict[str, str]] = {"ravdess": RAVDESS_TO_FER2013}


def model_info(scorer: FaceScorer) -> dict[str, Any]:
    m = scorer.model
    return {"model": m.name, "backbone": m.backbone, "description": m.description, "published": m.published,
            "classes": list(m.classes), "detector": scorer.config.detector, "fps": scorer.config.fps}


def predict_video_builtin(video: str | Path, scorer: FaceScorer, *, window_s: float = 1.0) -> Prediction:
    """Per window and face track probabilities of ``video`` (track -1: no face anywhere); ``t_start_s`` and
    ``t_end_s`` are on the file's clock, as the ``time_origin`` column says."""
    video = Path(video)
    if not video.is_file():
        raise PredictError(f"{video}: video file not found")
    frames, duration = scorer.score_video(video)
    table = pool_windows(frames, scorer.classes, window_s, duration)
    table["time_origin"] = VIDEO_CLOCK
    return Prediction(table=table, classes=scorer.classes, model_info=model_info(scorer))


@dataclass
class Evaluation:
    """Per-item predictions with true classes, and the zero-shot metrics over them (None: no labels)."""

    table: pd.DataFrame
    classes: list[str]
    metrics: Metrics | None
    info: dict[str, Any]
    groups: pd.DataFrame | None = None  # per-folder accuracy (image folders)


def predict_images(root: str | Path, scorer: FaceScorer) -> Evaluation:
    """Every image under ``root``; the first sub-folder of an image, when it names a class, is its true label."""
    from extract.datasets.base import DatasetError
    from extract.datasets.folder import FolderReader

    root = Path(root)
    try:
        reader = FolderReader(root, kinds=("image",))
        items = reader.items()
    except DatasetError as exc:
        raise PredictError(str(exc)) from exc
    names = [it.meta["path"] for it in items]
    images = ((name, next(iter(reader.frames(it))).image) for name, it in zip(names, items, strict=True))
    rows = list(scorer.score_images(images))
    table = pd.DataFrame({"image": names,
                          "folder": [n.split("/")[0] if "/" in n else "" for n in names]})
    table = pd.concat([table, pd.DataFrame(rows)], axis=1)
    probs = table[prob_columns(scorer.classes)].to_numpy(np.float64)
    table["predicted"] = argmax_names(probs, scorer.classes)
    table["true_class"] = [map_label(f, scorer.classes) if f else None for f in table["folder"]]
    labelled = table["true_class"].notna()
    unmapped = sorted({f for f, ok in zip(table["folder"], labelled, strict=True) if f and not ok})
    if unmapped:
        log.warning("%s: sub-folders %s name no class of the model (%s); their images have no true label", root,
                    ", ".join(unmapped), ", ".join(scorer.classes))
    info = {**model_info(scorer), "input": str(root), "unmapped_folders": unmapped}
    if not labelled.any():
        return Evaluation(table=table, classes=scorer.classes, metrics=None, info=info)
    table["correct"] = _correct(table)
    metrics = evaluate(table["true_class"].where(labelled, None).tolist(), table["predicted"].tolist(),
                       scorer.classes)
    groups = per_group_accuracy(table[table["folder"] != ""], "folder")
    return Evaluation(table=table, classes=scorer.classes, metrics=metrics, info=info, groups=groups)


def predict_dataset(dataset: str, root: str | Path, scorer: FaceScorer, *, label: str | None = None,
                    mapping: dict[str, str] | None = None, options: dict[str, Any] | None = None) -> Evaluation:
    """Zero-shot on a registry dataset's video items: each item's ``label`` (default: its first categorical
    label) mapped onto the model's classes through ``mapping`` (default: the dataset's seed mapping)."""
    from extract.datasets.base import DatasetError, create_dataset
    from pipelines.jobs.plan import import_plugins

    import_plugins()
    try:
        reader = create_dataset(dataset, root, **(options or {}))
        items = reader.items()
    except (DatasetError, KeyError) as exc:
        raise PredictError(f"{root}: {exc}") from exc
    names = reader.label_names()
    label = label or next(iter(names), None)
    if label not in names:
        raise PredictError(f"{dataset}: no categorical label {label!r} to map (it has {sorted(names) or 'none'})")
    mapping = mapping if mapping is not None else DATASET_MAPPINGS.get(dataset, {})
    rows = []
    for item in items:
        video = reader.video_path(item)
        if video is None or label not in item.labels:
            continue
        frames, _ = scorer.score_video(video)
        probs = frames[prob_columns(scorer.classes)].to_numpy(np.float64)
        found = np.isfinite(probs).all(axis=1)
        true_name = names[label][int(item.labels[label])]
        rows.append({"item": item.key, "subject": item.subject, "true_label": true_name,
                     "true_class": map_label(true_name, scorer.classes, mapping),
                     "n_frames": int(frames["frame"].nunique()), "n_face_frames": int(found.sum()),
                     **dict(zip(prob_columns(scorer.classes),
                                probs[found].mean(axis=0) if found.any() else np.full(len(scorer.classes), np.nan),
                                strict=True))})
    if not rows:
        raise PredictError(f"{root}: no {dataset} video item with a {label!r} label")
    table = pd.DataFrame(rows)
    table["predicted"] = argmax_names(table[prob_columns(scorer.classes)].to_numpy(np.float64), scorer.classes)
    table["correct"] = _correct(table)
    metrics = evaluate(table["true_class"].tolist(), table["predicted"].tolist(), scorer.classes)
    info = {**model_info(scorer), "dataset": dataset, "root": str(root), "label": label,
            "mapping": {n: map_label(n, scorer.classes, mapping) for n in names[label]}}
    return Evaluation(table=table, classes=scorer.classes, metrics=metrics, info=info)


def _correct(table: pd.DataFrame) -> pd.Series:
    """1/0 where an item has a prediction and a true class, empty otherwise."""
    scored = (table["predicted"] != "") & table["true_class"].notna()
    values = (table["predicted"] == table["true_class"]).astype("Int64")
    return values.where(scored, pd.NA)


def write_evaluation(ev: Evaluation, out_dir: str | Path, *, title: str) -> list[Path]:
    """predictions.csv, the three plots, and with labels metrics.json, confusion.png (+ per_folder.csv)."""
    from pipelines.predict_plots import plot_confusion, write_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "predictions.csv"]
    ev.table.to_csv(paths[0], index=False)
    paths += write_plots(ev.table, ev.classes, out_dir, title=title)
    if ev.metrics is None:
        return paths
    doc = {**ev.info, **ev.metrics.as_dict()}
    if ev.groups is not None:
        paths.append(out_dir / "per_folder.csv")
        ev.groups.to_csv(paths[-1], index=False)
        doc["per_folder"] = ev.groups.replace({np.nan: None}).to_dict(orient="records")
    paths.append(out_dir / "metrics.json")
    paths[-1].write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    m = ev.metrics
    paths.append(plot_confusion(m.confusion, ev.classes, out_dir / "confusion.png",
                                title=f"{title}: accuracy {m.accuracy:.1%}, UAR {m.uar:.1%} (n={m.n_scored})"))
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)

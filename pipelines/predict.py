"""`pipeline predict`: a face-only model from a fuse run applied to any video -> per-window probabilities + plots.

The video goes through the same face extractor (detector, backbone, fps, crop) the model's training store was made
with — read from the model's saved inputs — and its frames are pooled into windows exactly as the fuse run pooled
them. Nothing here trains; the model is loaded from safetensors + JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from extract.datasets.base import DatasetReader, Item

log = logging.getLogger(__name__)

# Face-extractor options a store manifest records that are not constructor arguments of the extractor.
_NOT_EXTRACTOR_OPTIONS = {"template", "extractor", "version", "dim"}


class PredictError(ValueError):
    """The model or the video cannot be used for prediction; the message says why."""


class SingleVideoReader(DatasetReader):
    """A one-item 'dataset': the video being scored."""

    name = "video"
    modalities = ("face",)

    def __init__(self, video: str | Path) -> None:
        video = Path(video)
        if not video.is_file():
            raise PredictError(f"{video}: video file not found")
        super().__init__(video.parent)
        self.video = video

    def _list_items(self) -> list[Item]:
        return [Item(key=f"video/{self.video.stem}", dataset="video", subject="", session=1, trial=self.video.stem,
                     sources={"video": str(self.video)})]

    def input_files(self) -> list[Path]:
        return [self.video]


@dataclass
class Prediction:
    """Per-window class probabilities of one video."""

    table: pd.DataFrame  # t_start_s, t_end_s, [track_id], n_faces, n_frames, p_<class>..., predicted
    classes: list[str]
    model_info: dict[str, Any]


def face_options(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Extractor keyword options rebuilt from the face store's manifest config recorded in the model."""
    config = dict(inputs.get("config", {}))
    options = {k: v for k, v in config.items() if k not in _NOT_EXTRACTOR_OPTIONS and v is not None}
    options["on_corrupt"] = "keep"  # score what could be decoded of a damaged video
    return options


def window_max(windows: pd.DataFrame, t_start: np.ndarray, t_end: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per window, the largest value of the frame rows whose mid-time falls in it (0 for none): the most faces
    seen in one frame of the window, where the pooled count says how many frames had the subject's face."""
    mid = (np.asarray(t_start, float) + np.asarray(t_end, float)) / 2
    values = np.asarray(values, float)
    out = np.zeros(len(windows), np.int64)
    for i, (a, b) in enumerate(zip(windows["t_start_s"].to_numpy(), windows["t_end_s"].to_numpy(), strict=True)):
        sel = (mid >= a) & (mid < b)
        out[i] = int(np.nanmax(values[sel])) if sel.any() and np.isfinite(values[sel]).any() else 0
    return out


def predict_video(video: str | Path, model_path: str | Path, *, device: str = "cpu",
                  backbone: str | None = None) -> Prediction:
    """Score ``video`` with the face-only model saved in ``model_path`` (a results directory)."""
    from extract.base import EXTRACTORS
    from fuse.align import align, to_trials
    from fuse.inputs import ModalityData
    from fuse.models import load_model
    from pipelines.jobs.plan import import_plugins

    import_plugins()  # registers the face extractor
    model = load_model(model_path)
    info = model.info
    if list(model.roles) != ["face"]:
        raise PredictError(f"{model_path}: the model reads {model.roles}; predict needs a face-only model "
                           "(a run made with `pipeline fuse --strategy face`)")
    inputs = info["inputs"]["face"]
    options = face_options(inputs)
    if backbone:
        options["backbone"] = backbone
    reader = SingleVideoReader(video)
    (item,) = reader.items()
    extractor = EXTRACTORS.create("face", device=device, **options)
    try:
        rows = extractor.extract(reader, item)
    finally:
        extractor.close()
    if rows.embeddings.shape[1] != inputs["dim"]:
        raise PredictError(f"{video}: embeddings have {rows.embeddings.shape[1]} dims, the model expects "
                           f"{inputs['dim']} (backbone {options.get('backbone')})")
    frame = pd.DataFrame({
        "item": item.key, "subject": item.subject, "session": item.session, "trial": item.trial,
        "row": np.arange(rows.n_rows), "t_start_s": rows.t_start_s, "t_end_s": rows.t_end_s, "fold": -1,
        **{f"q_{k}": v for k, v in rows.quality.items()},
    })
    data = ModalityData(kind="face", dataset="video", embeddings=rows.embeddings, rows=frame, path=str(video))
    table = align([data], window_s=float(info.get("window_s", 1.0)))
    if info.get("granularity") == "trial":
        table = to_trials(table)
    features = table.features["face"]
    ok = np.isfinite(features).all(axis=1)
    probs = np.full((len(table), len(model.classes)), np.nan, dtype=np.float64)
    if ok.any():
        probs[ok] = model.predict_proba(features[ok])
    out = table.rows[["t_start_s", "t_end_s"]].reset_index(drop=True).copy()
    out["n_faces"] = window_max(out, frame["t_start_s"].to_numpy(), frame["t_end_s"].to_numpy(),
                                rows.quality.get("n_faces", rows.quality["face_found"]))
    out["n_frames"] = table.rows["n_face"].to_numpy() if "n_face" in table.rows else ok.astype(int)
    for j, name in enumerate(model.classes):
        out[f"p_{name}"] = probs[:, j]
    predicted = np.full(len(out), "", dtype=object)
    predicted[ok] = np.asarray(model.classes, dtype=object)[probs[ok].argmax(axis=1)]
    out["predicted"] = predicted
    if rows.meta.get("time_origin", "first_frame") == "first_frame":  # rows from the first frame: the file's clock
        out[["t_start_s", "t_end_s"]] += float(rows.meta.get("first_frame_file_s") or 0.0)
    out["time_origin"] = "file_start"
    return Prediction(table=out, classes=list(model.classes), model_info=info)


def write_prediction(pred: Prediction, out_dir: str | Path, *, title: str = "", smooth_windows: int = 3) -> list[Path]:
    """predictions.csv plus timeline.png (smoothed within face runs), distribution.png and heatmap.png."""
    from pipelines.predict_plots import write_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "predictions.csv"
    pred.table.to_csv(csv, index=False)
    target = pred.model_info.get("target", {})
    label = target.get("name", "") if isinstance(target, Mapping) else str(target)
    name = " ".join(p for p in (title, label) if p) or "prediction"
    return [csv, *write_plots(pred.table, pred.classes, out_dir, title=name, smooth_windows=smooth_windows)]

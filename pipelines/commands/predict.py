"""`pipeline predict`: a face model applied to a video, an image folder or a labelled dataset (thin layer over
pipelines.predict and pipelines.predict_builtin)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pipelines.logs import console

log = logging.getLogger(__name__)

MODEL_HELP = ("A built-in pretrained model (fer2013: FER2013 mini-Xception, 7 classes), the results directory of "
              "a `pipeline fuse --strategy face` run, or that of a `pipeline finetune` run.")


def predict_command(
    model: Annotated[str, typer.Option("--model", help=MODEL_HELP)],
    video: Annotated[Path | None, typer.Option("--video", help="Video file to score (any format PyAV decodes).")] = None,
    images: Annotated[Path | None, typer.Option("--images", help="Folder of images (built-in models); class-named "
                                                "sub-folders (happy/, sad/ ...) give per-folder accuracy.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Zero-shot on a registry dataset with a label "
                                                "mapping (built-in models), e.g. ravdess; needs --root.")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Root folder of --dataset.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory this command writes (default: "
                                             "MODEL/predict/STEM, or predictions/MODEL/STEM for a built-in model).")] = None,
    debug_crops: Annotated[Path | None, typer.Option("--debug-crops", help="Also save every aligned face crop the "
                                                     "model saw as PNG here (built-in models).")] = None,
    fps: Annotated[float, typer.Option("--fps", help="Frames per second sampled from videos (built-in models; "
                                       "0 = every frame).")] = 5.0,
    window: Annotated[float, typer.Option("--window", help="Seconds per output row of a video (built-in models; "
                                          "0 = one row per sampled frame).")] = 1.0,
    detector: Annotated[str, typer.Option("--detector", help="Face detector (built-in models).")] = "mtcnn",
    gpu: Annotated[int, typer.Option("--gpu", help="GPU index (cuda:N when present, else the CPU); -1 = CPU.")] = 0,
    backbone: Annotated[str | None, typer.Option("--backbone", help="Override the backbone recorded in a fuse "
                                                 "model (it must give the same embedding dimension).")] = None,
    smooth: Annotated[int, typer.Option("--smooth", help="Windows in the timeline's moving average.")] = 3,
) -> None:
    """Score faces with a model: per-window (video), per-image or per-item probabilities as CSV, plus timeline,
    distribution and heatmap PNGs; with labels (class-named folders, --dataset) accuracy, UAR and a confusion
    matrix."""
    given = [name for name, v in (("--video", video), ("--images", images), ("--dataset", dataset)) if v]
    if len(given) != 1:
        _fail(f"give exactly one of --video, --images, --dataset (got {', '.join(given) or 'none'})")
    if dataset and root is None:
        _fail("--dataset needs --root (the dataset's folder)")
    log.info("predict: %s with model %s: loading the model and the face detector; results follow",
             video or images or f"{dataset} at {root}", model)  # a first line before the heavy imports
    from pipelines.pretrained import builtin_model

    spec = None if Path(model).is_dir() else builtin_model(model)  # a results directory wins over a name
    if spec is None and Path(model).is_dir():  # a `pipeline finetune` results dir scores like a built-in model
        from pipelines.pretrained import finetuned_model

        spec = finetuned_model(model)
    if spec is None:
        if not video:
            _fail(f"--model {model}: {given[0]} needs a built-in model (fer2013); a fuse model scores --video only")
        _predict_fuse(video, Path(model), out, gpu, backbone, smooth)
        return
    _predict_builtin(spec, video=video, images=images, dataset=dataset, root=root, out=out, debug_crops=debug_crops,
                     fps=fps, window=window, detector=detector, gpu=gpu, smooth=smooth)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _predict_fuse(video: Path, model: Path, out: Path | None, gpu: int, backbone: str | None, smooth: int) -> None:
    from extract.base import ItemError
    from extract.devices import resolve_device
    from pipelines.predict import PredictError, predict_video, write_prediction

    device = resolve_device(gpu)
    try:
        pred = predict_video(video, model, device=str(device), backbone=backbone)
    except (PredictError, ItemError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    out_dir = out or model / "predict" / video.stem
    paths = write_prediction(pred, out_dir, title=video.name, smooth_windows=smooth)
    n_face = int((pred.table["predicted"] != "").sum())
    console.print(f"{len(pred.table)} windows ({n_face} with a face) scored into {out_dir}:")
    _warn_no_face(video, n_face)
    for path in paths:
        console.print(f"  {path}")


def _predict_builtin(spec, *, video: Path | None, images: Path | None, dataset: str | None, root: Path | None,
                     out: Path | None, debug_crops: Path | None, fps: float, window: float, detector: str, gpu: int,
                     smooth: int) -> None:
    """Run a built-in model on whichever input was given and print where everything went and the scores."""
    from extract.backbones.hub import ModelUnavailableError
    from extract.base import ItemError
    from extract.devices import resolve_device
    from pipelines import predict_builtin as pb
    from pipelines.predict import PredictError, write_prediction
    from pipelines.pretrained import FaceScorer, ScorerConfig

    stem = video.stem if video else images.name if images else f"{dataset}"
    out_dir = out or Path("predictions") / spec.name / stem
    console.print(f"model {spec.name}: {spec.description}; {spec.published}")
    try:
        scorer = FaceScorer(spec, ScorerConfig(detector=detector, fps=fps), device=str(resolve_device(gpu)),
                            debug_crops=debug_crops)
        if video:
            pred = pb.predict_video_builtin(video, scorer, window_s=window)
            paths = write_prediction(pred, out_dir, title=f"{video.name} ({spec.name})", smooth_windows=smooth)
            n_tracks = int((pred.table["track_id"] >= 0).any() and pred.table["track_id"].nunique())
            n_face = int((pred.table["predicted"] != "").sum())
            console.print(f"{len(pred.table)} rows ({n_face} with a face, {n_tracks} face track(s)) into {out_dir}:")
            _warn_no_face(video, n_face)
        else:
            ev = pb.predict_images(images, scorer) if images else pb.predict_dataset(dataset, root, scorer)
            paths = pb.write_evaluation(ev, out_dir, title=f"{stem} ({spec.name})")
            _print_evaluation(ev, out_dir)
    except (PredictError, ItemError, ModelUnavailableError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for path in paths:
        console.print(f"  {path}")
    if debug_crops:
        console.print(f"aligned crops: {debug_crops}")


def _warn_no_face(video: Path, n_face: int) -> None:
    if n_face == 0:
        console.print(f"[yellow]warning:[/yellow] {video}: no face found in any sampled frame; every row is a "
                      "no-face row with empty probabilities")


def _print_evaluation(ev, out_dir: Path) -> None:
    n_face = int((ev.table["predicted"] != "").sum())
    console.print(f"{len(ev.table)} items ({n_face} with a face) scored into {out_dir}:")
    if ev.metrics is None:
        console.print("no class-named sub-folders: no accuracy (name folders happy/, sad/ ... to get one)")
        return
    m = ev.metrics
    console.print(f"accuracy {m.accuracy:.1%}  UAR {m.uar:.1%}  ({m.n_scored} of {m.n_items} labelled items "
                  "had a face)")
    if ev.groups is not None:
        for row in ev.groups.itertuples():
            acc = "-" if row.n_scored == 0 else f"{row.accuracy:.1%}"
            cls = row.true_class if isinstance(row.true_class, str) else "(no class: not scored)"
            console.print(f"  {row.folder}/ -> {cls}: {acc} of {row.n_scored}")

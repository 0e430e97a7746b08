"""`pipeline predict`: apply a face-only model from a fuse run to a video (thin layer over pipelines.predict)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.logs import console


def predict_command(
    video: Annotated[Path, typer.Option("--video", help="Video file to score (any format PyAV decodes).")],
    model: Annotated[Path, typer.Option("--model", help="Results directory of a `pipeline fuse --strategy face` run.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: MODEL/predict/VIDEO_STEM).")] = None,
    gpu: Annotated[int, typer.Option("--gpu", help="GPU index (cuda:N when present, else the CPU); -1 = CPU.")] = 0,
    backbone: Annotated[str | None, typer.Option("--backbone", help="Override the backbone recorded in the model "
                                                 "(it must give the same embedding dimension).")] = None,
    smooth: Annotated[int, typer.Option("--smooth", help="Windows in the timeline's moving average.")] = 3,
) -> None:
    """Score a video with a face-only fuse model: per-window class probabilities as CSV, plus timeline,
    distribution and heatmap PNGs."""
    from extract.base import ItemError
    from extract.devices import resolve_device
    from pipelines.predict import PredictError, predict_video, write_prediction

    device = resolve_device(gpu)
    try:
        pred = predict_video(video, model, device=str(device), backbone=backbone)
    except (PredictError, ItemError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    out_dir = out or Path(model) / "predict" / Path(video).stem
    paths = write_prediction(pred, out_dir, title=Path(video).name, smooth_windows=smooth)
    n_face = int((pred.table["predicted"] != "").sum())
    console.print(f"{len(pred.table)} windows ({n_face} with a face) scored into {out_dir}:")
    for path in paths:
        console.print(f"  {path}")

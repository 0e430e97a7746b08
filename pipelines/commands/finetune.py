"""``pipeline finetune``: train a backbone on a crop store under a leak-proof protocol (thin layer over fuse.finetune)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from fuse.config import PROTOCOL_NAMES
from fuse.finetune.config import FINETUNE_BACKBONE_NAMES
from pipelines.logs import console

log = logging.getLogger(__name__)


def _config(**kw: object) -> object:
    """A FinetuneConfig from the command's options (lazy import: torch loads only when the command runs)."""
    from fuse.finetune.config import FinetuneConfig

    return FinetuneConfig(**kw)  # type: ignore[arg-type]


def finetune_command(
    store: Annotated[Path, typer.Option("--store", help="A face_crops store (`pipeline extract --modality "
                                        "face_crops`). Required.")],
    backbone: Annotated[str, typer.Option("--backbone", "-b", help=f"{', '.join(FINETUNE_BACKBONE_NAMES)}, "
                                          "hf:ORG/NAME or local:/path.")] = "tiny-vit",
    weights: Annotated[str, typer.Option("--weights", help="torchvision: a .pth/.safetensors file, auto (the torch "
                                         "hub cache) or none (random init).")] = "auto",
    frozen_layers: Annotated[int, typer.Option("--frozen-layers", help="Freeze the stem and the first N blocks "
                                               "(-1 = the whole backbone).")] = 0,
    target: Annotated[str, typer.Option("--target", "-t", help="Label to predict.")] = "emotion",
    protocol: Annotated[str, typer.Option("--protocol", "-p", help=f"{', '.join(PROTOCOL_NAMES)} (kfold: by "
                                          "trial).")] = "loso",
    k: Annotated[int, typer.Option("--k", help="kfold: folds.")] = 5,
    frames_per_item: Annotated[int, typer.Option("--frames-per-item", help="At most N evenly spaced crops per "
                                                 "item (0 = all; DFEW seed: 16).")] = 0,
    epochs: Annotated[int, typer.Option("--epochs")] = 20,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    lr_backbone: Annotated[float, typer.Option("--lr-backbone", help="Learning rate of the backbone.")] = 1e-4,
    lr_head: Annotated[float, typer.Option("--lr-head", help="Learning rate of the head.")] = 1e-3,
    loss: Annotated[str, typer.Option("--loss", help="ce, weighted-ce (inverse-frequency class weights) or "
                                      "focal.")] = "weighted-ce",
    gamma: Annotated[float, typer.Option("--gamma", help="Focal loss gamma.")] = 2.0,
    weighted_sampler: Annotated[bool, typer.Option("--weighted-sampler", help="Draw classes equally often.")] = False,
    mixup: Annotated[float, typer.Option("--mixup", help="Mixup alpha (0 = off).")] = 0.0,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No on-device augmentation.")] = False,
    no_amp: Annotated[bool, typer.Option("--no-amp", help="No mixed precision (AMP is used on CUDA only).")] = False,
    patience: Annotated[int, typer.Option("--patience", help="Early stopping patience (epochs) on the inner "
                                          "split grouped by trial.")] = 5,
    lr_patience: Annotated[int, typer.Option("--lr-patience", help="ReduceLROnPlateau patience.")] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory this command writes: the run's results "
                                             "directory (default results/finetune-<backbone>-<target>-<protocol>); "
                                             "an existing one is refused unless --overwrite. Checkpoints go to "
                                             "OUT.checkpoints (a re-run resumes from them).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing results directory.")] = False,
) -> None:
    """Fine-tune a backbone on cached face crops: per-split training, frame- and clip-level metrics, resumable
    safetensors checkpoints, and models/final usable as a backbone."""
    if loss not in ("ce", "weighted-ce", "focal"):
        console.print(f"[red]error:[/red] --loss {loss!r} is not one of ce, weighted-ce, focal")
        raise typer.Exit(2)
    log.info("finetune: %s on %s: loading the crops and the backbone weights; progress follows", backbone, store)
    from fuse.finetune.backbones import WeightsUnavailableError
    from fuse.finetune.data import CropStoreError
    from fuse.finetune.run import run_finetune
    from fuse.results import ResultsExistError

    try:
        cfg = _config(store=str(store), backbone=backbone, weights=weights, frozen_layers=frozen_layers,
                      target=target, protocol=protocol, k=k, seed=seed, frames_per_item=frames_per_item,
                      epochs=epochs, batch_size=batch_size, lr_backbone=lr_backbone, lr_head=lr_head,
                      loss="focal" if loss == "focal" else "ce", focal_gamma=gamma,
                      class_weighted=loss != "ce", sampler="weighted" if weighted_sampler else "shuffle",
                      mixup_alpha=mixup, augment=not no_augment, amp=not no_amp, patience=patience,
                      lr_patience=lr_patience, device=device, out=str(out) if out else "")
        result = run_finetune(cfg, overwrite=overwrite)  # type: ignore[arg-type]
    except (ResultsExistError, CropStoreError, WeightsUnavailableError, FileNotFoundError, KeyError,
            ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    clip = result.metrics["per_clip"]
    console.print(f"clip-level UAR {clip['model']['uar']:.3f} (majority baseline {clip['baseline']['uar']:.3f}, "
                  f"{clip['n_items']} clips) -> {result.out}")

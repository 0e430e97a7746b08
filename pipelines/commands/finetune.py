"""``pipeline finetune``: train a backbone on a crop store under a leak-proof protocol (thin layer over fuse.finetune)."""

from __future__ import annotations

import logging
import operator
from pathlib import Path
from typing import Any

import typer

from fuse.config import PROTOCOL_NAMES
from fuse.finetune.config import FINETUNE_BACKBONE_NAMES
from pipelines.commands.options import REQUIRED, Opt, build_overrides, with_options
from pipelines.logs import console

log = logging.getLogger(__name__)


def _config(**kw: object) -> object:
    """A FinetuneConfig from the command's options (lazy import: torch loads only when the command runs)."""
    from fuse.finetune.config import FinetuneConfig

    return FinetuneConfig(**kw)  # type: ignore[arg-type]


def _loss_name(loss: str) -> str:
    """--loss: focal, or cross-entropy for ce and weighted-ce."""
    return "focal" if loss == "focal" else "ce"


def _class_weighted(loss: str) -> bool:
    """--loss: inverse-frequency class weights for weighted-ce and focal."""
    return loss != "ce"


def _sampler(weighted: bool) -> str:
    """--weighted-sampler: draw classes equally often, else shuffle."""
    return "weighted" if weighted else "shuffle"


def _out(out: Path | None) -> str:
    """--out as a string ("" = the default results directory)."""
    return str(out) if out else ""


# every option once: its typer declaration and the FinetuneConfig field(s) it sets (cli_only: used by the command)
FINETUNE_OPTIONS = [
    Opt("store", Path, typer.Option("--store",
        help="A face_crops store (`pipeline extract --modality "
        "face_crops`). Required."), REQUIRED, convert=str),
    Opt("backbone", str, typer.Option("--backbone", "-b",
        help=f"{', '.join(FINETUNE_BACKBONE_NAMES)}, "
        "hf:ORG/NAME or local:/path."), "tiny-vit"),
    Opt("weights", str, typer.Option("--weights",
        help="torchvision: a .pth/.safetensors file, auto (the torch "
        "hub cache) or none (random init)."), "auto"),
    Opt("frozen_layers", int, typer.Option("--frozen-layers",
        help="Freeze the stem and the first N blocks "
        "(-1 = the whole backbone)."), 0),
    Opt("target", str, typer.Option("--target", "-t", help="Label to predict."), "emotion"),
    Opt("protocol", str, typer.Option("--protocol", "-p",
        help=f"{', '.join(PROTOCOL_NAMES)} (kfold: by "
        "trial)."), "loso"),
    Opt("k", int, typer.Option("--k", help="kfold: folds."), 5),
    Opt("frames_per_item", int, typer.Option("--frames-per-item",
        help="At most N evenly spaced crops per "
        "item (0 = all; DFEW seed: 16)."), 0),
    Opt("epochs", int, typer.Option("--epochs"), 20),
    Opt("batch_size", int, typer.Option("--batch-size"), 32),
    Opt("lr_backbone", float, typer.Option("--lr-backbone", help="Learning rate of the backbone."), 1e-4),
    Opt("lr_head", float, typer.Option("--lr-head", help="Learning rate of the head."), 1e-3),
    Opt("loss", str, typer.Option("--loss",
        help="ce, weighted-ce (inverse-frequency class weights) or "
        "focal."), "weighted-ce", convert=_loss_name, also={"class_weighted": _class_weighted}),
    Opt("gamma", float, typer.Option("--gamma", help="Focal loss gamma."), 2.0, to="focal_gamma"),
    Opt("weighted_sampler", bool, typer.Option("--weighted-sampler",
        help="Draw classes equally often."), False, to="sampler", convert=_sampler),
    Opt("mixup", float, typer.Option("--mixup", help="Mixup alpha (0 = off)."), 0.0, to="mixup_alpha"),
    Opt("no_augment", bool, typer.Option("--no-augment",
        help="No on-device augmentation."), False, to="augment", convert=operator.not_),
    Opt("no_amp", bool, typer.Option("--no-amp",
        help="No mixed precision (AMP is used on CUDA only)."), False, to="amp", convert=operator.not_),
    Opt("patience", int, typer.Option("--patience",
        help="Early stopping patience (epochs) on the inner "
        "split grouped by trial."), 5),
    Opt("lr_patience", int, typer.Option("--lr-patience", help="ReduceLROnPlateau patience."), 2),
    Opt("seed", int, typer.Option("--seed"), 0),
    Opt("device", str, typer.Option("--device", help="auto, cpu, cuda, cuda:N."), "auto"),
    Opt("out", Path | None, typer.Option("--out", "-o",
        help="Directory this command writes: the run's results "
        "directory (default results/finetune-<backbone>-<target>-<protocol>); "
        "an existing one is refused unless --overwrite. Checkpoints go to "
        "OUT.checkpoints (a re-run resumes from them)."), convert=_out),
    Opt("overwrite", bool, typer.Option("--overwrite",
        help="Replace an existing results directory."), False, cli_only=True),
]


@with_options(FINETUNE_OPTIONS)
def finetune_command(**opts: Any) -> None:
    """Fine-tune a backbone on cached face crops: per-split training, frame- and clip-level metrics, resumable
    safetensors checkpoints, and models/final usable as a backbone."""
    if opts["loss"] not in ("ce", "weighted-ce", "focal"):
        console.print(f"[red]error:[/red] --loss {opts['loss']!r} is not one of ce, weighted-ce, focal")
        raise typer.Exit(2)
    log.info("finetune: %s on %s: loading the crops and the backbone weights; progress follows",
             opts["backbone"], opts["store"])
    from fuse.errors import FuseInputError
    from fuse.finetune.backbones import WeightsUnavailableError
    from fuse.finetune.data import CropStoreError
    from fuse.finetune.run import run_finetune
    from fuse.results import ResultsExistError
    from registry import UnknownNameError

    try:
        cfg = _config(**build_overrides(FINETUNE_OPTIONS, opts))
        result = run_finetune(cfg, overwrite=opts["overwrite"])  # type: ignore[arg-type]
    except (ResultsExistError, CropStoreError, WeightsUnavailableError, FileNotFoundError, UnknownNameError,
            FuseInputError) as exc:  # bad input: one line; anything else is a bug and keeps its traceback
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    clip = result.metrics["per_clip"]
    console.print(f"clip-level UAR {clip['model']['uar']:.3f} (majority baseline {clip['baseline']['uar']:.3f}, "
                  f"{clip['n_items']} clips) -> {result.out}")

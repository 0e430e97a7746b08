"""``pipeline extract``: dataset -> feature stores (face embeddings and/or EEG features), resumable and parallel."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from extract.names import BACKBONE_NAMES, DETECTOR_NAMES
from pipelines.commands.options import Opt, build_overrides, given, negated, with_options

log = logging.getLogger(__name__)

FACE = "Face path"
EEG = "EEG path"
STORE = "Store"
RUN = "Running"
SELECT = "Selection"


# every option once: its typer declaration and the ExtractConfig field it sets (cli_only: used by the command itself)
EXTRACT_OPTIONS = [
    Opt("dataset", str | None, typer.Option("--dataset", "-d", rich_help_panel=SELECT,
        help="Dataset reader: deap, dfew, seedv, "
        "ravdess, fer2013, folder. Required (here or in --config).")),
    Opt("root", Path | None, typer.Option("--root", rich_help_panel=SELECT,
        help="The dataset's root folder. Required "
        "(here or in --config).")),
    Opt("modality", str | None, typer.Option("--modality", "-m", rich_help_panel=SELECT,
        help="face, face_crops (the aligned crops, for finetune), eeg, all (every modality the "
        "dataset offers), a precomputed kind (SEED-V eeg_de, eye), or a "
        "comma list. Default all.")),
    Opt("subjects", str | None, typer.Option("--subjects", rich_help_panel=SELECT,
        help="Only these subjects, e.g. s01,s02.")),
    Opt("limit", int | None, typer.Option("--limit", rich_help_panel=SELECT,
        help="Only the first N selected items.")),
    Opt("detector", str | None, typer.Option("--detector", rich_help_panel=FACE,
        help=f"Face detector: {', '.join(DETECTOR_NAMES)} "
        "(default mtcnn) or none (images are face crops already, e.g. "
        "FER2013).")),
    Opt("backbone", str | None, typer.Option("--backbone", rich_help_panel=FACE,
        help=f"Embedding backbone: {', '.join(BACKBONE_NAMES)}"
        ", hf:ORG/NAME or local:PATH (default clip-vit-l14).")),
    Opt("fps", float | None, typer.Option("--fps", rich_help_panel=FACE,
        help="Frames sampled per second of video (default 5; 0: every frame).")),
    Opt("crop_size", int | None, typer.Option("--crop-size", rich_help_panel=FACE,
        help="Aligned face crop size (default 224).")),
    Opt("on_corrupt", str | None, typer.Option("--on-corrupt", rich_help_panel=FACE,
        help="Corrupt/truncated video: fail the item "
        "(default) or keep the frames decoded before the error.")),
    Opt("eeg_window", float | None, typer.Option("--eeg-window", rich_help_panel=EEG,
        help="EEG window in seconds (default 1)."), to="eeg_window_s"),
    Opt("eeg_step", float | None, typer.Option("--eeg-step", rich_help_panel=EEG,
        help="EEG step in seconds (default: the "
        "window)."), to="eeg_step_s"),
    Opt("bands", str | None, typer.Option("--bands", rich_help_panel=EEG,
        help="EEG bands, names or lo-hi ranges, e.g. "
        "theta,alpha,beta or 4-8,8-14 (default: the extractor's five).")),
    Opt("eeg_feature", str | None, typer.Option("--eeg-feature", rich_help_panel=EEG,
        help="de (differential entropy, default) or "
        "psd (band power).")),
    Opt("store_format", str | None, typer.Option("--format", rich_help_panel=STORE,
        help="Store format: zarr (default) or hdf5.")),
    Opt("out", Path | None, typer.Option("--out", "-o", rich_help_panel=STORE,
        help="Directory this command writes: the cache "
        "folder (default cache/); stores go to OUT/DATASET/<kind>-<options>-"
        "<fingerprint>.zarr (pass OUT/DATASET to `pipeline fuse --cache`)."), to="out_dir"),
    Opt("dtype", str | None, typer.Option("--dtype", rich_help_panel=STORE,
        help="Stored embedding dtype: float16 (default) or "
        "float32.")),
    Opt("gpu", str | None, typer.Option("--gpu", rich_help_panel=RUN,
        help="GPU index (cuda:N when present, else the CPU, said "
        "once); -1 = CPU; 0,1 = one GPU per worker. Default 0.")),
    Opt("workers", int | None, typer.Option("--workers", "-w", rich_help_panel=RUN,
        help="Local worker processes (default 1 = "
        "in-process).")),
    Opt("scheduler", str | None, typer.Option("--scheduler", rich_help_panel=RUN,
        help="dask: local:N (a LocalCluster of N "
        "processes), local-threads:N, or tcp://HOST:PORT of a running "
        "scheduler (shared storage needed).")),
    Opt("detect_batch", int | None, typer.Option("--detect-batch", rich_help_panel=RUN,
        help="Frames per detector call.")),
    Opt("embed_batch", int | None, typer.Option("--embed-batch", rich_help_panel=RUN,
        help="Crops per backbone call.")),
    Opt("commit_every", float | None, typer.Option("--commit-every", rich_help_panel=RUN,
        help="Seconds between commits of each "
        "worker's buffered items (default 30; 0 = every item). "
        "A kill loses at most this much work."), to="commit_interval_s"),
    Opt("retry_failed", bool, typer.Option("--retry-failed", rich_help_panel=RUN,
        help="Redo the items recorded as failed (by "
        "default they are skipped and reported)."), False, convert=given),
    Opt("fail_fast", bool, typer.Option("--fail-fast", rich_help_panel=RUN,
        help="Stop at the first failed item (exit 1)."), False, convert=given),
    Opt("dry_run", bool, typer.Option("--dry-run", rich_help_panel=RUN,
        help="Print the plan (stores; items to do, done, failed) "
        "and exit without writing."), False, convert=given),
    Opt("no_progress", bool, typer.Option("--no-progress", rich_help_panel=RUN,
        help="No live progress bar."), False, to="progress", convert=negated),
    Opt("config", Path | None, typer.Option("--config", "-c",
        help="YAML/TOML file with ExtractConfig "
        "fields; explicit options win over it."), cli_only=True),
    Opt("set_", list[str] | None, typer.Option("--set",
        help="Any other field as KEY=VALUE, e.g. "
        "face_options.min_score=0.95 or eeg_options.baseline=none "
        "(repeatable)."), cli_only=True),
    Opt("plugin", list[str] | None, typer.Option("--plugin",
        help="Import this module first (it registers "
        "its own datasets/extractors); repeatable."), to="plugins", convert=given),
]


@with_options(EXTRACT_OPTIONS)
def extract_command(**opts: Any) -> None:
    """Extract features of a dataset into stores: face embeddings and/or EEG band features, one store per
    modality and config. Re-running continues where it stopped; see docs/extract.md."""
    log.info("extract: %s at %s: checking options, listing items, loading models; progress follows",
             opts["dataset"] or "(dataset from --config)", opts["root"] or "(root from --config)")
    from extract.datasets.base import DatasetError
    from pipelines.config import ConfigError, merge, parse_overrides
    from pipelines.jobs.config import load_extract_config
    from pipelines.jobs.extract import run_extract
    from registry import UnknownNameError
    from store.errors import StoreError

    overrides = build_overrides(EXTRACT_OPTIONS, opts)
    # One-line errors: bad options, bad dataset input, unknown names, store refusals (fingerprint mismatch), model
    # weights that are not on this machine (ModelUnavailableError, WeightsNotFoundError are FileNotFoundErrors).
    errors = (ConfigError, DatasetError, UnknownNameError, StoreError, FileNotFoundError)
    try:
        if opts["set_"]:
            overrides = merge(parse_overrides(opts["set_"]), overrides)
        result = run_extract(load_extract_config(opts["config"], overrides))
    except errors as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from exc
    if result.exit_code:
        raise typer.Exit(result.exit_code)

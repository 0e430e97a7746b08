"""``pipeline extract``: dataset -> feature stores (face embeddings and/or EEG features), resumable and parallel."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from extract.names import BACKBONE_NAMES, DETECTOR_NAMES

log = logging.getLogger(__name__)

FACE = "Face path"
EEG = "EEG path"
STORE = "Store"
RUN = "Running"
SELECT = "Selection"


def extract_command(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset reader: deap, dfew, seedv, "
                                                "ravdess, fer2013, folder. Required (here or in --config).",
                                                rich_help_panel=SELECT)] = None,
    root: Annotated[Path | None, typer.Option("--root", help="The dataset's root folder. Required "
                                              "(here or in --config).",
                                              rich_help_panel=SELECT)] = None,
    modality: Annotated[str | None, typer.Option("--modality", "-m", help="face, face_crops (the aligned crops, for finetune), eeg, all (every modality the "
                                                 "dataset offers), a precomputed kind (SEED-V eeg_de, eye), or a "
                                                 "comma list. Default all.", rich_help_panel=SELECT)] = None,
    subjects: Annotated[str | None, typer.Option("--subjects", help="Only these subjects, e.g. s01,s02.",
                                                 rich_help_panel=SELECT)] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N selected items.",
                                              rich_help_panel=SELECT)] = None,
    detector: Annotated[str | None, typer.Option("--detector", help=f"Face detector: {', '.join(DETECTOR_NAMES)} "
                                                 "(default mtcnn) or none (images are face crops already, e.g. "
                                                 "FER2013).", rich_help_panel=FACE)] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", help=f"Embedding backbone: {', '.join(BACKBONE_NAMES)}"
                                                 ", hf:ORG/NAME or local:PATH (default clip-vit-l14).",
                                                 rich_help_panel=FACE)] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Frames sampled per second of video (default 5; 0: every frame).",
                                              rich_help_panel=FACE)] = None,
    crop_size: Annotated[int | None, typer.Option("--crop-size", help="Aligned face crop size (default 224).",
                                                  rich_help_panel=FACE)] = None,
    on_corrupt: Annotated[str | None, typer.Option("--on-corrupt", help="Corrupt/truncated video: fail the item "
                                                   "(default) or keep the frames decoded before the error.",
                                                   rich_help_panel=FACE)] = None,
    eeg_window: Annotated[float | None, typer.Option("--eeg-window", help="EEG window in seconds (default 1).",
                                                     rich_help_panel=EEG)] = None,
    eeg_step: Annotated[float | None, typer.Option("--eeg-step", help="EEG step in seconds (default: the "
                                                   "window).", rich_help_panel=EEG)] = None,
    bands: Annotated[str | None, typer.Option("--bands", help="EEG bands, names or lo-hi ranges, e.g. "
                                              "theta,alpha,beta or 4-8,8-14 (default: the extractor's five).",
                                              rich_help_panel=EEG)] = None,
    eeg_feature: Annotated[str | None, typer.Option("--eeg-feature", help="de (differential entropy, default) or "
                                                    "psd (band power).", rich_help_panel=EEG)] = None,
    store_format: Annotated[str | None, typer.Option("--format", help="Store format: zarr (default) or hdf5.",
                                                     rich_help_panel=STORE)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory this command writes: the cache "
                                             "folder (default cache/); stores go to OUT/DATASET/<kind>-<options>-"
                                             "<fingerprint>.zarr (pass OUT/DATASET to `pipeline fuse --cache`).",
                                             rich_help_panel=STORE)] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="Stored embedding dtype: float16 (default) or "
                                              "float32.", rich_help_panel=STORE)] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU index (cuda:N when present, else the CPU, said "
                                            "once); -1 = CPU; 0,1 = one GPU per worker. Default 0.",
                                            rich_help_panel=RUN)] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Local worker processes (default 1 = "
                                                "in-process).", rich_help_panel=RUN)] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="dask: local:N (a LocalCluster of N "
                                                  "processes), local-threads:N, or tcp://HOST:PORT of a running "
                                                  "scheduler (shared storage needed).", rich_help_panel=RUN)] = None,
    detect_batch: Annotated[int | None, typer.Option("--detect-batch", help="Frames per detector call.",
                                                     rich_help_panel=RUN)] = None,
    embed_batch: Annotated[int | None, typer.Option("--embed-batch", help="Crops per backbone call.",
                                                    rich_help_panel=RUN)] = None,
    commit_every: Annotated[float | None, typer.Option("--commit-every", help="Seconds between commits of each "
                                                       "worker's buffered items (default 30; 0 = every item). "
                                                       "A kill loses at most this much work.",
                                                       rich_help_panel=RUN)] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Redo the items recorded as failed (by "
                                               "default they are skipped and reported).",
                                               rich_help_panel=RUN)] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed item (exit 1).",
                                            rich_help_panel=RUN)] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (stores; items to do, done, failed) "
                                          "and exit without writing.", rich_help_panel=RUN)] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No live progress bar.",
                                              rich_help_panel=RUN)] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML/TOML file with ExtractConfig "
                                                "fields; explicit options win over it.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any other field as KEY=VALUE, e.g. "
                                                   "face_options.min_score=0.95 or eeg_options.baseline=none "
                                                   "(repeatable).")] = None,
    plugin: Annotated[list[str] | None, typer.Option("--plugin", help="Import this module first (it registers "
                                                     "its own datasets/extractors); repeatable.")] = None,
) -> None:
    """Extract features of a dataset into stores: face embeddings and/or EEG band features, one store per
    modality and config. Re-running continues where it stopped; see docs/extract.md."""
    log.info("extract: %s at %s: checking options, listing items, loading models; progress follows",
             dataset or "(dataset from --config)", root or "(root from --config)")
    from extract.datasets.base import DatasetError
    from pipelines.config import ConfigError, merge, parse_overrides
    from pipelines.jobs.config import load_extract_config
    from pipelines.jobs.extract import run_extract
    from store.registry import UnknownNameError

    overrides: dict[str, Any] = {
        "dataset": dataset,
        "root": root,
        "modality": modality,
        "subjects": subjects,
        "limit": limit,
        "detector": detector,
        "backbone": backbone,
        "fps": fps,
        "crop_size": crop_size,
        "on_corrupt": on_corrupt,
        "eeg_window_s": eeg_window,
        "eeg_step_s": eeg_step,
        "bands": bands,
        "eeg_feature": eeg_feature,
        "store_format": store_format,
        "out_dir": out,
        "dtype": dtype,
        "gpu": gpu,
        "workers": workers,
        "scheduler": scheduler,
        "detect_batch": detect_batch,
        "embed_batch": embed_batch,
        "commit_interval_s": commit_every,
        "retry_failed": retry_failed or None,
        "fail_fast": fail_fast or None,
        "dry_run": dry_run or None,
        "progress": False if no_progress else None,
        "plugins": plugin or None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    from store.errors import StoreError

    # One-line errors: bad options, bad dataset input, unknown names, store refusals (fingerprint mismatch), model
    # weights that are not on this machine (ModelUnavailableError, WeightsNotFoundError are FileNotFoundErrors).
    errors = (ConfigError, DatasetError, UnknownNameError, StoreError, FileNotFoundError)
    try:
        if set_:
            overrides = merge(parse_overrides(set_), overrides)
        cfg = load_extract_config(config, overrides)
        result = run_extract(cfg)
    except errors as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from exc
    if result.exit_code:
        raise typer.Exit(result.exit_code)

"""``ExtractConfig``: every knob of ``pipeline extract`` in one frozen dataclass (defaults < --config FILE < CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.config import ConfigError, load_config

StoreFormat = Literal["zarr", "hdf5"]
OnCorrupt = Literal["fail", "keep"]


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract, how, where to, and how to run it.

    Feature-changing fields (detector, backbone, fps, crop size, EEG window/step/bands/feature, dtype, ...) end up in
    the store manifest and its fingerprint, so changing any of them writes a new store. Run fields (workers,
    scheduler, gpu, limit, subjects, retry/fail policy, batch sizes) do not change the features.
    """

    # -- what
    dataset: str = ""
    root: Path | None = None
    # "all" (every modality the reader offers), "face", "eeg", a reader-specific kind ("eeg_de", "eye"), or a
    # comma-separated list of them.
    modality: str = "all"
    reader_options: dict[str, Any] = field(default_factory=dict)  # passed to create_dataset(name, root, **options)
    limit: int | None = None  # the first N selected items (after --subjects), the same N for every modality
    subjects: tuple[str, ...] = ()  # e.g. ("s01", "s02"); empty = all

    # -- face path
    detector: str = "mtcnn"  # create_detector name, or "none" for datasets whose images are face crops already
    backbone: str = "clip-vit-l14"  # create_backbone name (clip-vit-l14, clip-vit-b32, tiny-clip, hf:..., local:...)
    fps: float = 5.0  # frames sampled per second of video (image datasets keep their own frames)
    crop_size: int = 224
    on_corrupt: OnCorrupt = "fail"  # corrupt/truncated video: fail the item (default) or keep the frames decoded
    face_options: dict[str, Any] = field(default_factory=dict)  # more FaceConfig fields (thresholds, margin, ...)

    # -- EEG path
    eeg_window_s: float = 1.0
    eeg_step_s: float | None = None  # None = the window (no overlap)
    bands: tuple[str, ...] = ()  # band names or "lo-hi" ranges; empty = the extractor's defaults
    eeg_feature: str = "de"  # "de" (differential entropy) or "psd" (band power)
    eeg_options: dict[str, Any] = field(default_factory=dict)  # more EegConfig fields (filter_mode, baseline, ...)

    # -- audio path
    audio_options: dict[str, Any] = field(default_factory=dict)  # AudioConfig fields (features, model, n_mels, ...)

    # -- where
    store_format: StoreFormat = "zarr"
    out_dir: Path = Path("cache")
    dtype: Literal["float16", "float32"] = "float16"  # stored embedding dtype

    # -- how to run
    gpu: tuple[int, ...] = (0,)  # cuda:N when present, else the CPU (said once); -1 = CPU; several = one per worker
    workers: int = 1  # >1: that many local worker processes (ProcessPoolExecutor)
    # "local:N" (dask LocalCluster of N processes), "local-threads:N" (N worker threads in this process) or
    # "tcp://HOST:PORT" (an existing dask cluster)
    scheduler: str | None = None
    detect_batch: int = 16  # frames per detector call
    embed_batch: int = 64  # crops per backbone call (independent of the detector batch)
    commit_interval_s: float = 30.0  # each writer commits its buffered items at least this often (and at the end)
    retry_failed: bool = False  # redo items recorded as failed (otherwise they are skipped and reported)
    fail_fast: bool = False  # stop at the first failed item
    dry_run: bool = False  # print the plan (to do / done / failed per store) and exit
    progress: bool = True  # the live progress bar (the summary is printed either way)
    plugins: tuple[str, ...] = ()  # extra modules to import first (they register their own datasets/extractors)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.eeg_window_s <= 0 or (self.eeg_step_s is not None and self.eeg_step_s <= 0):
            raise ValueError("eeg_window_s and eeg_step_s must be > 0")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.detect_batch < 1 or self.embed_batch < 1:
            raise ValueError("detect_batch and embed_batch must be >= 1")
        if self.scheduler and not (self.scheduler.startswith(("local:", "local-threads:")) or "://" in self.scheduler):
            raise ValueError(f"scheduler {self.scheduler!r}: expected local:N, local-threads:N or tcp://HOST:PORT")
        if not self.gpu:
            raise ValueError("gpu needs at least one value (-1 = CPU)")

    @property
    def step_s(self) -> float:
        return self.eeg_window_s if self.eeg_step_s is None else self.eeg_step_s

    def modalities(self) -> list[str]:
        """The requested modality names, in order, without duplicates (``all`` is resolved against the reader)."""
        out: list[str] = []
        for part in str(self.modality).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
        return out or ["all"]


def load_extract_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ExtractConfig:
    """Defaults < ``path`` (YAML/TOML) < ``overrides`` (explicit CLI options); checks that dataset and root are set."""
    cfg = load_config(ExtractConfig, path, overrides)
    if not cfg.dataset:
        raise ConfigError("no dataset: pass --dataset NAME (or set dataset: in --config)")
    if cfg.root is None:
        raise ConfigError("no dataset root: pass --root PATH (or set root: in --config)")
    return cfg

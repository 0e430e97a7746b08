"""``ExtractConfig``: every knob of ``pipeline extract`` in one frozen dataclass (defaults < --config FILE < CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.config import UNSET, ConfigError, Options, OptionSchema, load_config, options_schema

StoreFormat = Literal["zarr", "hdf5"]
OnCorrupt = Literal["fail", "keep"]


# Options that ExtractConfig's own fields set; the option dicts may not set them again.
FACE_SET_BY_FIELDS = ("detector", "backbone", "fps", "crop_size", "dtype", "detect_batch", "embed_batch",
                      "on_corrupt", "device", "detector_batch")
EEG_SET_BY_FIELDS = ("window_s", "step_s", "feature", "bands", "config")


def face_option_schema(values: Mapping[str, Any]) -> OptionSchema | None:
    """``face_options`` keys: the face extractor's keyword options and ``FaceConfig`` fields (with a detector) or
    only ``max_side`` (``detector: none``). Imported only when face options are given."""
    from extract.face.extractor import FaceEmbeddingExtractor

    if values.get("detector") == "none":
        return {"max_side": int | None, **options_schema(FaceEmbeddingExtractor, exclude=FACE_SET_BY_FIELDS)}
    from extract.face.pipeline import FaceConfig

    return options_schema(FaceEmbeddingExtractor, FaceConfig, exclude=FACE_SET_BY_FIELDS)


def eeg_option_schema(values: Mapping[str, Any]) -> OptionSchema | None:
    """``eeg_options`` keys: ``EegConfig`` fields other than those ``--eeg-window/--eeg-step/--eeg-feature/--bands``
    set."""
    from extract.eeg.extractor import EegConfig

    return options_schema(EegConfig, exclude=EEG_SET_BY_FIELDS)


def audio_option_schema(values: Mapping[str, Any]) -> OptionSchema | None:
    """``audio_options`` keys: ``AudioConfig`` fields (the audio extractor takes them as keyword options)."""
    from extract.audio.extractor import AudioConfig

    return options_schema(AudioConfig)


def reader_option_schema(values: Mapping[str, Any]) -> OptionSchema | None:
    """``reader_options`` keys: the keyword options of the chosen dataset reader (None when it is not registered
    yet, e.g. a plugin's: it is checked when the reader is built)."""
    from extract.datasets.base import DATASETS

    name = values.get("dataset")
    if not name or name not in DATASETS:
        return None
    return options_schema(DATASETS.get(name), exclude=("root",))


@dataclass(frozen=True, repr=False)
class FaceOptions(Options):
    """``face_options``: the face extractor's keyword options and ``FaceConfig`` fields that no ExtractConfig field
    sets; unset ones keep the extractor's defaults. Choices (``subject``, ``time_origin`` ...) are checked against
    the extractor's own types (``face_option_schema``); with ``detector: none`` only ``max_side`` and
    ``compute_dtype`` are allowed."""

    compute_dtype: str = UNSET  # auto, float32, float16, bfloat16
    detector_batch_cpu: int | None = UNSET
    detector_options: dict[str, Any] = UNSET  # e.g. {"weights": "...", "min_face_size": 40}
    margin: float = UNSET
    min_score: float = UNSET
    max_side: int | None = UNSET
    subject: str = UNSET  # track, largest, all
    track: dict[str, Any] = UNSET  # TrackConfig fields
    keyframe_s: float = UNSET
    detect_max_side: int | None = UNSET
    cut_threshold: float = UNSET
    time_origin: str = UNSET  # first_frame, stream_start, file_start
    warp_backend: str = UNSET  # auto, cv2, torch
    prefetch_batches: int = UNSET


@dataclass(frozen=True, repr=False)
class EegOptions(Options):
    """``eeg_options``: ``EegConfig`` fields that ``--eeg-window/--eeg-step/--eeg-feature/--bands`` do not set;
    unset ones keep the extractor's defaults (choices checked by ``eeg_option_schema``)."""

    filter_mode: str = UNSET  # trial-zero-phase, window-causal
    filter_order: int = UNSET
    baseline: str = UNSET  # subtract-mean, none
    include_baseline_rows: bool = UNSET
    peripheral: bool = UNSET
    welch_segment_s: float = UNSET
    sfreq_hz: float = UNSET
    channels: tuple[str, ...] = UNSET
    peripheral_channels: tuple[str, ...] = UNSET


@dataclass(frozen=True, repr=False)
class AudioOptions(Options):
    """``audio_options``: ``AudioConfig`` fields; unset ones keep the audio extractor's defaults (choices checked
    by ``audio_option_schema``)."""

    features: str = UNSET  # logmel, speech, logmel+speech
    sample_rate: int = UNSET
    window_s: float = UNSET
    step_s: float = UNSET
    n_fft: int = UNSET
    hop: int = UNSET
    n_mels: int = UNSET
    fmin: float = UNSET
    fmax: float = UNSET
    model: str = UNSET  # tiny-wav2vec2, a hub id (facebook/wav2vec2-base, ...) or local:<folder>


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
    # passed to create_dataset(name, root, **options); a dict, as each reader has its own keyword options
    reader_options: dict[str, Any] = field(default_factory=dict, metadata={"options": reader_option_schema})
    limit: int | None = None  # the first N selected items (after --subjects), the same N for every modality
    subjects: tuple[str, ...] = ()  # e.g. ("s01", "s02"); empty = all

    # -- face path
    detector: str = "mtcnn"  # create_detector name, or "none" for datasets whose images are face crops already
    backbone: str = "clip-vit-l14"  # create_backbone name (clip-vit-l14, clip-vit-b32, tiny-clip, hf:..., local:...)
    fps: float = 5.0  # frames sampled per second of video (0: every frame; image datasets keep their own frames)
    crop_size: int = 224
    on_corrupt: OnCorrupt = "fail"  # corrupt/truncated video: fail the item (default) or keep the frames decoded
    face_options: FaceOptions = field(default_factory=FaceOptions, metadata={"options": face_option_schema})

    # -- EEG path
    eeg_window_s: float = 1.0
    eeg_step_s: float | None = None  # None = the window (no overlap)
    bands: tuple[str, ...] = ()  # band names or "lo-hi" ranges; empty = the extractor's defaults
    eeg_feature: str = "de"  # "de" (differential entropy) or "psd" (band power)
    eeg_options: EegOptions = field(default_factory=EegOptions, metadata={"options": eeg_option_schema})

    # -- audio path
    audio_options: AudioOptions = field(default_factory=AudioOptions, metadata={"options": audio_option_schema})

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
    progress_interval_s: float = 5.0  # off a terminal (a log file, a pipe): one timestamped line this often
    plugins: tuple[str, ...] = ()  # extra modules to import first (they register their own datasets/extractors)

    def __post_init__(self) -> None:
        object.__setattr__(self, "face_options", FaceOptions.of(self.face_options))  # a mapping is accepted too
        object.__setattr__(self, "eeg_options", EegOptions.of(self.eeg_options))
        object.__setattr__(self, "audio_options", AudioOptions.of(self.audio_options))
        if self.fps < 0:
            raise ValueError(f"fps must be >= 0 (0: every frame), got {self.fps}")
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

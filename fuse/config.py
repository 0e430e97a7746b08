"""The typed configuration of one ``pipeline fuse`` run (defaults < ``--config FILE`` < CLI options).

The resolved config is written as ``config.yaml`` into every results directory; ``pipeline fuse --config
results/X/config.yaml`` repeats the run exactly.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fuse.errors import FuseInputError

SINGLE_MODALITY = ("eeg", "face", "eye", "audio", "peripheral")  # strategies that use one modality, named after it
# The built-in names of the fuse registries (fuse.registries), light for config checks and CLI help; each heavy
# module that registers them checks its registry against its tuple at import. Plug-ins register more.
STRATEGY_NAMES = (*SINGLE_MODALITY, "early", "late", "transformer")
PROTOCOL_NAMES = ("loso", "kfold", "dfew", "seedv-3fold", "cross-session", "fer2013")
CLASSIFIER_NAMES = ("logreg", "mlp", "transformer")


def known_names(kind: str) -> tuple[str, ...]:
    """The names ``kind`` (strategy, protocol, classifier) takes: the built-ins, then any a plug-in registered."""
    from fuse import registries  # the registries import store: not at fuse.config's import

    builtin, registry = {"strategy": (STRATEGY_NAMES, registries.STRATEGIES),
                         "protocol": (PROTOCOL_NAMES, registries.PROTOCOLS),
                         "classifier": (CLASSIFIER_NAMES, registries.CLASSIFIERS)}[kind]
    return (*builtin, *(name for name in registry.names() if name not in builtin))


@dataclass(frozen=True)
class LogRegConfig:
    """scikit-learn LogisticRegression (lbfgs)."""

    C: float = 1.0
    max_iter: int = 300
    class_weight: Literal["none", "balanced"] = "none"


@dataclass(frozen=True)
class MLPConfig:
    """One hidden layer MLP head (torch)."""

    hidden: int = 128
    dropout: float = 0.2


@dataclass(frozen=True)
class TransformerConfig:
    """The cross-modal transformer (torch): projections, positions, cross-attention both ways, a self-attention
    layer, masked pooling, a learned modality gate and an optional gradient-reversal subject adversary."""

    d_model: int = 64
    heads: int = 4
    dropout: float = 0.1
    context: int = 8  # window granularity: windows of one trial around each row (the row's own window included)
    max_len: int = 64  # trial granularity: at most this many windows of a trial (evenly subsampled)
    adversary_lambda: float = 0.0  # > 0 adds a subject classifier behind gradient reversal
    adversary_schedule: Literal["constant", "dann"] = "constant"  # dann: lambda * (2 / (1 + exp(-10 p)) - 1)
    feature_gate: bool = False  # per-feature sigmoid importance gate on each modality before cross-attention
    modality_layers: int = 0  # self-attention layers per modality (its own encoder stack) before cross-attention
    head: Literal["linear", "mlp"] = "linear"  # mlp: Linear -> GELU -> dropout -> Linear


@dataclass(frozen=True)
class TrainConfig:
    """The one training loop of every torch head (AdamW, early stopping on an inner split grouped by trial)."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 6
    val_fraction: float = 0.15  # of the training fold's trials, held out for early stopping
    class_weighted: bool = True  # class-weighted cross-entropy (weights from the training fold)
    loss: Literal["ce", "focal"] = "ce"  # focal: (1 - p_y)^focal_gamma * CE (the transformer adds its adversary)
    focal_gamma: float = 2.0
    sampler: Literal["shuffle", "weighted"] = "shuffle"  # weighted: each class drawn equally often (replacement)
    threads: int = 1  # torch CPU threads while training/predicting (small heads run best on one); 0 = torch default


@dataclass(frozen=True)
class LateConfig:
    """How late fusion combines per-modality probabilities."""

    combine: Literal["mean", "tuned", "stack"] = "mean"
    weights: tuple[float, ...] = ()  # mean: one weight per modality of the run, in table order; empty = equal
    inner_folds: int = 5  # stack: out-of-fold probabilities from this many folds grouped by trial


@dataclass(frozen=True)
class FuseConfig:
    """One fusion run: which stores, how rows are aligned, strategy, classifier, target, protocol, outputs."""

    stores: tuple[str, ...] = ()  # explicit store paths (one per modality)
    cache: str = ""  # or a folder whose stores are discovered by kind
    dataset: str = ""  # pick this dataset's stores when the cache holds several
    modalities: tuple[str, ...] = ()  # the modalities to use (eeg, face, eye, audio, peripheral, ...); empty = all
    strategy: str = "early"  # a registered strategy (STRATEGY_NAMES and plug-ins)
    classifier: str = "auto"  # a registered classifier or auto: transformer for the transformer strategy, logreg otherwise
    target: str = "valence"  # a label column without its "label_" prefix
    threshold: float = 5.0  # continuous ratings (DEAP valence/arousal/dominance/liking) are binarised here
    threshold_side: Literal[">=", ">"] = ">="
    protocol: str = "loso"  # a registered protocol (PROTOCOL_NAMES and plug-ins)
    k: int = 5  # kfold: folds per subject (grouped by trial)
    granularity: Literal["window", "trial"] = "window"
    window_s: float = 1.0  # face-only runs: fixed windows on the face clock; 0 = one row per stored frame
    require_all: bool = False  # use only rows that have every modality of the run, whatever the strategy
    require_both: bool = False  # old name of require_all (two modalities); either one turns it on
    max_yaw: float = 0.0  # > 0: face rows whose |q_yaw_deg| exceeds this (degrees) count as no-face rows
    max_pitch: float = 0.0  # > 0: the same for |q_pitch_deg|
    min_face_px: float = 0.0  # > 0: face rows whose face (sqrt box area, q_face_px) is smaller count as no-face rows
    min_sharpness: float = 0.0  # > 0: face rows whose crop sharpness (variance of Laplacian, q_blur) is lower
    max_align_residual: float = 0.0  # > 0: face rows whose q_align_residual (crop px) exceeds this
    pca_components: int = 0  # > 0: PCA after standardisation, fitted on training folds only
    seed: int = 0
    out: str = ""  # results directory; default results/<strategy>-<target>-<protocol>
    save_final: bool = True  # also train on all rows and save that model under models/final
    temporal: Literal["none", "gru", "transformer", "frames"] = "none"  # a clip-level head over the face frames
    temporal_frames: int = 16  # temporal heads: at most this many evenly spaced frames per clip
    test_stores: tuple[str, ...] = ()  # cross-dataset: train on `stores`/`cache`, test on these (see fuse.cross_dataset)
    label_map: str = "identity"  # cross-dataset: training class -> test class table (fer2013-ravdess, dfew7-2, identity)
    attention_items: tuple[str, ...] = ()  # transformer: items whose attention maps are drawn; empty = 2 test items
    track: Literal["none", "mlflow", "wandb"] = "none"  # log config, fingerprints, metrics and plots (see fuse.tracking)
    track_uri: str = ""  # mlflow: tracking URI (default file:<results parent>/mlruns); wandb: its offline dir
    jobs: int = 0  # logreg: folds trained at once (threads, one BLAS thread each); 0 = min(cores, 4). Torch: 1
    logreg: LogRegConfig = field(default_factory=LogRegConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    late: LateConfig = field(default_factory=LateConfig)
    # Written by a run into its config.yaml: role -> {"path", "fingerprint", "fields"} of each store it read (path
    # absolute, fields = the store manifest's feature-changing fields). A replay of that config refuses a store
    # whose fingerprint differs, naming it and the fields that differ. Empty = nothing to check (a new run).
    expect_stores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def quality_limits(self) -> dict[str, float]:
        """The face-quality filters this run applies: config field -> bound (see ``fuse.inputs.QUALITY_LIMITS``)."""
        names = ("max_yaw", "max_pitch", "min_face_px", "min_sharpness", "max_align_residual")
        return {name: float(getattr(self, name)) for name in names if getattr(self, name) > 0}

    def __post_init__(self) -> None:
        for kind, value, extra in (("strategy", self.strategy, ()), ("protocol", self.protocol, ()),
                                   ("classifier", self.classifier, ("auto",))):
            known = (*extra, *known_names(kind))
            if value not in known:
                raise FuseInputError(f"{kind} {value!r} is not one of {', '.join(map(repr, known))}")
        if self.k < 2:
            raise FuseInputError(f"k must be at least 2, got {self.k}")
        if self.window_s < 0:
            raise FuseInputError(f"window_s must be >= 0, got {self.window_s}")
        for name in ("max_yaw", "max_pitch"):
            if not 0 <= getattr(self, name) <= 90:
                raise FuseInputError(f"{name} must be in [0, 90] degrees (0: no filter), got {getattr(self, name)}")
        for name in ("min_face_px", "min_sharpness", "max_align_residual"):
            if getattr(self, name) < 0:
                raise FuseInputError(f"{name} must be >= 0 (0: no filter), got {getattr(self, name)}")
        if self.jobs < 0:
            raise FuseInputError(f"jobs must be >= 0, got {self.jobs}")
        if self.pca_components < 0:
            raise FuseInputError(f"pca_components must be >= 0, got {self.pca_components}")
        if self.classifier == "transformer" and self.strategy != "transformer":
            raise FuseInputError("classifier 'transformer' needs the transformer strategy (--strategy transformer)")
        if self.strategy == "transformer" and self.classifier not in ("auto", "transformer"):
            raise FuseInputError(f"the transformer strategy is its own classifier; got classifier {self.classifier!r}")
        if self.strategy in SINGLE_MODALITY and self.modalities and self.strategy not in self.modalities:
            raise FuseInputError(f"strategy {self.strategy!r} uses the {self.strategy} modality, which --modalities "
                             f"{','.join(self.modalities)} leaves out")

    @property
    def aligned_all(self) -> bool:
        """Whether only rows with every modality of the run are used (``require_all`` or its alias)."""
        return self.require_all or self.require_both

    @property
    def classifier_name(self) -> str:
        """The concrete classifier (``auto`` resolved)."""
        if self.classifier != "auto":
            return self.classifier
        return "transformer" if self.strategy == "transformer" else "logreg"

    def default_out(self) -> str:
        return f"results/{self.strategy}-{self.target}-{self.protocol}"


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (tuples as lists), ready for YAML/JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(cfg))


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a config dataclass from ``config_to_dict`` output (saved models carry their resolved config).
    Type checking of user input is ``pipelines.config``'s job; this only restores what this module wrote."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, tp = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(tp):
            value = config_from_dict(tp, value)
        elif typing.get_origin(tp) is tuple:
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)

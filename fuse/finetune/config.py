"""``FinetuneConfig``: every field of a fine-tuning run (typed, frozen; recorded in the results directory)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from fuse.errors import FuseInputError

# fields that do not change what is trained: a checkpoint made under other values of these resumes
RESUME_NEUTRAL = ("out", "checkpoint_dir", "device", "threads", "save_final")
# The built-in names of fuse.finetune.backbones.FINETUNE_BACKBONES, light for CLI help (a test checks them equal)
FINETUNE_BACKBONE_NAMES = ("tiny-vit", "tiny-clip", "tiny-resnet", "resnet50", "resnet101", "clip-vit-l14",
                           "clip-vit-b32", "clip-vit-b16", "vit-b16")


@dataclass(frozen=True)
class FinetuneConfig:
    """A backbone fine-tuned on a crop store under a leak-proof protocol."""

    store: str = ""  # a face_crops store (pipeline extract --modality face_crops)
    backbone: str = "tiny-vit"  # see fuse.finetune.backbones.list_finetune_backbones()
    weights: str = "auto"  # torchvision: a .pth/.safetensors file, "auto" (the torch hub cache) or "none" (random)
    frozen_layers: int = 0  # stem + the first N blocks frozen; -1 = the whole backbone (a head on frozen features)
    dropout: float = 0.1  # before the linear head
    # evaluation
    target: str = "emotion"
    threshold: float = 5.0
    threshold_side: Literal[">=", ">"] = ">="
    protocol: str = "loso"  # loso, kfold (by trial), dfew (fold column), fer2013, seedv-3fold, cross-session
    k: int = 5
    seed: int = 0
    frames_per_item: int = 0  # 0 = every face row; N = at most N evenly spaced rows per item (DFEW: 16)
    # optimisation
    epochs: int = 20
    batch_size: int = 32
    lr_backbone: float = 1e-4  # differential learning rates: backbone vs head
    lr_head: float = 1e-3
    weight_decay: float = 0.05
    loss: Literal["ce", "focal"] = "ce"
    focal_gamma: float = 2.0
    class_weighted: bool = True  # inverse-frequency class weights (from the training rows) in the loss
    sampler: Literal["shuffle", "weighted"] = "shuffle"  # weighted: classes drawn equally often (with replacement)
    mixup_alpha: float = 0.0  # 0 = off; else lambda ~ Beta(alpha, alpha)
    augment: bool = True  # on-device flips, crop jitter, brightness/contrast
    amp: bool = True  # mixed precision, on CUDA only
    lr_patience: int = 2  # ReduceLROnPlateau on the validation loss
    lr_factor: float = 0.5
    patience: int = 5  # early stopping on the inner validation split (grouped by trial)
    val_fraction: float = 0.15
    # run
    device: str = "auto"  # auto = cuda when available
    threads: int = 0  # torch CPU threads (0 = torch default)
    out: str = ""
    checkpoint_dir: str = ""  # default <out>.checkpoints
    save_final: bool = True  # also train on every row and save models/final (a backbone for a new store)

    def __post_init__(self) -> None:
        if self.loss not in ("ce", "focal"):
            raise FuseInputError(f"loss {self.loss!r} is not one of 'ce', 'focal'")
        if self.sampler not in ("shuffle", "weighted"):
            raise FuseInputError(f"sampler {self.sampler!r} is not one of 'shuffle', 'weighted'")
        if self.frozen_layers < -1:
            raise FuseInputError(f"frozen_layers must be >= -1 (-1 = whole backbone), got {self.frozen_layers}")
        if self.epochs < 1 or self.batch_size < 2:
            raise FuseInputError("epochs must be >= 1 and batch_size >= 2")

    def default_out(self) -> str:
        return f"results/finetune-{self.backbone.replace(':', '-').replace('/', '-')}-{self.target}-{self.protocol}"

    def resolved_out(self) -> str:
        return self.out or self.default_out()

    def resolved_checkpoint_dir(self) -> str:
        return self.checkpoint_dir or f"{self.resolved_out()}.checkpoints"

    def training_fingerprint(self) -> str:
        """Hash of the fields that change what is trained: a checkpoint resumes only under the same one."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in RESUME_NEUTRAL}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

"""``finetuned:PATH``: a model trained by ``pipeline finetune`` as a backbone (its pooled features) and a classifier.

PATH is a finetune results directory or its ``models/final`` folder: ``finetune.json`` (the architecture, the
preprocessing, the classes) and ``model.safetensors``. The network is rebuilt from the recorded architecture
(transformers ViT/CLIP or torchvision ResNet) and loaded from safetensors only; the preprocessing is the one
training used (bilinear resize with antialias to the model's size, /255, the recorded mean and std).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from extract.backbones.base import Backbone
from extract.backbones.hub import ModelUnavailableError, file_sha256
from extract.backbones.preprocess import PreprocessCfg

PREFIX = "finetuned:"
META, WEIGHTS = "finetune.json", "model.safetensors"


def model_folder(path: str | Path) -> Path:
    """The folder holding ``finetune.json`` + ``model.safetensors`` (a results dir's ``models/final`` or PATH)."""
    path = Path(path)
    for folder in (path / "models" / "final", path):
        if (folder / META).is_file() and (folder / WEIGHTS).is_file():
            return folder
    raise ModelUnavailableError(f"{path}: no {META} + {WEIGHTS} here or in models/final (not a `pipeline finetune` "
                                "results directory)")


def read_info(folder: Path) -> dict[str, Any]:
    info = json.loads((folder / META).read_text())
    if info.get("format") != "mmer-finetune":
        raise ModelUnavailableError(f"{folder / META}: format {info.get('format')!r} is not 'mmer-finetune'")
    return info


def _build(arch: dict[str, Any]) -> tuple[nn.Module, int]:
    """The randomly initialised network of ``arch`` and its feature width (as ``fuse.finetune`` builds it)."""
    family = arch["family"]
    if family == "vit":
        from transformers import ViTConfig, ViTModel

        config = ViTConfig.from_dict(arch["config"])
        return ViTModel(config, add_pooling_layer=False), int(config.hidden_size)
    if family == "clip":
        from transformers import CLIPVisionConfig, CLIPVisionModel

        config = CLIPVisionConfig.from_dict(arch["config"])
        return CLIPVisionModel(config), int(config.hidden_size)
    if family == "resnet":
        from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

        model = ResNet(Bottleneck if arch["block"] == "bottleneck" else BasicBlock, list(arch["layers"]))
        dim = int(model.fc.in_features)
        model.fc = nn.Identity()
        return model, dim
    raise ModelUnavailableError(f"unknown finetuned backbone family {family!r} (known: vit, clip, resnet)")


class FinetunedBackbone(Backbone):
    """``create_backbone("finetuned:RESULTS_DIR")``: the fine-tuned backbone's pooled features (``embed``) and its
    head's class probabilities (``predict_proba``, ``classify``)."""

    family = "finetuned"

    def __init__(self, path: str | Path, *, name: str = "", **kwargs: Any) -> None:
        from safetensors.torch import load_file

        self.folder = model_folder(path)
        self.info = read_info(self.folder)
        spec = self.info["backbone"]
        self.arch_family = spec["arch"]["family"]
        self.image_size = int(spec["image_size"])
        self.classes = tuple(self.info["classes"])
        mean, std = tuple(spec["mean"]), tuple(spec["std"])
        cfg = PreprocessCfg("exact", (self.image_size, self.image_size), None, "bilinear", 1 / 255, mean, std)
        super().__init__(name=name or f"{PREFIX}{self.folder}", preprocess_cfg=cfg, **kwargs)
        model, self._dim = _build(spec["arch"])
        head = nn.Linear(self._dim, len(self.classes))
        state = load_file(str(self.folder / WEIGHTS))
        body = {k[len("backbone.model."):]: v for k, v in state.items() if k.startswith("backbone.model.")}
        model.load_state_dict(body)
        head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
        self.model = model.eval().to(device=self.device, dtype=self.dtype).requires_grad_(False)
        self.head = head.eval().to(device=self.device, dtype=self.dtype).requires_grad_(False)
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self._with_probs = False

    @property
    def dim(self) -> int:
        return self._dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, H, W, 3)`` -> the pixels training saw (``fuse.finetune.augment.to_pixels`` unaugmented)."""
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return ((x - self._mean) / self._std).to(self.dtype)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixels -> pooled features ``(n, dim)`` (ViT: CLS of the last layernorm; CLIP: pooler; ResNet: GAP)."""
        if self.arch_family == "vit":
            return self.model(pixel_values=pixel_values, interpolate_pos_encoding=False).last_hidden_state[:, 0]
        if self.arch_family == "clip":
            return self.model(pixel_values=pixel_values).pooler_output
        return self.model(pixel_values)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features as they are; inside ``classify`` the head's probabilities appended."""
        if not self._with_probs:
            return features
        probs = torch.softmax(self.head(features).float(), dim=1).to(features.dtype)
        return torch.cat([features, probs], dim=1)

    def activation_bytes_per_image(self) -> int:
        return 3 * self.image_size * self.image_size * 4 * 64

    def classify(self, crops: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB crops -> (features ``(n, dim)``, probabilities ``(n, classes)``), one pass."""
        self._with_probs = True
        try:
            both = self.embed(crops) if len(crops) else np.zeros((0, self.dim + len(self.classes)), np.float32)
        finally:
            self._with_probs = False
        return both[:, : self.dim], both[:, self.dim :]

    def predict_proba(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 RGB crops -> probabilities ``(n, classes)`` in ``classes`` order."""
        return self.classify(crops)[1]

    @property
    def spec(self) -> dict[str, Any]:
        weights = self.folder / WEIGHTS
        return {
            "name": self.name, "family": self.family, "model_id": str(self.folder.resolve()), "revision": None,
            "weights_sha256": file_sha256(Path(weights)), "weights_files": [WEIGHTS], "dim": self.dim,
            "dtype": self.dtype_name, "arch": self.info["backbone"]["arch"]["family"],
            "output": "the fine-tuned backbone's pooled features (before its head)", "classes": list(self.classes),
            "trained_on": self.info.get("store_fingerprint"), "image_size": self.image_size,
            "preprocessing": self.preprocess_cfg.to_dict(),
        }

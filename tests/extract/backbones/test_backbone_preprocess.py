"""Our batched tensor preprocessing against transformers' own image processors (torchvision and PIL backends).

Stated tolerance (also in docs/backbones.md):
- an image that already has the model's size (224x224 crop, 224 model): <= 1e-6 on the normalised pixels;
- a resized image: <= 2 uint8 levels per pixel (2 / 255 / std on the normalised values), mean |diff| <= 3e-3;
  on the tiny twins' embeddings, max |diff| <= 5e-3 x max |embedding|.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from extract.backbones import PreprocessCfg, create_backbone, preprocess
from extract.backbones.preprocess import center_crop, resized_shape

EXACT_ATOL = 1e-6
LEVELS = 2  # uint8 levels
MEAN_ATOL = 3e-3
EMBED_REL = 5e-3

PROCESSORS = {
    "clip": [transformers.CLIPImageProcessor, getattr(transformers, "CLIPImageProcessorPil", None)],
    "vit": [transformers.ViTImageProcessor, getattr(transformers, "ViTImageProcessorPil", None)],
}
SHAPES = [(224, 224), (300, 200), (97, 333), (256, 256), (120, 160)]


@pytest.fixture(scope="module", autouse=True)
def _mmer_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMER_CACHE", str(tmp_path_factory.mktemp("mmer")))
        yield


def _images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Half noise (worst case for bicubic overshoot), half smooth patterns with mild noise (like photos)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(n - n // 2, h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = [
        np.stack([127 + 100 * np.sin(xx / (5.0 + i) + c) * np.cos(yy / (9.0 + i) - c) for c in range(3)], -1)
        + rng.normal(0, 8, (h, w, 3))
        for i in range(n // 2)
    ]
    return np.concatenate([noise, np.clip(smooth, 0, 255).astype(np.uint8).reshape(-1, h, w, 3)])


def _processors(family: str) -> list[type]:
    return [p for p in PROCESSORS[family] if p is not None]


@pytest.mark.parametrize("family", ["clip", "vit"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pixels_match_the_models_own_processor(family: str, shape: tuple[int, int]) -> None:
    images = _images(4, *shape, seed=sum(shape))
    for processor_cls in _processors(family):
        processor = processor_cls()
        cfg = PreprocessCfg.from_processor_dict(processor.to_dict(), default_to_square=family == "vit")
        ours = preprocess(torch.from_numpy(images), cfg).numpy()
        ref = np.asarray(processor(images=list(images), return_tensors="np")["pixel_values"], dtype=np.float32)
        assert ours.shape == ref.shape == (4, 3, 224, 224)
        diff = np.abs(ours - ref)
        if shape == (224, 224):
            assert diff.max() <= EXACT_ATOL, processor_cls.__name__
        else:
            per_channel = LEVELS / 255 / np.asarray(cfg.std, dtype=np.float32).reshape(1, 3, 1, 1) + 1e-6
            assert (diff <= per_channel).all(), (processor_cls.__name__, diff.max())
            assert diff.mean() <= MEAN_ATOL, (processor_cls.__name__, diff.mean())


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-vit"])
def test_embeddings_match_through_the_models_own_processor(name: str) -> None:
    backbone = create_backbone(name)
    family = backbone.family
    for shape in [(224, 224), (300, 200)]:
        images = _images(4, *shape, seed=7)
        ours = backbone.embed(images)
        for processor_cls in _processors(family):
            processor = processor_cls.from_pretrained(backbone.resolved.path)
            pixels = np.asarray(processor(images=list(images), return_tensors="np")["pixel_values"])
            with torch.inference_mode():
                ref = backbone.forward(torch.as_tensor(pixels, dtype=torch.float32)).numpy()
            err = np.abs(ours - ref).max()
            if shape == (224, 224):  # tiny-clip: no resize; tiny-vit: exact 2x downsample, no rounding ties lost
                assert err <= 1e-5, (processor_cls.__name__, err)
            else:
                assert err <= EMBED_REL * np.abs(ref).max(), (processor_cls.__name__, err)


def test_cfg_reads_processor_configs() -> None:
    old_clip = {"size": 224, "crop_size": 224, "do_center_crop": True, "resample": 3,
                "image_mean": [0.1, 0.2, 0.3], "image_std": [0.5, 0.5, 0.5]}
    cfg = PreprocessCfg.from_processor_dict(old_clip, default_to_square=False)
    assert (cfg.resize, cfg.size, cfg.crop, cfg.resample) == ("shortest_edge", 224, (224, 224), "bicubic")
    vit = PreprocessCfg.from_processor_dict({"size": 384, "resample": 2}, default_to_square=True)
    assert (vit.resize, vit.size, vit.crop, vit.output_size) == ("exact", (384, 384), None, (384, 384))
    with pytest.raises(ValueError, match="lanczos"):
        PreprocessCfg.from_processor_dict({"resample": 1}, default_to_square=True)
    assert PreprocessCfg.from_model_dir(Path("/nonexistent"), family="clip") == PreprocessCfg.family_default("clip")


def test_shapes_follow_transformers_rules() -> None:
    cfg = PreprocessCfg.family_default("clip")
    assert resized_shape(300, 200, cfg) == (336, 224)
    assert resized_shape(97, 333, cfg) == (224, int(224 * 333 / 97))
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    assert torch.equal(center_crop(x, (3, 4)), x[..., 1:4, 1:5])
    padded = center_crop(x, (7, 9))  # larger than the image: zero padding around it, as transformers does
    assert padded.shape == (2, 3, 7, 9) and torch.equal(padded[..., 1:6, 1:8], x) and padded[..., 0, :].abs().sum() == 0


def test_nearest_matches_pil() -> None:
    from PIL import Image

    from extract.backbones.preprocess import resize

    image = np.random.default_rng(0).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    for size in [(20, 31), (80, 90)]:
        pil = np.asarray(Image.fromarray(image).resize(size[::-1], Image.NEAREST), dtype=np.float32)
        ours = resize(torch.from_numpy(image).permute(2, 0, 1)[None].float(), size, "nearest")[0].permute(1, 2, 0)
        np.testing.assert_array_equal(ours.numpy(), pil)

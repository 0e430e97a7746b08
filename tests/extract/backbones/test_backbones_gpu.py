"""The same backbones on CUDA: fp32 / fp16 / bf16 against the CPU, the pinned-copy path, automatic batch size.
Skipped where no CUDA device is present (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extract.backbones import create_backbone

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def _mmer_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMER_CACHE", str(tmp_path_factory.mktemp("mmer")))
        yield


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-vit"])
@pytest.mark.parametrize(("dtype", "min_cos"), [("float32", 0.9999), ("bfloat16", 0.99), ("float16", 0.999)])
def test_cuda_matches_cpu(name: str, dtype: str, min_cos: float) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(37, 300, 200, 3), dtype=np.uint8)
    cpu = create_backbone(name).embed(images)
    gpu = create_backbone(name, device="cuda", dtype=dtype)
    assert gpu.batch_size >= 1 and gpu.spec["dtype"] == dtype
    out = gpu.embed(images)  # numpy in: pinned double-buffered copies
    assert out.dtype == np.float32 and out.shape == cpu.shape
    assert _cosine(out, cpu).min() > min_cos
    on_device = gpu.embed(torch.from_numpy(images).cuda())  # already on the device: no copy
    np.testing.assert_allclose(on_device, out, rtol=0, atol=1e-6 if dtype == "float32" else 1e-2)


def test_cuda_small_batches_equal_one_big_batch() -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(8, 224, 224, 3), dtype=np.uint8)
    big = create_backbone("tiny-clip", device="cuda", batch_size=8).embed(images)
    small = create_backbone("tiny-clip", device="cuda", batch_size=3).embed(images)
    np.testing.assert_allclose(small, big, rtol=0, atol=1e-4)

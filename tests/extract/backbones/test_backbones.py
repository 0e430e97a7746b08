"""Vision backbones: tiny twins through the real loading path, equality with transformers' own models, batch
invariance, offline failure, local:/hf: resolution, ``pipeline models ls``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from extract.backbones import (
    ModelUnavailableError,
    UnsupportedModelError,
    create_backbone,
    list_backbones,
    resolve_backbone,
    weights_available,
)
from extract.backbones.tiny import build_tiny, tiny_dir
from pipelines.cli import app
from store.schema import Manifest

EMBED_ATOL = 1e-5  # fp32, same pixel values: our forward vs transformers' reference model


@pytest.fixture(scope="module", autouse=True)
def isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny twins in a fresh MMER_CACHE, an empty Hugging Face cache, the hub offline."""
    root = tmp_path_factory.mktemp("caches")
    env = {"MMER_CACHE": root / "mmer", "HF_HUB_CACHE": root / "hf" / "hub", "HF_HOME": root / "hf"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, str(value))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield env


def _images(n: int, h: int = 224, w: int = 224, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def _reference(name: str, path: Path, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """transformers' own embeddings for the same pixel values: every reference class the family has."""
    from transformers import CLIPModel, CLIPVisionModelWithProjection, ViTModel

    with torch.inference_mode():
        if name == "tiny-clip":
            full = CLIPModel.from_pretrained(path, local_files_only=True).eval()
            features = full.get_image_features(pixel_values=pixel_values)
            features = getattr(features, "pooler_output", features)  # transformers 5 returns an output object
            vision = CLIPVisionModelWithProjection.from_pretrained(
                path, local_files_only=True, config=_clip_vision_config(path)
            ).eval()
            return [features, vision(pixel_values=pixel_values).image_embeds]
        model = ViTModel.from_pretrained(path, local_files_only=True).eval()
        return [model(pixel_values=pixel_values).last_hidden_state[:, 0]]


def _clip_vision_config(path: Path):  # noqa: ANN202
    from transformers import CLIPConfig

    config = CLIPConfig.from_pretrained(path)
    vision = config.vision_config
    vision.projection_dim = config.projection_dim
    return vision


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-vit"])
def test_tiny_twin_equals_transformers_reference_offline(name: str) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    backbone = create_backbone(name)
    images = _images(5)
    ours = backbone.embed(images)
    assert ours.shape == (5, backbone.dim) and ours.dtype == np.float32
    pixel_values = backbone.preprocess(torch.from_numpy(images))
    for ref in _reference(name, backbone.resolved.path, pixel_values):
        np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=EMBED_ATOL)
    # forward_features / forward_head split gives the same thing
    with torch.inference_mode():
        split = backbone.forward_head(backbone.forward_features(pixel_values)).numpy()
    np.testing.assert_allclose(ours, split, rtol=0, atol=EMBED_ATOL)


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-vit"])
def test_batch_invariance(name: str) -> None:
    images = _images(8, seed=1)
    batched = create_backbone(name, batch_size=8).embed(images)
    alone = create_backbone(name, batch_size=1).embed(images)
    np.testing.assert_allclose(alone, batched, rtol=0, atol=EMBED_ATOL)
    odd = create_backbone(name, batch_size=3).embed(images)  # 3 + 3 + 2
    np.testing.assert_allclose(odd, batched, rtol=0, atol=EMBED_ATOL)


def test_tiny_twins_are_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = create_backbone("tiny-vit").spec["weights_sha256"]
    monkeypatch.setenv("MMER_CACHE", str(tmp_path / "elsewhere"))
    rebuilt = build_tiny("tiny-vit")
    assert rebuilt == tiny_dir("tiny-vit") and str(tmp_path) in str(rebuilt)
    assert create_backbone("tiny-vit").spec["weights_sha256"] == first


def test_spec_is_a_manifest_model_entry() -> None:
    backbone = create_backbone("tiny-clip")
    spec = backbone.spec
    assert spec["dim"] == backbone.dim == 32
    assert spec["model_id"] == "tiny-clip" and spec["dtype"] == "float32"
    assert len(spec["weights_sha256"]) == 64
    assert spec["preprocessing"] == {
        "resize": "shortest_edge", "size": 224, "crop": [224, 224], "resample": "bicubic", "rescale": 1 / 255,
        "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
    }
    json.dumps(spec)
    manifest = Manifest(kind="face", dataset="x", extractor="face/tiny", extractor_version="1", dim=32, model=spec)
    assert manifest.fingerprint() == Manifest.from_dict(manifest.to_dict()).fingerprint()


def test_inputs_numpy_torch_and_empty() -> None:
    backbone = create_backbone("tiny-vit")
    images = _images(3, 150, 120)  # non-square, resized to 112x112
    np.testing.assert_array_equal(backbone.embed(images), backbone.embed(torch.from_numpy(images)))
    readonly = images.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(backbone.embed(readonly), backbone.embed(images))
    assert backbone.embed(np.zeros((0, 224, 224, 3), np.uint8)).shape == (0, 48)
    with pytest.raises(ValueError, match="uint8"):
        backbone.embed(images.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        backbone.embed(images[0])


def test_out_of_memory_halves_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = create_backbone("tiny-clip", batch_size=8)
    images = _images(8, seed=2)
    expected = backbone.embed(images)
    real_forward = backbone.forward
    seen: list[int] = []

    def forward(pixel_values: torch.Tensor) -> torch.Tensor:
        seen.append(pixel_values.shape[0])
        if pixel_values.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(pixel_values)

    monkeypatch.setattr(backbone, "forward", forward)
    np.testing.assert_allclose(backbone.embed(images), expected, rtol=0, atol=EMBED_ATOL)
    assert backbone.batch_size == 2 and seen[:3] == [8, 4, 2]


def test_bfloat16_on_cpu_is_close_to_float32() -> None:
    images = _images(4, seed=3)
    ref = create_backbone("tiny-clip").embed(images)
    bf16 = create_backbone("tiny-clip", dtype="bf16")
    assert bf16.spec["dtype"] == "bfloat16" and bf16.model.dtype == torch.bfloat16
    out = bf16.embed(images)
    assert out.dtype == np.float32
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99
    with pytest.raises(ValueError, match="unsupported dtype"):
        create_backbone("tiny-clip", dtype="int8")


# ---- resolution: offline failure, local:, hf: ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip-vit-l14", "vit-b16", "hf:someone/missing-model"])
def test_missing_weights_offline_fail_fast_in_one_line(name: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        create_backbone(name)
    elapsed = time.perf_counter() - start
    message = str(err.value)
    model_id = {"clip-vit-l14": "openai/clip-vit-large-patch14", "vit-b16": "google/vit-base-patch16-224-in21k"}.get(
        name, "someone/missing-model"
    )
    assert "\n" not in message
    assert f"model {model_id} is not in the Hugging Face cache" in message
    assert os.environ["HF_HUB_CACHE"] in message and "HF_HUB_OFFLINE=1" in message
    assert f"hf download {model_id}" in message and "local:/" in message
    assert elapsed < 5.0
    assert not weights_available(name)
    assert isinstance(err.value, FileNotFoundError)


def test_unreachable_hub_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens, refused at once
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match=r"the hub is unreachable \(127\.0\.0\.1"):
        create_backbone("clip-vit-b32")
    assert time.perf_counter() - start < 5.0


def test_local_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my-clip"
    shutil.copytree(build_tiny("tiny-clip"), folder)
    local = create_backbone(f"local:{folder}")
    tiny = create_backbone("tiny-clip")
    assert local.spec["model_id"] == "local:my-clip" and local.spec["revision"] is None
    assert local.spec["weights_sha256"] == tiny.spec["weights_sha256"]
    images = _images(2, seed=4)
    np.testing.assert_array_equal(local.embed(images), tiny.embed(images))
    assert weights_available(f"local:{folder}") and not weights_available(f"local:{tmp_path / 'none'}")
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        create_backbone(f"local:{tmp_path / 'none'}")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(UnsupportedModelError, match="model_type 'bert' is not supported"):
        create_backbone(f"local:{other}")


def _fake_hub_snapshot(hub: Path, repo: str, source: Path, commit: str) -> Path:
    """Lay ``source`` out as the Hugging Face cache does: blobs, snapshots/<commit>/, refs/main."""
    base = hub / f"models--{repo.replace('/', '--')}"
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copytree(source, snapshot, dirs_exist_ok=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_id_resolves_from_the_cache_offline() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    hub = Path(os.environ["HF_HUB_CACHE"])
    _fake_hub_snapshot(hub, "mmer-test/tiny-vit", build_tiny("tiny-vit"), commit)
    assert weights_available("hf:mmer-test/tiny-vit")
    assert resolve_backbone("hf:mmer-test/tiny-vit").revision == commit
    backbone = create_backbone(f"hf:mmer-test/tiny-vit@{commit}")
    assert backbone.family == "vit"
    assert backbone.spec["model_id"] == "mmer-test/tiny-vit" and backbone.spec["revision"] == commit
    images = _images(2, seed=5)
    np.testing.assert_array_equal(backbone.embed(images), create_backbone("tiny-vit").embed(images))


# ---- CLI ----------------------------------------------------------------------------------------------------


def test_models_ls_lists_backbones_and_detectors() -> None:
    result = CliRunner().invoke(app, ["models", "ls", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(list_backbones()) <= set(rows)
    assert rows["clip-vit-l14"] == {
        "kind": "backbone", "name": "clip-vit-l14", "model": "openai/clip-vit-large-patch14", "dim": 768,
        "weights": False,
    }
    assert rows["tiny-clip"]["weights"] is True and rows["tiny-vit"]["dim"] == 48
    if importlib.util.find_spec("extract.face.detectors") is not None:
        from extract.face.detectors import list_detectors

        assert {name for name, row in rows.items() if row["kind"] == "detector"} == set(list_detectors())
    table = CliRunner().invoke(app, ["models", "ls"])
    assert table.exit_code == 0 and "clip-vit-l14" in table.stdout and "weights present" in table.stdout

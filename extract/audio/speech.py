"""Speech-model embeddings (wav2vec 2.0 / HuBERT / WavLM through transformers): one hidden vector per model frame.

Names resolve like the vision backbones (:mod:`extract.backbones.hub`): ``tiny-wav2vec2`` (a 2-layer, 32-d twin
built in memory from a fixed seed, for tests), ``local:<folder>`` (a folder written by ``save_pretrained``), or a
hub id such as ``facebook/wav2vec2-base``, ``facebook/hubert-base-ls960``, ``microsoft/wavlm-base-plus`` or
``audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim`` (``hf:`` prefix and ``@revision`` optional), read from
the Hugging Face cache; a model that is not there and cannot be fetched now (offline) is a one-line
:class:`SpeechModelError` naming the model id and how to get it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from extract.backbones.hub import ModelUnavailableError, ResolvedModel, resolve_hub, resolve_local

TINY = "tiny-wav2vec2"
SPEECH_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")  # config.json model_type values read here


class SpeechModelError(ModelUnavailableError):
    """The speech model cannot be loaded; the message (one line) names it and says what to do."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON config file of a model folder; SpeechModelError naming the file when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SpeechModelError(f"{path}: unreadable model config ({type(exc).__name__}: {exc})") from None


def tiny_speech_model(family: str = "wav2vec2") -> Any:
    """The 2-layer, 32-d random twin of a wav2vec2 (or ``hubert``) model, the same weights on every call."""
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    config_cls, model_cls = {"wav2vec2": (Wav2Vec2Config, Wav2Vec2Model), "hubert": (HubertConfig, HubertModel)}[family]
    config = config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),
                        num_feat_extract_layers=3, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                        feat_extract_norm="group", do_stable_layer_norm=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return model_cls(config)


def resolve_speech_model(name: str) -> ResolvedModel | None:
    """The local folder of speech model ``name`` (None for the in-memory tiny twin); SpeechModelError if absent."""
    if name == TINY:
        return None
    target = name.removeprefix("hf:")
    try:
        if target.startswith("local:"):
            return resolve_local(target.removeprefix("local:"))
        repo, _, revision = target.partition("@")
        return resolve_hub(repo, revision or None)
    except ModelUnavailableError as exc:
        raise SpeechModelError(f"speech model {name!r}: {exc}") from None


def load_speech_model(name: str, resolved: ResolvedModel | None = None) -> Any:
    """The model named ``name`` (see the module docstring), in eval mode."""
    if name == TINY:
        return tiny_speech_model().eval()
    resolved = resolved or resolve_speech_model(name)
    assert resolved is not None
    family = read_json(resolved.path / "config.json").get("model_type", "")
    if family not in SPEECH_FAMILIES:
        raise SpeechModelError(f"speech model {name!r} ({resolved.path}): model_type {family!r} is not a speech "
                               f"model this extractor reads ({', '.join(SPEECH_FAMILIES)})")
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(resolved.path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise SpeechModelError(f"speech model {name!r} ({resolved.path}) does not load: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return model.eval()


def expected_sample_rate(resolved: ResolvedModel | None) -> int | None:
    """The sampling rate the model's feature extractor declares (``preprocessor_config.json``), if any."""
    if resolved is None or not (resolved.path / "preprocessor_config.json").is_file():
        return None
    rate = read_json(resolved.path / "preprocessor_config.json").get("sampling_rate")
    return int(rate) if rate else None


def model_frame_hop(model: Any, sample_rate: int) -> float:
    """Seconds between consecutive hidden vectors (the product of the feature encoder's strides)."""
    return float(np.prod(model.config.conv_stride)) / float(sample_rate)


def weights_sha256(model: Any) -> str:
    """sha256 (16 hex) of the model's parameters, in name order (the store fingerprint records it)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def embed(model: Any, samples: np.ndarray, sample_rate: int, device: Any = "cpu") -> np.ndarray:
    """(frames, hidden) last hidden states of zero-mean, unit-variance ``samples`` (16 kHz for real checkpoints)."""
    import torch

    x = np.asarray(samples, dtype=np.float32)
    x = (x - x.mean()) / max(float(x.std()), 1e-7)
    with torch.inference_mode():
        out = model.to(device)(torch.as_tensor(x, device=device)[None, :])
    return out.last_hidden_state[0].float().cpu().numpy()

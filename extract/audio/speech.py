"""Speech-model embeddings (wav2vec 2.0 / HuBERT through transformers): one hidden vector per model frame.

Names: ``tiny-wav2vec2`` (a 2-layer, 32-d twin built locally from a fixed seed, for tests), ``local:<folder>``
(a saved Hugging Face model folder), or a hub id such as ``facebook/wav2vec2-base``,
``facebook/hubert-base-ls960`` or ``audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim`` (``hf:`` prefix
optional), loaded from the local hub cache only: a model that is not there is an error saying how to get it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

TINY = "tiny-wav2vec2"


class SpeechModelError(RuntimeError):
    """The speech model cannot be loaded; the message says what to do."""


def _tiny_model() -> Any:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),
                            num_feat_extract_layers=3, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            feat_extract_norm="group", do_stable_layer_norm=False)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return Wav2Vec2Model(config)


def load_speech_model(name: str) -> Any:
    """The model named ``name`` (see the module docstring), in eval mode."""
    if name == TINY:
        return _tiny_model().eval()
    from transformers import AutoModel

    target = name.removeprefix("hf:")
    local = target.startswith("local:")
    target = target.removeprefix("local:")
    if local and not Path(target).is_dir():
        raise SpeechModelError(f"{target}: no such model folder (expected a saved wav2vec2/HuBERT folder)")
    try:
        model = AutoModel.from_pretrained(target, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise SpeechModelError(
            f"speech model {name!r} is not available offline ({type(exc).__name__}); download it once with "
            f"`huggingface-cli download {target}` or pass --set audio_model=local:/path/to/folder"
        ) from exc
    return model.eval()


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

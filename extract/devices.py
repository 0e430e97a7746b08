"""Device choice for ``--gpu N``: ``cuda:N`` when present, the CPU otherwise, said in one line."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(gpu: int | None) -> torch.device:
    """``gpu`` >= 0 asks for ``cuda:gpu``; -1 or None is the CPU. A missing GPU falls back to the CPU with a warning."""
    if gpu is None or gpu < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.warning("--gpu %d: CUDA is not available on this machine (torch %s); running on the CPU", gpu, torch.__version__)
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if gpu >= count:
        log.warning("--gpu %d: only %d CUDA device(s) present; running on the CPU", gpu, count)
        return torch.device("cpu")
    return torch.device(f"cuda:{gpu}")

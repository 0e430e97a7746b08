"""`pipeline info`: what this machine offers the pipeline (python, torch/CUDA, HF cache and hub, storage libs)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def hub_status(timeout_s: float = 1.5) -> str:
    """'offline mode (HF_HUB_OFFLINE=1)', 'reachable' or why not, decided within ``timeout_s``."""
    from extract.backbones.hub import hub_unreachable_reason, offline_mode

    var = offline_mode()
    if var:
        return f"offline mode ({var}=1)"
    reason = hub_unreachable_reason(timeout_s)
    return "reachable" if reason is None else f"{reason}; only cached or local models can be used"


def hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub always comes with transformers
        return str(Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")


def environment_report(check_hub: bool = True) -> dict[str, Any]:
    """Collect the report as a dict (the CLI prints it as a table; tests read it)."""
    import torch

    cuda = torch.cuda.is_available()
    gpus = [
        f"cuda:{i} {torch.cuda.get_device_name(i)} ({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
        for i in range(torch.cuda.device_count())
    ] if cuda else []
    report: dict[str, Any] = {
        "pipeline": _version("mmer-pipeline"),
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {platform.machine()})",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda or "none (CPU build)",
        "cuda_available": cuda,
        "gpus": gpus or ["none: extraction runs on the CPU (slower, same results)"],
        "torchvision": _version("torchvision"),
        "transformers": _version("transformers"),
        "hf_cache_dir": hf_cache_dir(),
        "hf_hub": hub_status() if check_hub else "not checked",
        "facenet-pytorch (mtcnn)": _version("facenet-pytorch"),
        "zarr": _version("zarr"),
        "h5py": _version("h5py"),
        "dask": _version("dask"),
        "distributed": _version("distributed"),
        "scikit-learn": _version("scikit-learn"),
        "av (PyAV)": _version("av"),
        "opencv": _version("opencv-python-headless"),
    }
    return report

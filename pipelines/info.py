"""`pipeline info`: what this machine offers the pipeline (python, torch/CUDA, HF cache and hub, storage libs)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
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


def torch_build() -> tuple[str, str]:
    """(torch version, its CUDA build) read from torch's ``version.py`` without importing torch (seconds)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return "not installed", "none"
    text = (Path(spec.origin).parent / "version.py").read_text() if (Path(spec.origin).parent / "version.py").is_file() else ""
    version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.M)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)", text, re.M)
    return (version.group(1) if version else _version("torch")), (cuda.group(1) if cuda else "none (CPU build)")


def nvidia_gpus(timeout_s: float = 3.0) -> list[str] | None:
    """GPUs the NVIDIA driver lists (``nvidia-smi``), or None when there is no driver tool."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [f"gpu {line.strip()}" for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []


def torch_cuda_report() -> dict[str, Any]:
    """What torch itself sees (imports torch: slow on a busy machine, hence ``pipeline info --cuda``)."""
    import torch

    cuda = torch.cuda.is_available()
    gpus = [
        f"cuda:{i} {torch.cuda.get_device_name(i)} ({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
        for i in range(torch.cuda.device_count())
    ] if cuda else []
    return {"cuda_available": cuda, "gpus": gpus or ["none: extraction runs on the CPU (slower, same results)"]}


def environment_report(check_hub: bool = True, check_cuda: bool = False) -> dict[str, Any]:
    """Collect the report as a dict (the CLI prints it; tests read it). Without ``check_cuda`` torch is not
    imported: its version and CUDA build come from its files, the GPUs from the driver (``nvidia-smi``)."""
    torch_version, cuda_build = torch_build()
    if check_cuda:
        cuda = torch_cuda_report()
    else:
        listed = nvidia_gpus()
        cuda = {"cuda_available": "not checked (pipeline info --cuda asks torch)",
                "gpus": listed if listed else ["none listed by nvidia-smi" if listed == [] else "no nvidia-smi on PATH"]}
    report: dict[str, Any] = {
        "pipeline": _version("mmer-pipeline"),
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {platform.machine()})",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch_version,
        "torch_cuda_build": cuda_build,
        **cuda,
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


def format_report(report: dict[str, Any]) -> str:
    """``key: value`` lines (list values indented below their key): greppable, and the same on any terminal."""
    width = max(len(k) for k in report)
    lines = []
    for key, value in report.items():
        values = value if isinstance(value, list) else [value]
        lines.append(f"{key:<{width}}  {values[0] if values else ''}")
        lines += [f"{'':<{width}}  {v}" for v in values[1:]]
    return "\n".join(lines) + "\n"

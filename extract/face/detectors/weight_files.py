"""Where detector weights live, without importing torch (``pipeline models ls`` answers in a second)."""

from __future__ import annotations

import os
from pathlib import Path

# RetinaFace backbone -> the checkpoint files users have (first = canonical), looked up in torch's hub cache.
RETINAFACE_FILES: dict[str, tuple[str, ...]] = {
    "resnet50": ("Resnet50_Final.pth", "detection_Resnet50_Final.pth", "retinaface_resnet50_2020-07-20-f168fae3c.zip"),
    "mobilenet0.25": ("mobilenet0.25_Final.pth", "detection_mobilenet0.25_Final.pth"),
}


def hub_checkpoints_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints`` as torch resolves it (TORCH_HOME, XDG_CACHE_HOME, ~/.cache/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def cached_file(files: tuple[str, ...]) -> Path | None:
    """The first of ``files`` present in the hub checkpoints folder, or None."""
    folder = hub_checkpoints_dir()
    return next((folder / name for name in files if (folder / name).is_file()), None)

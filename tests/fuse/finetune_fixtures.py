"""A tiny crop store with a planted signal: the label is a faint texture in each crop, the rest is noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from store import create_store
from store.schema import ItemRows, Manifest


def planted_crops(label: int, n: int, size: int, rng: np.random.Generator, strength: float = 60.0) -> np.ndarray:
    """``n`` uint8 crops: random noise, plus (class 1) horizontal or (class 0) vertical stripes of ``strength``."""
    base = rng.uniform(40, 215, size=(n, size, size, 3))
    stripes = (np.arange(size) // 2 % 2 * 2 - 1).astype(np.float64) * strength / 2
    pattern = stripes[:, None] if label == 1 else stripes[None, :]
    return np.clip(base + pattern[None, :, :, None], 0, 255).astype(np.uint8)


def write_crop_store(path: Path, *, subjects: int = 3, trials: int = 6, frames: int = 6, size: int = 32,
                     seed: int = 0, strength: float = 60.0) -> Path:
    """A ``face_crops`` store: ``subjects`` x ``trials`` items of ``frames`` crops, label ``emotion`` per trial."""
    rng = np.random.default_rng(seed)
    manifest = Manifest(kind="face_crops", dataset="fixture", extractor="face_crops/test", extractor_version="1",
                        dim=size * size * 3, dtype="uint8", config={"crop_size": size, "seed": seed},
                        label_names={"emotion": ["vertical", "horizontal"]})
    with create_store(path, manifest, durable=False) as writer:
        for s in range(subjects):
            for t in range(trials):
                label = t % 2
                crops = planted_crops(label, frames, size, rng, strength)
                found = np.ones(frames, bool)
                found[-1] = s == 0  # one no-face row per item of the other subjects: left out by the loader
                writer.write_item(ItemRows(
                    key=f"fixture/s{s}/t{t:02d}", embeddings=crops.reshape(frames, -1), subject=f"s{s}", session=1,
                    trial=f"{t:02d}", t_start_s=np.arange(frames) * 0.2, t_end_s=np.arange(1, frames + 1) * 0.2,
                    labels={"emotion": label}, quality={"face_found": found}))
    return path

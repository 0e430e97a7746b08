"""On-device image batches: uint8 crops -> resized, augmented, normalised pixels; mixup of a batch."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812


def to_pixels(crops: torch.Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...], *,
              augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 ``(n, H, W, 3)`` on the device -> float ``(n, 3, size, size)`` normalised; ``augment`` adds a random
    horizontal flip, a crop jitter (scale 0.85-1, shift up to 8 %) and brightness/contrast (+-20 %)."""
    x = crops.permute(0, 3, 1, 2).float().div_(255.0)
    n = x.shape[0]
    if augment and n:
        dev = x.device
        r = torch.rand((n, 6), generator=generator, device=dev)
        scale = 0.85 + 0.15 * r[:, 0]
        flip = torch.where(r[:, 1] < 0.5, -1.0, 1.0)
        theta = torch.zeros((n, 2, 3), device=dev)
        theta[:, 0, 0] = scale * flip
        theta[:, 1, 1] = scale
        theta[:, 0, 2] = 0.16 * (r[:, 2] - 0.5)
        theta[:, 1, 2] = 0.16 * (r[:, 3] - 0.5)
        grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        brightness = (0.8 + 0.4 * r[:, 4]).view(n, 1, 1, 1)
        contrast = (0.8 + 0.4 * r[:, 5]).view(n, 1, 1, 1)
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mu) * contrast + mu * brightness).clamp_(0.0, 1.0)
    elif x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def mixup(x: torch.Tensor, alpha: float, rng: np.random.Generator,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(lam * x + (1 - lam) * x[perm], perm, lam)`` with ``lam ~ Beta(alpha, alpha)`` (alpha <= 0: no mixing)."""
    n = x.shape[0]
    perm = torch.randperm(n, generator=generator, device=x.device)
    if alpha <= 0 or n < 2:
        return x, perm, 1.0
    lam = float(rng.beta(alpha, alpha))
    lam = max(lam, 1.0 - lam) if math.isfinite(lam) else 1.0
    return lam * x + (1.0 - lam) * x[perm], perm, lam

"""Five-point similarity alignment to the ArcFace template, batched.

The template is the standard ArcFace 112×112 five-point layout (image-left eye, image-right eye, nose,
image-left mouth corner, image-right mouth corner), scaled to the output size (224 by default). ``margin`` widens
the field of view: with margin m the crop covers (1 + m)× the template's field, centred on the same point.

The similarity transform (rotation, uniform scale, translation) from a face's landmarks to the template is the
least-squares solution of Umeyama (1991), batched over faces; it equals
``skimage.transform.SimilarityTransform.estimate`` on the same points. The warp is batched too: OpenCV
``warpAffine`` per crop on the CPU (faster there) or one ``grid_sample`` call on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from extract.face.detectors.base import normalize_landmark_order

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
WarpBackend = Literal["auto", "cv2", "torch"]


@dataclass(frozen=True)
class AlignConfig:
    """Output ``size`` (px, square), ``margin`` (extra field of view, fraction) and the warp ``backend``."""

    size: int = 224
    margin: float = 0.0
    backend: WarpBackend = "auto"

    def template(self) -> np.ndarray:
        return arcface_template(self.size, self.margin)

    def spec(self) -> dict[str, object]:
        """For the manifest: what changes the crops (the backend does not, beyond interpolation rounding)."""
        return {
            "template": "arcface-5pt-112",
            "template_points": self.template().round(4).tolist(),
            "size": self.size,
            "margin": self.margin,
            "transform": "similarity (umeyama least squares)",
            "interpolation": "bilinear, zero border",
        }


def arcface_template(size: int = 224, margin: float = 0.0) -> np.ndarray:
    """The five template points (5, 2) for a ``size``×``size`` crop with ``margin`` extra field of view."""
    if size <= 0 or margin <= -1:
        raise ValueError(f"need size > 0 and margin > -1, got size={size}, margin={margin}")
    unit = ARCFACE_TEMPLATE_112 / 112.0 - 0.5
    return (unit / (1.0 + margin) + 0.5) * size


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms mapping ``src`` points onto ``dst``, batched.

    ``src``: (n, k, 2) or (k, 2); ``dst``: (k, 2) or broadcastable to ``src``. Returns (n, 3, 3) (or (3, 3))
    homogeneous matrices, float64; rows of NaN where ``src`` is degenerate (all points coincide).
    """
    src = np.asarray(src, dtype=np.float64)
    single = src.ndim == 2
    if single:
        src = src[None]
    dst = np.broadcast_to(np.asarray(dst, dtype=np.float64), src.shape)
    k = src.shape[1]
    src_mean = src.mean(axis=1, keepdims=True)
    dst_mean = dst.mean(axis=1, keepdims=True)
    src_d = src - src_mean
    dst_d = dst - dst_mean
    cov = np.einsum("nki,nkj->nij", dst_d, src_d) / k  # (n, 2, 2)
    d = np.ones((src.shape[0], 2))
    d[np.linalg.det(cov) < 0, 1] = -1.0
    u, s, vt = np.linalg.svd(cov)
    rank = (s > s[:, :1] * 2 * np.finfo(np.float64).eps).sum(axis=1)  # as np.linalg.matrix_rank
    # Rank-deficient (collinear points): the rotation's reflection comes from the factors, as scikit-image does;
    # the scale keeps the original signs.
    d_rot = d.copy()
    deficient = rank == 1
    if np.any(deficient):
        proper = np.linalg.det(u) * np.linalg.det(vt) > 0
        d_rot[deficient & proper] = 1.0
        d_rot[deficient & ~proper, 1] = -1.0
    rot = u @ (d_rot[:, :, None] * vt)
    var = (src_d**2).sum(axis=(1, 2)) / k
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (s * d).sum(axis=1) / var
    out = np.zeros((src.shape[0], 3, 3))
    out[:, :2, :2] = rot * scale[:, None, None]
    out[:, :2, 2] = dst_mean[:, 0] - np.einsum("nij,nj->ni", out[:, :2, :2], src_mean[:, 0])
    out[:, 2, 2] = 1.0
    out[(var <= 1e-12) | (rank == 0)] = np.nan
    return out[0] if single else out


def estimate_alignment(landmarks: np.ndarray, size: int = 224, margin: float = 0.0) -> np.ndarray:
    """(n, 5, 2) landmarks (any detector's order) -> (n, 2, 3) affine matrices frame px -> crop px."""
    lm = normalize_landmark_order(np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2))
    return umeyama(lm, arcface_template(size, margin))[:, :2, :]


def alignment_residual(landmarks: np.ndarray, size: int = 224, margin: float = 0.0,
                       matrices: np.ndarray | None = None) -> np.ndarray:
    """RMS distance (n,) in output-crop px of the five landmarks (n, 5, 2), warped by their similarity fit
    (``matrices`` (n, 2, 3) from ``estimate_alignment``, computed when None), from the template points. 0 for a
    face shaped like the template; large for a profile or a non-face (a similarity cannot bend the layout);
    NaN where the fit is degenerate."""
    lm = normalize_landmark_order(np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2))
    mats = estimate_alignment(lm, size, margin) if matrices is None else np.asarray(matrices, np.float64)
    warped = np.einsum("nij,nkj->nki", mats[:, :, :2], lm) + mats[:, None, :, 2]
    err = np.linalg.norm(warped - arcface_template(size, margin), axis=2)
    return np.sqrt((err**2).mean(axis=1))


def _warp_cv2(
    images: Sequence[np.ndarray], frame_index: np.ndarray, mats: np.ndarray, size: int
) -> np.ndarray:
    import cv2

    out = np.zeros((len(mats), size, size, 3), np.uint8)
    for i, (fi, m) in enumerate(zip(frame_index, mats, strict=True)):
        cv2.warpAffine(
            np.ascontiguousarray(images[int(fi)]),
            m.astype(np.float64),
            (size, size),
            dst=out[i],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
    return out


def affine_to_theta(mats: np.ndarray, src_hw: tuple[int, int], size: int) -> np.ndarray:
    """Forward matrices (frame px -> crop px) to ``affine_grid`` thetas (crop normalised -> frame normalised),
    with ``align_corners=False`` (pixel centres at integer coordinates, as OpenCV)."""
    h, w = src_hw
    full = np.concatenate([mats, np.broadcast_to([[0.0, 0.0, 1.0]], (len(mats), 1, 3))], axis=1)
    inv = np.linalg.inv(full)  # crop px -> frame px
    from_dst_norm = np.array([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]])
    to_src_norm = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])
    return (to_src_norm @ inv @ from_dst_norm)[:, :2, :]


def _warp_torch(frames: torch.Tensor, frame_index: np.ndarray, mats: np.ndarray, size: int) -> torch.Tensor:
    h, w = int(frames.shape[1]), int(frames.shape[2])
    theta = torch.as_tensor(affine_to_theta(mats, (h, w), size), dtype=torch.float32, device=frames.device)
    idx = torch.as_tensor(frame_index, dtype=torch.long, device=frames.device)
    src = frames.index_select(0, idx).permute(0, 3, 1, 2).float()
    grid = F.affine_grid(theta, [len(mats), 3, size, size], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def warp_faces(
    frames: Sequence[np.ndarray] | np.ndarray | torch.Tensor,
    matrices: np.ndarray,
    frame_index: Sequence[int] | np.ndarray | None = None,
    size: int = 224,
    backend: WarpBackend = "auto",
) -> np.ndarray:
    """Warp one crop per matrix: crop i = ``frames[frame_index[i]]`` under ``matrices[i]`` (2, 3) -> (n, size,
    size, 3) uint8. ``auto``: ``grid_sample`` when ``frames`` is a CUDA tensor, OpenCV otherwise."""
    mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    n = len(mats)
    fidx = np.arange(n) if frame_index is None else np.asarray(frame_index, dtype=np.int64).reshape(-1)
    if n == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    if backend == "auto":
        backend = "torch" if isinstance(frames, torch.Tensor) and frames.device.type != "cpu" else "cv2"
    if backend == "torch":
        if not isinstance(frames, torch.Tensor):
            frames = torch.from_numpy(np.ascontiguousarray(np.stack(list(frames))))
        return _warp_torch(frames, fidx, mats, size).cpu().numpy()
    if isinstance(frames, torch.Tensor):
        frames = frames.cpu().numpy()
    return _warp_cv2(frames, fidx, mats, size)


def align_faces(
    frames: Sequence[np.ndarray] | np.ndarray | torch.Tensor,
    landmarks: np.ndarray,
    frame_index: Sequence[int] | np.ndarray | None = None,
    config: AlignConfig | None = None,
) -> np.ndarray:
    """Aligned crops (n, size, size, 3) uint8 for n faces given by their five landmarks (n, 5, 2) in frame px.

    ``frame_index[i]`` says which frame face i is in (default: face i in frame i). Faces whose landmarks are
    degenerate come back as zeros; callers should not ask for them (see ``valid_landmarks``).
    """
    cfg = config or AlignConfig()
    mats = estimate_alignment(landmarks, cfg.size, cfg.margin)
    bad = ~np.isfinite(mats).all(axis=(1, 2))
    mats[bad] = np.array([[1.0, 0, -1e6], [0, 1.0, -1e6]])  # warps to an all-zero crop
    return warp_faces(frames, mats, frame_index, cfg.size, cfg.backend)


def valid_landmarks(landmarks: np.ndarray, min_eye_distance_px: float = 1.0) -> np.ndarray:
    """(n,) bool: all finite and the eyes at least ``min_eye_distance_px`` apart."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    finite = np.isfinite(lm).all(axis=(1, 2))
    eye = np.linalg.norm(np.nan_to_num(lm[:, 0] - lm[:, 1]), axis=1)
    return finite & (eye >= min_eye_distance_px)

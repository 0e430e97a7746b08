"""The backbone contract and the batched embedding loop every backbone shares (CPU and CUDA, one code path).

A backbone maps uint8 RGB crops ``(n, H, W, 3)`` to float32 embeddings ``(n, dim)``:
``embed = forward_head(forward_features(preprocess(crops)))`` (timm's forward_features / forward_head split).
The loop here does the rest: batches sized to the device, pinned double-buffered host->device copies on CUDA,
``torch.inference_mode``, half precision by casting the weights, batch halving on CUDA out-of-memory, and an
optional ``torch.compile`` of the forward.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from extract.backbones.preprocess import PreprocessCfg, preprocess

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "float": "float32"}
CPU_BATCH_SIZE = 32
MAX_CUDA_BATCH_SIZE = 512


def resolve_dtype(dtype: str | torch.dtype) -> tuple[str, torch.dtype]:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16`` -> ``("bfloat16", torch.bfloat16)``."""
    if isinstance(dtype, torch.dtype):
        for name, value in DTYPES.items():
            if value == dtype:
                return name, value
        raise ValueError(f"unsupported dtype {dtype}; use one of {', '.join(DTYPES)}")
    name = _DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    if name not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {', '.join(DTYPES)} (or fp32, fp16, bf16)")
    return name, DTYPES[name]


def resolve_torch_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but CUDA is not available (torch {torch.__version__})")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


class Backbone(ABC):
    """A vision model that embeds image crops. Subclasses load the model and define features and head."""

    family: str = ""

    def __init__(
        self,
        *,
        name: str,
        preprocess_cfg: PreprocessCfg,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        batch_size: int | None = None,
        compile: bool = False,
    ) -> None:
        self.name = name
        self.preprocess_cfg = preprocess_cfg
        self.device = resolve_torch_device(device)
        self.dtype_name, self.dtype = resolve_dtype(dtype)
        if self.device.type == "cpu" and self.dtype == torch.float16:
            log.warning("%s: float16 on the CPU is slow and imprecise; bfloat16 or float32 are the CPU choices", name)
        self._requested_batch_size = batch_size
        self._batch_size: int | None = batch_size
        self.compile = compile
        self._compiled = None
        self._pinned: list[torch.Tensor | None] = [None, None]
        self._copied: list[torch.cuda.Event | None] = [None, None]

    # ---- what a subclass defines -----------------------------------------------------------------------------

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of one embedding."""

    @abstractmethod
    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised pixel values ``(n, 3, h, w)`` -> token features ``(n, tokens, width)``."""

    @abstractmethod
    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Token features -> embeddings ``(n, dim)``."""

    @abstractmethod
    def activation_bytes_per_image(self) -> int:
        """Rough peak activation memory of one image in the forward (sizes the CUDA batch)."""

    @property
    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Feature-changing facts for the store manifest: name, model id, revision, weights checksum, dim, dtype,
        preprocessing."""

    # ---- the shared loop -------------------------------------------------------------------------------------

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(pixel_values))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, H, W, 3)`` on the device -> pixel values in the model dtype."""
        return preprocess(images, self.preprocess_cfg, dtype=self.dtype)

    @property
    def batch_size(self) -> int:
        """Images per forward: as given, else 32 on the CPU, else from free CUDA memory; halves on CUDA OOM."""
        if self._batch_size is None:
            self._batch_size = self._auto_batch_size()
        return self._batch_size

    def _auto_batch_size(self) -> int:
        if self.device.type != "cuda":
            return CPU_BATCH_SIZE
        free, _total = torch.cuda.mem_get_info(self.device)
        per_image = max(1, 2 * self.activation_bytes_per_image())  # x2: allocator slack, preprocessing buffers
        size = int(0.5 * free // per_image)
        size = max(1, min(MAX_CUDA_BATCH_SIZE, 1 << max(0, size.bit_length() - 1)))  # a power of two
        log.info("%s: batch size %d (%.1f GiB free on %s)", self.name, size, free / 2**30, self.device)
        return size

    def embed(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 RGB crops ``(n, H, W, 3)`` (numpy, or a torch tensor on any device) -> float32 ``(n, dim)``."""
        images = _check_images(crops)
        n = int(images.shape[0])
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        forward = self.forward
        if self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(forward)
            forward = self._compiled
        outputs: list[torch.Tensor] = []
        start, slot = 0, 0
        with torch.inference_mode():
            while start < n:
                size = min(self.batch_size, n - start)
                try:
                    batch = self._to_device(images[start : start + size], slot)
                    outputs.append(forward(self.preprocess(batch)))
                except torch.cuda.OutOfMemoryError:
                    if size == 1:
                        raise
                    self._batch_size = max(1, size // 2)
                    log.warning("%s: out of memory at batch %d on %s; retrying with %d", self.name, size, self.device, self._batch_size)
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    continue
                start += size
                slot ^= 1
            out = torch.cat(outputs).float().cpu()  # the one device sync of the call
        return out.numpy()

    def _to_device(self, batch: np.ndarray | torch.Tensor, slot: int) -> torch.Tensor:
        """One batch onto the device. On CUDA a host batch goes through one of two reused pinned buffers, copied
        with non_blocking=True, so filling the next buffer overlaps the GPU work on this one."""
        if isinstance(batch, np.ndarray):
            if not batch.flags.writeable:
                batch = batch.copy()
            batch = torch.from_numpy(batch)
        if batch.device == self.device:
            return batch
        if self.device.type != "cuda" or batch.device.type != "cpu":
            return batch.to(self.device)
        buf = self._pinned[slot]
        if buf is None or buf.shape[1:] != batch.shape[1:] or buf.shape[0] < batch.shape[0]:
            buf = torch.empty((max(batch.shape[0], self.batch_size), *batch.shape[1:]), dtype=torch.uint8, pin_memory=True)
            self._pinned[slot] = buf
        elif self._copied[slot] is not None:
            self._copied[slot].synchronize()  # the copy out of this buffer two batches ago has finished
        staged = buf[: batch.shape[0]]
        staged.copy_(batch)
        on_device = staged.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        self._copied[slot] = event
        return on_device

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device}, dtype={self.dtype_name})"


def _check_images(crops: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    if isinstance(crops, (list, tuple)):
        crops = np.stack([np.asarray(c) for c in crops]) if len(crops) else np.zeros((0, 1, 1, 3), np.uint8)
    if not isinstance(crops, (np.ndarray, torch.Tensor)):
        raise TypeError(f"crops must be a uint8 numpy array or torch tensor (n, H, W, 3), got {type(crops).__name__}")
    dtype_ok = crops.dtype == (np.uint8 if isinstance(crops, np.ndarray) else torch.uint8)
    if not dtype_ok or crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be uint8 RGB (n, H, W, 3), got shape {tuple(crops.shape)} dtype {crops.dtype}")
    return crops

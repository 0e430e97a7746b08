"""RetinaFace (ResNet-50 and MobileNet-0.25 backbones), written here to load the public checkpoints.

The retinaface-pytorch package pins torch 1.9, so the network is implemented in this module with the module names
of the Pytorch_Retinaface project, which makes its checkpoints load as they are:

- ``Resnet50_Final.pth`` and ``mobilenet0.25_Final.pth`` (Pytorch_Retinaface; facexlib republishes the same files
  as ``detection_Resnet50_Final.pth`` / ``detection_mobilenet0.25_Final.pth``): keys ``body.*``, ``fpn.*``,
  ``ssh1.*``..``ssh3.*``, ``ClassHead.{0,1,2}.conv1x1.*``, ``BboxHead.*``, ``LandmarkHead.*``, sometimes behind a
  ``module.`` prefix (multi-GPU training). Inputs: BGR, minus the mean (104, 117, 123), no scaling.
- ``retinaface_resnet50_2020-07-20-f168fae3c.zip`` (the retinaface-pytorch release): a zip holding one state
  dict with the same key names (its ``RetinaFace`` module reuses them). Inputs: RGB / 255, ImageNet mean/std.

The preprocessing is chosen from the file name (``normalization="auto"``) or set explicitly. Box and landmark
decoding and NMS run on the whole batch at once (``torchvision.ops.batched_nms``), on the detector's device.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import batched_nms

from extract.face.detectors.base import Detections, FaceDetector, file_sha256, normalize_landmark_order
from extract.face.detectors.weight_files import RETINAFACE_FILES

Normalization = Literal["auto", "bgr_mean", "imagenet"]

MIN_SIZES: tuple[tuple[int, int], ...] = ((16, 32), (64, 128), (256, 512))
STEPS: tuple[int, ...] = (8, 16, 32)
VARIANCE: tuple[float, float] = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> backbone config, the files users have (first = canonical), and where they come from.
BACKBONES: dict[str, dict[str, Any]] = {
    "resnet50": {
        "return_layers": {"layer2": 1, "layer3": 2, "layer4": 3},
        "in_channel": 256,
        "out_channel": 256,
        "files": RETINAFACE_FILES["resnet50"],
    },
    "mobilenet0.25": {
        "return_layers": {"stage1": 1, "stage2": 2, "stage3": 3},
        "in_channel": 32,
        "out_channel": 64,
        "files": RETINAFACE_FILES["mobilenet0.25"],
    },
}
WEIGHTS_SOURCE = (
    "the Pytorch_Retinaface project's trained models (github.com/biubug6/Pytorch_Retinaface, README 'Training': "
    "Google Drive folder https://drive.google.com/open?id=1oZRSG0ZegbVkVwUd8wUIQx8W7yfZ_ki1), the facexlib "
    "v0.1.0 GitHub release (detection_*.pth), or for ResNet-50 the retinaface-pytorch 0.01 GitHub release zip"
)


class WeightsNotFoundError(FileNotFoundError):
    """RetinaFace weights are not on this machine; the message says which file, where to get it, where to put it."""


# --------------------------------------------------------------------------------------------------- network
def _conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.LeakyReLU(leaky, inplace=True)
    )


def _conv_bn_no_relu(inp: int, oup: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup))


def _conv_bn1x1(inp: int, oup: int, leaky: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.LeakyReLU(leaky, inplace=True)
    )


def _conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.LeakyReLU(leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(leaky, inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNet-0.25 as in Pytorch_Retinaface (stage1..stage3; the classifier is never used by the detector)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(256, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - only the stages are used
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(self.avg(x), 1))


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches concatenated."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        if out_channel % 4:
            raise ValueError("SSH out_channel must be a multiple of 4")
        leaky = 0.1 if out_channel <= 64 else 0.0
        self.conv3X3 = _conv_bn_no_relu(in_channel, out_channel // 2)
        self.conv5X5_1 = _conv_bn(in_channel, out_channel // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn_no_relu(out_channel // 4, out_channel // 4)
        self.conv7X7_2 = _conv_bn(out_channel // 4, out_channel // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn_no_relu(out_channel // 4, out_channel // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(self.conv7X7_2(c5_1))], dim=1)
        return F.relu(out)


class FPN(nn.Module):
    def __init__(self, in_channels_list: Sequence[int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = _conv_bn1x1(in_channels_list[0], out_channels, leaky=leaky)
        self.output2 = _conv_bn1x1(in_channels_list[1], out_channels, leaky=leaky)
        self.output3 = _conv_bn1x1(in_channels_list[2], out_channels, leaky=leaky)
        self.merge1 = _conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = _conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = list(inputs.values())
        out1, out2, out3 = self.output1(c3), self.output2(c4), self.output3(c5)
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[-2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[-2:], mode="nearest"))
        return [out1, out2, out3]


class _Head(nn.Module):
    """A 1x1 conv predicting ``values`` numbers per anchor, reshaped to (N, H*W*anchors, values)."""

    def __init__(self, in_channels: int, num_anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_channels, num_anchors * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """RetinaFace with Pytorch_Retinaface's module names. ``forward`` returns raw (loc, conf logits, landmarks):
    (N, P, 4), (N, P, 2), (N, P, 10) for the P prior boxes of ``prior_boxes(H, W)``."""

    def __init__(self, backbone: str = "resnet50", num_anchors: int = 2) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown RetinaFace backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        cfg = BACKBONES[backbone]
        self.backbone_name = backbone
        net = resnet50(weights=None) if backbone == "resnet50" else MobileNetV1()
        self.body = IntermediateLayerGetter(net, return_layers=cfg["return_layers"])
        c = cfg["in_channel"]
        out = cfg["out_channel"]
        self.fpn = FPN([c * 2, c * 4, c * 8], out)
        self.ssh1 = SSH(out, out)
        self.ssh2 = SSH(out, out)
        self.ssh3 = SSH(out, out)
        self.ClassHead = nn.ModuleList([_Head(out, num_anchors, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(out, num_anchors, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(out, num_anchors, 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p1, p2, p3 = self.fpn(self.body(x))
        feats = [self.ssh1(p1), self.ssh2(p2), self.ssh3(p3)]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], dim=1)
        landm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], dim=1)
        return loc, conf, landm


# --------------------------------------------------------------------------------------------- priors, decode
def prior_boxes(
    height: int,
    width: int,
    min_sizes: Sequence[Sequence[int]] = MIN_SIZES,
    steps: Sequence[int] = STEPS,
    clip: bool = False,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Anchors (P, 4) as (cx, cy, w, h) relative to the input size, in the network's output order:
    level by level, row by row, column by column, then each of the level's ``min_sizes``."""
    out = []
    for sizes, step in zip(min_sizes, steps, strict=True):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        cy = (torch.arange(fh, dtype=torch.float32, device=device) + 0.5) * step / height
        cx = (torch.arange(fw, dtype=torch.float32, device=device) + 0.5) * step / width
        gy, gx = torch.meshgrid(cy, cx, indexing="ij")  # (fh, fw)
        n_sizes = len(sizes)
        s_kx = torch.tensor([s / width for s in sizes], dtype=torch.float32, device=device)
        s_ky = torch.tensor([s / height for s in sizes], dtype=torch.float32, device=device)
        level = torch.stack(
            [
                gx[..., None].expand(fh, fw, n_sizes),
                gy[..., None].expand(fh, fw, n_sizes),
                s_kx.expand(fh, fw, n_sizes),
                s_ky.expand(fh, fw, n_sizes),
            ],
            dim=-1,
        )
        out.append(level.reshape(-1, 4))
    priors = torch.cat(out, dim=0)
    return priors.clamp_(0.0, 1.0) if clip else priors


def decode_boxes(
    loc: torch.Tensor, priors: torch.Tensor, variance: Sequence[float] = VARIANCE
) -> torch.Tensor:
    """(..., P, 4) offsets + (P, 4) priors -> (..., P, 4) boxes x1, y1, x2, y2 (relative units)."""
    centers = priors[..., :2] + loc[..., :2] * variance[0] * priors[..., 2:]
    sizes = priors[..., 2:] * torch.exp(loc[..., 2:] * variance[1])
    return torch.cat([centers - sizes / 2, centers + sizes / 2], dim=-1)


def decode_landmarks(
    pre: torch.Tensor, priors: torch.Tensor, variance: Sequence[float] = VARIANCE
) -> torch.Tensor:
    """(..., P, 10) offsets + (P, 4) priors -> (..., P, 5, 2) points (relative units)."""
    pts = pre.reshape(*pre.shape[:-1], 5, 2)
    return priors[..., None, :2] + pts * variance[0] * priors[..., None, 2:]


# ------------------------------------------------------------------------------------------------- weights
def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "model."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a RetinaFace checkpoint (a state dict, a ``{"state_dict": ...}`` dict, or a zip holding one such
    file) with ``torch.load(weights_only=True)``, prefixes ``module.`` / ``model.`` removed."""
    path = Path(path)
    obj: Any
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            entries = [i for i in zf.infolist() if not i.is_dir()]
            # A torch.save file is itself a zip with many entries; a release zip wraps exactly one file.
            if len(entries) == 1:
                obj = torch.load(io.BytesIO(zf.read(entries[0])), map_location="cpu", weights_only=True)
            else:
                obj = torch.load(path, map_location="cpu", weights_only=True)
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return _strip_prefixes(obj)


def load_retinaface_state(
    model: RetinaFace, state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load a Pytorch_Retinaface-layout state dict strictly (BatchNorm ``num_batches_tracked`` may be absent)."""
    state = _strip_prefixes(state)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        raise ValueError(
            f"{source}: not a RetinaFace-{model.backbone_name} checkpoint in the Pytorch_Retinaface layout: "
            f"{len(missing)} missing key(s) (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )


def find_weights(backbone: str, weights: str | Path | None = None) -> Path:
    """``weights`` if given, else the first known file name in ``torch.hub.get_dir()/checkpoints``."""
    files = BACKBONES[backbone]["files"]
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"RetinaFace weights file {path} not found; get {files[0]} from {WEIGHTS_SOURCE}"
            )
        return path
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in files:
        if (cache / name).is_file():
            return cache / name
    raise WeightsNotFoundError(
        f"RetinaFace-{backbone} weights not found: put {' or '.join(files)} into {cache} (or pass weights=PATH); "
        f"get it from {WEIGHTS_SOURCE}"
    )


def _auto_normalization(path: Path | None) -> Literal["bgr_mean", "imagenet"]:
    return "imagenet" if path is not None and path.name.startswith("retinaface_resnet50_") else "bgr_mean"


# ------------------------------------------------------------------------------------------------ detector
class RetinaFaceDetector(FaceDetector):
    """Batched RetinaFace. ``max_side`` shrinks frames whose longer side exceeds it before the network (None: the
    original scale, as the Pytorch_Retinaface evaluation); coordinates are returned in the frame's own pixels.
    ``pretrained=False`` builds random weights (tests, speed measurements)."""

    def __init__(
        self,
        device: torch.device | str = "cpu",
        *,
        backbone: str = "resnet50",
        weights: str | Path | None = None,
        pretrained: bool = True,
        normalization: Normalization = "auto",
        score_threshold: float = 0.5,
        nms_iou: float = 0.4,
        pre_nms_top_k: int = 5000,
        max_faces: int = 750,
        max_side: int | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        super().__init__(device)
        self.name = "retinaface-r50" if backbone == "resnet50" else "retinaface-mnet"
        self.backbone = backbone
        self.model = RetinaFace(backbone)
        self.weights_path: Path | None = None
        self.weights_sha256: str | None = None
        if pretrained:
            self.weights_path = find_weights(backbone, weights)
            load_retinaface_state(self.model, load_state_dict_file(self.weights_path), str(self.weights_path))
            self.weights_sha256 = file_sha256(self.weights_path)
        self.normalization = (
            _auto_normalization(self.weights_path) if normalization == "auto" else normalization
        )
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.pre_nms_top_k = int(pre_nms_top_k)
        self.max_faces = int(max_faces)
        self.max_side = max_side
        if isinstance(dtype, str):  # "float16", "bfloat16" from a config file
            dtype = getattr(torch, dtype)
        self.dtype = dtype or torch.float32
        self.model = self.model.to(self.device, dtype=self.dtype).eval()
        self._priors: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "implementation": "extract.face.detectors.retinaface (Pytorch_Retinaface layout)",
            "weights": {
                "path": str(self.weights_path) if self.weights_path else None,
                "sha256": self.weights_sha256 or "random-init",
            },
            "normalization": self.normalization,
            "dtype": str(self.dtype).replace("torch.", ""),
            "score_threshold": self.score_threshold,
            "nms_iou": self.nms_iou,
            "pre_nms_top_k": self.pre_nms_top_k,
            "max_faces": self.max_faces,
            "input_size": f"longer side <= {self.max_side}" if self.max_side else "original frame size",
            "priors": {
                "min_sizes": [list(s) for s in MIN_SIZES],
                "steps": list(STEPS),
                "variance": list(VARIANCE),
            },
            "landmark_order": "left_eye,right_eye,nose,mouth_left,mouth_right (image sides)",
        }

    def priors(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._priors:
            self._priors[key] = prior_boxes(height, width, device=self.device)
        return self._priors[key]

    def preprocess(self, batch: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(N, H, W, 3) uint8 RGB -> normalised (N, 3, H', W') float and the resize factor applied."""
        x = batch.permute(0, 3, 1, 2).to(self.dtype)
        scale = 1.0
        h, w = x.shape[-2:]
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        if self.normalization == "bgr_mean":
            mean = torch.tensor(BGR_MEAN, dtype=self.dtype, device=x.device).view(1, 3, 1, 1)
            x = x.flip(1) - mean
        else:
            mean = torch.tensor(IMAGENET_MEAN, dtype=self.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, dtype=self.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x / 255.0 - mean) / std
        return x.contiguous(), scale

    def _detect_batch(self, batch: torch.Tensor, sizes: list[tuple[int, int]]) -> list[Detections]:
        x, scale = self.preprocess(batch)
        loc, conf, landm = self.model(x)
        h, w = x.shape[-2:]
        return self.postprocess(loc.float(), conf.float(), landm.float(), (h, w), scale, sizes)

    def postprocess(
        self,
        loc: torch.Tensor,
        conf: torch.Tensor,
        landm: torch.Tensor,
        input_hw: tuple[int, int],
        scale: float,
        sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        """Vectorised over the batch: softmax, top-k, threshold, decode, batched NMS, per-frame split."""
        n = loc.shape[0]
        h, w = input_hw
        priors = self.priors(h, w)
        scores = F.softmax(conf, dim=-1)[..., 1]  # (N, P)
        k = min(self.pre_nms_top_k, scores.shape[1])
        top_scores, top_idx = scores.topk(k, dim=1)  # (N, k)
        frame_idx, slot = torch.nonzero(top_scores > self.score_threshold, as_tuple=True)
        anchor = top_idx[frame_idx, slot]
        kept_scores = top_scores[frame_idx, slot]
        sel_priors = priors[anchor]
        to_px = torch.tensor([w, h, w, h], dtype=torch.float32, device=loc.device) / scale
        boxes = decode_boxes(loc[frame_idx, anchor], sel_priors) * to_px
        points = decode_landmarks(landm[frame_idx, anchor], sel_priors) * to_px[:2]
        # One NMS over all frames (boxes of different frames never suppress each other); sorted by score.
        keep = batched_nms(boxes, kept_scores, frame_idx, self.nms_iou)
        frame_idx, boxes, points, kept_scores = frame_idx[keep], boxes[keep], points[keep], kept_scores[keep]
        return _per_frame(frame_idx, boxes, points, kept_scores, n, self.max_faces, sizes)


def _per_frame(frame_idx: torch.Tensor, boxes: torch.Tensor, points: torch.Tensor, kept_scores: torch.Tensor,
               n: int, max_faces: int, sizes: list[tuple[int, int]]) -> list[Detections]:
    """Score-sorted detections of a batch -> one ``Detections`` per frame: at most ``max_faces`` each, boxes
    clamped to the frame."""
    # Group by frame (stable: keeps score order inside a frame) and cap the faces per frame.
    order = torch.sort(frame_idx, stable=True).indices
    frame_idx, boxes, points, kept_scores = (
        frame_idx[order],
        boxes[order],
        points[order],
        kept_scores[order],
    )
    counts = torch.bincount(frame_idx, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(frame_idx.numel(), device=frame_idx.device) - starts[frame_idx]
    capped = rank < max_faces
    frame_idx, boxes, points, kept_scores = (
        frame_idx[capped],
        boxes[capped],
        points[capped],
        kept_scores[capped],
    )
    limits = torch.tensor(
        [[sw, sh, sw, sh] for sh, sw in sizes], dtype=torch.float32, device=boxes.device
    )[frame_idx]
    boxes = torch.minimum(boxes.clamp_min(0.0), limits)
    counts = torch.bincount(frame_idx, minlength=n).tolist()
    boxes_np = boxes.cpu().numpy()
    points_np = normalize_landmark_order(points.cpu().numpy())
    scores_np = kept_scores.cpu().numpy()
    out, start = [], 0
    for c in counts:
        out.append(
            Detections(
                boxes_np[start : start + c], points_np[start : start + c], scores_np[start : start + c]
            )
        )
        start += c
    return out


def retinaface_state_dict_keys(backbone: str) -> list[str]:
    """The checkpoint key names a RetinaFace of ``backbone`` expects (the Pytorch_Retinaface layout)."""
    return list(RetinaFace(backbone).state_dict().keys())


def save_random_checkpoint(
    path: str | Path, backbone: str = "mobilenet0.25", prefix: str = "", seed: int = 0
) -> Path:
    """Write a random-weight checkpoint in the Pytorch_Retinaface layout (tests, demos without real weights)."""
    torch.manual_seed(seed)
    state = RetinaFace(backbone).state_dict()
    path = Path(path)
    torch.save(OrderedDict((prefix + k, v) for k, v in state.items()), path)
    return path


__all__ = [
    "BACKBONES",
    "RetinaFace",
    "RetinaFaceDetector",
    "WeightsNotFoundError",
    "decode_boxes",
    "decode_landmarks",
    "find_weights",
    "load_retinaface_state",
    "load_state_dict_file",
    "prior_boxes",
    "retinaface_state_dict_keys",
    "save_random_checkpoint",
]

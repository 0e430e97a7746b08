"""RetinaFace written here: checkpoint key layout, loading, prior boxes, decoding and batched postprocessing."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from extract.face.detectors import create_detector
from extract.face.detectors.retinaface import (
    RetinaFace,
    RetinaFaceDetector,
    WeightsNotFoundError,
    _auto_normalization,
    decode_boxes,
    decode_landmarks,
    find_weights,
    load_retinaface_state,
    load_state_dict_file,
    prior_boxes,
    save_random_checkpoint,
)

# Key names of the Pytorch_Retinaface checkpoints (models/retinaface.py + models/net.py of that project).
COMMON_KEYS = [
    "fpn.output1.0.weight",
    "fpn.merge2.1.running_var",
    "ssh1.conv3X3.0.weight",
    "ssh2.conv5X5_1.1.bias",
    "ssh3.conv7x7_3.1.running_mean",
    "ssh3.conv7X7_2.0.weight",
    "ClassHead.0.conv1x1.weight",
    "BboxHead.2.conv1x1.bias",
    "LandmarkHead.1.conv1x1.weight",
]
BACKBONE_KEYS = {
    "resnet50": [
        "body.conv1.weight",
        "body.bn1.running_mean",
        "body.layer1.0.conv1.weight",
        "body.layer4.2.bn3.bias",
    ],
    "mobilenet0.25": [
        "body.stage1.0.0.weight",
        "body.stage1.1.3.weight",
        "body.stage2.5.4.bias",
        "body.stage3.1.0.weight",
    ],
}


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet0.25"])
def test_state_dict_uses_the_pytorch_retinaface_key_layout(backbone: str) -> None:
    state = RetinaFace(backbone).state_dict()
    for key in COMMON_KEYS + BACKBONE_KEYS[backbone]:
        assert key in state, key
    assert not any(k.startswith(("body.fc", "body.avg", "body.avgpool")) for k in state)
    width = 256 if backbone == "resnet50" else 64
    assert state["ClassHead.0.conv1x1.weight"].shape == (4, width, 1, 1)  # 2 anchors x 2 classes
    assert state["BboxHead.0.conv1x1.weight"].shape == (8, width, 1, 1)
    assert state["LandmarkHead.0.conv1x1.weight"].shape == (20, width, 1, 1)


def test_loads_a_module_prefixed_mnet_checkpoint_and_records_its_checksum(tmp_path: Path) -> None:
    path = save_random_checkpoint(
        tmp_path / "mobilenet0.25_Final.pth", "mobilenet0.25", prefix="module.", seed=3
    )
    det = create_detector("retinaface-mnet", weights=path)
    saved = torch.load(path, weights_only=True)
    torch.testing.assert_close(
        det.model.state_dict()["fpn.merge1.0.weight"], saved["module.fpn.merge1.0.weight"]
    )
    assert det.spec["weights"]["sha256"] != "random-init" and len(det.spec["weights"]["sha256"]) == 64
    assert det.normalization == "bgr_mean"


def test_loads_a_zipped_state_dict_and_a_lightning_style_dict(tmp_path: Path) -> None:
    inner = save_random_checkpoint(tmp_path / "inner.pth", "mobilenet0.25", seed=4)
    wrapped = tmp_path / "release.zip"
    with zipfile.ZipFile(wrapped, "w", zipfile.ZIP_STORED) as zf:
        zf.write(inner, "retinaface.pth")
    from_zip = load_state_dict_file(wrapped)
    assert "body.stage1.0.0.weight" in from_zip
    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {"model." + k: v for k, v in from_zip.items()}, "epoch": 3}, nested)
    model = RetinaFace("mobilenet0.25")
    load_retinaface_state(model, load_state_dict_file(nested))
    torch.testing.assert_close(model.state_dict()["ssh2.conv3X3.0.weight"], from_zip["ssh2.conv3X3.0.weight"])
    # The retinaface-pytorch release file takes ImageNet-normalised RGB; the Pytorch_Retinaface files BGR - mean.
    assert _auto_normalization(Path("retinaface_resnet50_2020-07-20-f168fae3c.zip")) == "imagenet"
    assert _auto_normalization(Path("Resnet50_Final.pth")) == "bgr_mean"


def test_resnet50_state_round_trip_and_wrong_checkpoints_are_named(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = RetinaFace("resnet50").state_dict()
    target = RetinaFace("resnet50")
    load_retinaface_state(target, {"module." + k: v for k, v in source.items() if "num_batches" not in k})
    torch.testing.assert_close(
        target.state_dict()["body.layer3.1.conv2.weight"], source["body.layer3.1.conv2.weight"]
    )
    bad = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="other.pth.*missing key"):
        RetinaFaceDetector(backbone="mobilenet0.25", weights=bad)


def test_missing_weights_error_says_file_source_and_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as info:
        create_detector("retinaface-r50")
    message = str(info.value)
    assert "\n" not in message
    assert "Resnet50_Final.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "Pytorch_Retinaface" in message and "drive.google.com" in message
    with pytest.raises(WeightsNotFoundError, match="mobilenet0.25_Final.pth"):
        find_weights("mobilenet0.25", tmp_path / "nope.pth")
    # A file in the torch hub cache is found without a path.
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    save_random_checkpoint(tmp_path / "hub" / "checkpoints" / "mobilenet0.25_Final.pth")
    assert create_detector("retinaface-mnet").weights_path.name == "mobilenet0.25_Final.pth"


def test_prior_boxes_match_hand_computed_values() -> None:
    p = prior_boxes(32, 32)
    assert p.shape == ((16 + 4 + 1) * 2, 4)  # 4x4, 2x2, 1x1 cells, two sizes each
    expected = {
        0: (0.125, 0.125, 0.5, 0.5),  # first cell, min size 16 of a 32 px input
        1: (0.125, 0.125, 1.0, 1.0),  # same cell, min size 32
        2: (0.375, 0.125, 0.5, 0.5),  # next cell to the right
        32: (0.25, 0.25, 2.0, 2.0),  # stride 16 level starts after 32 priors; size 64
        41: (0.5, 0.5, 16.0, 16.0),  # stride 32, size 512
    }
    for i, values in expected.items():
        torch.testing.assert_close(p[i], torch.tensor(values))
    q = prior_boxes(64, 96)  # non-square: feature maps 8x12, 4x6, 2x3
    assert q.shape == ((96 + 24 + 6) * 2, 4)
    torch.testing.assert_close(
        q[(1 * 12 + 2) * 2 + 1], torch.tensor((2.5 * 8 / 96, 1.5 * 8 / 64, 32 / 96, 32 / 64))
    )


def test_box_and_landmark_decoding_match_hand_computed_values() -> None:
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    loc = torch.tensor([[0.1, -0.2, 5 * math.log(2.0), 0.0]])
    # centre (0.5 + 0.1*0.1*0.2, 0.5 - 0.2*0.1*0.4) = (0.502, 0.492); size (0.2 * 2, 0.4)
    torch.testing.assert_close(decode_boxes(loc, prior), torch.tensor([[0.302, 0.292, 0.702, 0.692]]))
    pre = torch.tensor([[1.0, 0.0, 0.0, -1.0, 0, 0, 0, 0, 2.0, 2.0]])
    pts = decode_landmarks(pre, prior)
    assert pts.shape == (1, 5, 2)
    torch.testing.assert_close(pts[0, 0], torch.tensor([0.52, 0.5]))
    torch.testing.assert_close(pts[0, 1], torch.tensor([0.5, 0.46]))
    torch.testing.assert_close(pts[0, 4], torch.tensor([0.54, 0.58]))


def _landmark_offsets(points_px: np.ndarray, center_px: float, prior_px: float) -> torch.Tensor:
    return torch.tensor((points_px - center_px) / (0.1 * prior_px), dtype=torch.float32).reshape(10)


def test_batched_postprocess_decodes_suppresses_and_splits_per_frame() -> None:
    det = RetinaFaceDetector(backbone="mobilenet0.25", pretrained=False, score_threshold=0.5)
    n, p = 3, 42  # a 32x32 input
    loc = torch.zeros(n, p, 4)
    conf = torch.tensor([5.0, -5.0]).repeat(n, p, 1)  # background everywhere
    landm = torch.zeros(n, p, 10)
    # Frame 0: anchor 10 = cell (1, 1) of the stride-8 level, size 16 -> box (4, 4, 20, 20) px.
    face = np.array([[16, 9], [8, 9], [12, 12], [15, 16], [9, 16]], np.float32)  # right eye given first
    conf[0, 10] = torch.tensor([-2.0, 3.0])
    landm[0, 10] = _landmark_offsets(face, 12.0, 16.0)
    # Frame 1: the same face, plus anchor 12 shifted 7 px left onto it with a lower score (suppressed by NMS).
    conf[1, 10] = torch.tensor([-2.0, 3.0])
    conf[1, 12] = torch.tensor([-2.0, 2.0])
    loc[1, 12, 0] = -7.0 / (0.1 * 16)
    out = det.postprocess(loc, conf, landm, (32, 32), 1.0, [(32, 32)] * 3)
    assert [len(d) for d in out] == [1, 1, 0]
    np.testing.assert_allclose(out[0].boxes[0], [4, 4, 20, 20], atol=1e-4)
    np.testing.assert_allclose(out[0].scores[0], 1 / (1 + math.exp(-5.0)), rtol=1e-5)
    np.testing.assert_allclose(out[0].landmarks[0], face[[1, 0, 2, 4, 3]], atol=1e-4)  # normalised order
    np.testing.assert_allclose(out[1].boxes[0], [4, 4, 20, 20], atol=1e-4)
    # Frames shrunk by 0.5 for the network come back in their own pixels; boxes clip to the frame.
    half = det.postprocess(loc[:1], conf[:1], landm[:1], (32, 32), 0.5, [(64, 64)])
    np.testing.assert_allclose(half[0].boxes[0], [8, 8, 40, 40], atol=1e-4)


@pytest.mark.parametrize("name,size", [("retinaface-mnet", (48, 64)), ("retinaface-r50", (32, 32))])
def test_random_weight_detection_shapes_and_one_forward_per_batch(name: str, size: tuple[int, int]) -> None:
    det = create_detector(name, pretrained=False, score_threshold=0.3, max_faces=20)
    frames = np.random.default_rng(0).integers(0, 255, (2, *size, 3), dtype=np.uint8)
    out = det.detect(frames)
    assert det.forward_calls == 1 and len(out) == 2
    for d in out:
        k = len(d)
        assert 0 < k <= 20
        assert d.boxes.shape == (k, 4) and d.landmarks.shape == (k, 5, 2) and d.scores.shape == (k,)
        assert np.all(d.scores >= 0.3) and np.all(np.diff(d.scores) <= 0)
        assert np.all(d.boxes[:, [0, 2]] <= size[1]) and np.all(d.boxes >= 0)
    assert det.spec["weights"]["sha256"] == "random-init" and det.spec["name"] == name
    if name == "retinaface-mnet":  # a uint8 tensor batch is accepted as well, and gives the same result
        again = det.detect(torch.from_numpy(frames))
        np.testing.assert_allclose(again[0].boxes, out[0].boxes, atol=1e-3)

"""Detector registry, the Detections contract, MTCNN on real faces, the tiny twin, landmark order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from extract.face.decode import VideoReader
from extract.face.detectors import DETECTORS, Detections, create_detector, list_detectors
from extract.face.detectors.base import normalize_landmark_order
from extract.face.detectors.tiny import draw_marker_face, marker_landmarks
from store.registry import UnknownNameError


def test_registry_lists_detectors_and_names_unknown_ones() -> None:
    assert {"mtcnn", "retinaface-r50", "retinaface-mnet", "tiny"} <= set(list_detectors())
    with pytest.raises(UnknownNameError, match="retinaface-r50"):
        create_detector("retinaface")
    assert DETECTORS.info("mtcnn")["offline"] is True


@pytest.fixture(scope="module")
def mtcnn():
    return create_detector("mtcnn", device="cpu")


def _one_face(dets: Detections) -> tuple[np.ndarray, np.ndarray, float]:
    assert len(dets) >= 1
    assert dets.boxes.dtype == dets.landmarks.dtype == dets.scores.dtype == np.float32
    assert np.all(np.diff(dets.scores) <= 0)  # sorted, best first
    return dets.boxes[0], dets.landmarks[0], float(dets.scores[0])


@pytest.mark.parametrize("image_name", ["astronaut", "grace_hopper"])
def test_mtcnn_finds_the_face_with_sane_landmarks(mtcnn, request, face_tools, image_name: str) -> None:
    image = request.getfixturevalue(image_name)
    before = mtcnn.forward_calls
    (dets,) = mtcnn.detect([image])
    assert mtcnn.forward_calls == before + 1
    box, landmarks, score = _one_face(dets)
    assert score > 0.95
    face_tools.check_face_geometry(box, landmarks)
    assert (box[2] - box[0]) > 60  # a real face, not a speck


def test_mtcnn_batch_of_mixed_sizes_is_one_call_and_matches_single_calls(
    mtcnn, astronaut, grace_hopper
) -> None:
    singles = [mtcnn.detect([astronaut])[0], mtcnn.detect([grace_hopper])[0]]
    mtcnn.reset_counters()
    batch = mtcnn.detect([astronaut, grace_hopper])
    assert mtcnn.forward_calls == 1 and mtcnn.frames_seen == 2
    for one, many in zip(singles, batch, strict=True):  # padding changes MTCNN's image pyramid a little
        side = float(one.boxes[0, 2] - one.boxes[0, 0])
        np.testing.assert_allclose(one.boxes[0], many.boxes[0], atol=0.06 * side)
        np.testing.assert_allclose(one.landmarks[0], many.landmarks[0], atol=0.03 * side)
    # No face in a flat frame: an empty Detections, not None.
    (empty,) = mtcnn.detect(np.zeros((1, 120, 160, 3), np.uint8))
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.landmarks.shape == (0, 5, 2)
    assert "pnet.pt" in mtcnn.spec["weights"] and len(mtcnn.spec["weights"]["pnet.pt"]["sha256"]) == 64


def test_mtcnn_through_a_video_written_and_decoded_here(mtcnn, astronaut, tmp_path: Path, face_tools) -> None:
    from PIL import Image

    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    # The face moves right by 4 px a frame; 12 frames at 12 fps, non-default time base.
    frames = [np.roll(small, 4 * i, axis=1) for i in range(12)]
    path = face_tools.write_video(tmp_path / "astro.mp4", frames, fps=12)
    decoded = list(VideoReader(path, fps=4.0))
    np.testing.assert_allclose([f.t_s for f in decoded], [0.0, 0.25, 0.5, 0.75], atol=1e-6)
    results = mtcnn.detect([f.image for f in decoded])
    xs = []
    for dets in results:
        box, landmarks, score = _one_face(dets)
        assert score > 0.9
        face_tools.check_face_geometry(box, landmarks)
        xs.append(landmarks[2, 0])
    np.testing.assert_allclose(np.diff(xs), 12.0, atol=3.0)  # 3 source frames x 4 px between picks


def test_detections_from_numpy2_object_arrays_and_none() -> None:
    empty = Detections.from_arrays(None, None, np.array([None], dtype=object))
    assert len(empty) == 0
    boxes = np.array([[[0, 0, 10, 10], [5, 5, 30, 30]]], dtype=object)[0]
    lms = np.stack([marker_landmarks(np.array([0, 0, 10, 10])), marker_landmarks(np.array([5, 5, 30, 30]))])
    dets = Detections.from_arrays(boxes, lms.astype(object), np.array([0.5, 0.9], dtype=object))
    np.testing.assert_array_equal(dets.scores, np.float32([0.9, 0.5]))
    np.testing.assert_array_equal(dets.boxes[0], [5, 5, 30, 30])
    with pytest.raises(ValueError, match="inconsistent"):
        Detections(np.zeros((2, 4), np.float32), np.zeros((1, 5, 2), np.float32), np.zeros(2, np.float32))


def test_landmark_order_is_normalised_for_upright_and_rotated_faces() -> None:
    upright = marker_landmarks(np.array([0, 0, 112, 112]))  # image-left eye first already
    swapped = upright[[1, 0, 2, 4, 3]]
    np.testing.assert_array_equal(normalize_landmark_order(swapped), upright)
    # Rotate the face by 90 degrees (screen y down): the correct order is kept, not re-sorted by x.
    angle = np.deg2rad(90)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = upright @ rot.T
    np.testing.assert_allclose(normalize_landmark_order(turned), turned)
    np.testing.assert_allclose(normalize_landmark_order(turned[[1, 0, 2, 4, 3]]), turned)
    batch = normalize_landmark_order(np.stack([swapped, turned]))
    np.testing.assert_allclose(batch, np.stack([upright, turned]), atol=1e-5)


def test_tiny_twin_keeps_the_contract_and_batches() -> None:
    tiny = create_detector("tiny")
    frames = np.zeros((3, 80, 120, 3), np.uint8)
    draw_marker_face(frames[0], (10, 20, 40, 50))
    draw_marker_face(frames[0], (60, 10, 110, 60))  # a bigger second face
    draw_marker_face(frames[2], (30, 30, 50, 52))
    out = tiny.detect(frames)
    assert tiny.forward_calls == 1 and [len(d) for d in out] == [2, 0, 1]
    np.testing.assert_array_equal(out[2].boxes[0], [30, 30, 50, 52])
    np.testing.assert_allclose(out[2].landmarks[0], marker_landmarks(np.array([30, 30, 50, 52])))
    assert out[0].scores.tolist() == [1.0, 1.0] and tiny.spec["name"] == "tiny"

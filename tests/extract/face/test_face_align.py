"""Five-point alignment: template, Umeyama = scikit-image, landmarks land on the template, batched warps,
the alignment residual."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from extract.face.align import (
    ARCFACE_TEMPLATE_112,
    AlignConfig,
    align_faces,
    alignment_residual,
    arcface_template,
    estimate_alignment,
    umeyama,
    valid_landmarks,
    warp_faces,
)

# MTCNN's landmarks on skimage.data.astronaut() (see test_face_detectors), rounded.
ASTRONAUT_LANDMARKS = np.array(
    [[205.0, 101.7], [246.8, 103.7], [224.7, 129.0], [201.7, 139.2], [245.3, 141.9]], np.float32
)


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array(
        [[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty], [0, 0, 1.0]]
    )


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:2, :2].T + m[:2, 2]


def test_template_is_arcface_scaled_with_margin() -> None:
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)
    wide = arcface_template(224, margin=0.25)
    np.testing.assert_allclose(wide - 112, (ARCFACE_TEMPLATE_112 * 2 - 112) / 1.25)
    assert AlignConfig().spec()["size"] == 224


def test_umeyama_equals_scikit_image_similarity_estimate() -> None:
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    dst = arcface_template(224)
    src = rng.normal(size=(20, 5, 2)) * 40 + 150
    src[3] = src[3, ::-1]  # reflected order
    src[4, :, 1] = 0.5 * src[4, :, 0] + 2  # collinear points: rank-deficient covariance
    batched = umeyama(src, dst)
    for i in range(len(src)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # estimate() is deprecated in newer scikit-image
            tform = SimilarityTransform()
            assert tform.estimate(src[i], dst)
        np.testing.assert_allclose(batched[i], tform.params, atol=1e-9)
        np.testing.assert_allclose(umeyama(src[i], dst), tform.params, atol=1e-9)
    assert np.isnan(umeyama(np.ones((5, 2)), dst)).all()  # degenerate: all points coincide


def _blob_image(points: np.ndarray, shape: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    img = np.zeros(shape)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((np.clip(img, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroids(crop: np.ndarray, near: np.ndarray, radius: int = 9) -> np.ndarray:
    gray = crop[..., 0].astype(np.float64)
    out = []
    for x, y in near:
        x0, y0 = int(round(x)) - radius, int(round(y)) - radius
        win = gray[max(y0, 0) : y0 + 2 * radius + 1, max(x0, 0) : x0 + 2 * radius + 1]
        yy, xx = np.mgrid[max(y0, 0) : max(y0, 0) + win.shape[0], max(x0, 0) : max(x0, 0) + win.shape[1]]
        out.append([(win * xx).sum() / win.sum(), (win * yy).sum() / win.sum()])
    return np.array(out)


@pytest.mark.parametrize("backend", ["cv2", "torch"])
@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_landmarks_come_back_on_the_template_within_one_pixel(backend: str, margin: float) -> None:
    cfg = AlignConfig(size=224, margin=margin, backend=backend)
    template = cfg.template()
    # A "face" whose five landmarks were put in the frame by a known similarity transform.
    known = _similarity(25.0, 1.3, 60.0, 40.0)
    landmarks = _apply(known, template)
    frame = _blob_image(landmarks, (420, 400), sigma=2.5)
    (crop,) = align_faces([frame], landmarks[None], config=cfg)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(_centroids(crop, template), template, atol=1.0)
    # The estimated transform is the inverse of the known one.
    np.testing.assert_allclose(
        estimate_alignment(landmarks[None], 224, margin)[0], np.linalg.inv(known)[:2], atol=1e-6
    )


def test_a_face_warped_by_a_similarity_aligns_like_the_original(astronaut) -> None:
    import cv2

    known = _similarity(-20.0, 0.8, 150.0, 170.0)
    moved = cv2.warpAffine(np.ascontiguousarray(astronaut), known[:2], (512, 512), flags=cv2.INTER_LINEAR)
    moved_landmarks = _apply(known, ASTRONAUT_LANDMARKS)
    crops = align_faces(
        [astronaut, moved], np.stack([ASTRONAUT_LANDMARKS, moved_landmarks]), frame_index=[0, 1]
    )
    diff = np.abs(crops[0].astype(np.int16) - crops[1].astype(np.int16))
    assert diff.mean() < 6.0, diff.mean()
    # Swapped landmark order (right eye first) gives the same crop: the order is normalised.
    swapped = align_faces([astronaut], ASTRONAUT_LANDMARKS[[1, 0, 2, 4, 3]][None])
    np.testing.assert_array_equal(swapped[0], crops[0])


def test_batched_warp_backends_agree_and_index_frames(astronaut, grace_hopper) -> None:
    frames = np.stack([astronaut, np.ascontiguousarray(grace_hopper[:512])])
    mats = np.stack(
        [
            estimate_alignment(ASTRONAUT_LANDMARKS[None])[0],
            estimate_alignment(_apply(_similarity(10, 1.1, 5, 3), ASTRONAUT_LANDMARKS)[None])[0],
            estimate_alignment(ASTRONAUT_LANDMARKS[None] + 40)[0],
        ]
    )
    index = [0, 0, 1]
    a = warp_faces(frames, mats, index, 224, "cv2")
    b = warp_faces(frames, mats, index, 224, "torch")
    assert a.shape == b.shape == (3, 224, 224, 3)
    assert np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() < 1.0
    assert np.abs(a[2].astype(np.int16) - a[0].astype(np.int16)).mean() > 10  # the third crop is from frame 1
    assert warp_faces(frames, np.zeros((0, 2, 3)), [], 112).shape == (0, 112, 112, 3)


def test_valid_landmarks_rejects_nan_and_collapsed_points() -> None:
    lms = np.stack([ASTRONAUT_LANDMARKS, np.full((5, 2), np.nan), np.ones((5, 2))])
    assert valid_landmarks(lms).tolist() == [True, False, False]


def _turned(landmarks: np.ndarray, yaw_deg: float) -> np.ndarray:
    """Five landmarks of a head turned by ``yaw_deg`` about its vertical axis (orthographic; the nose tip stands
    0.5 eye distances in front of the eyes, the mouth corners 0.05)."""
    eye = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    depth = np.array([0.0, 0.0, 0.5, 0.05, 0.05]) * eye
    cx = landmarks[:, 0].mean()
    a = np.deg2rad(yaw_deg)
    x = (landmarks[:, 0] - cx) * np.cos(a) + depth * np.sin(a) + cx
    return np.stack([x, landmarks[:, 1]], axis=1)


def test_alignment_residual_is_the_rms_template_distance_after_the_similarity_fit() -> None:
    from skimage.transform import SimilarityTransform

    lm = ASTRONAUT_LANDMARKS.astype(np.float64)
    tform = SimilarityTransform()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # estimate() is deprecated in newer scikit-image
        assert tform.estimate(lm, arcface_template(224))
    expected = np.sqrt((np.linalg.norm(tform(lm) - arcface_template(224), axis=1) ** 2).mean())
    got = alignment_residual(lm[None])
    np.testing.assert_allclose(got, [expected], rtol=1e-6)
    # invariant to where the face is, its size and roll; in output-crop px (half the crop, half the residual)
    moved = _apply(_similarity(25.0, 0.4, 30.0, -12.0), lm)
    np.testing.assert_allclose(alignment_residual(moved[None]), got, rtol=1e-6)
    np.testing.assert_allclose(alignment_residual(lm[None], size=112), got / 2, rtol=1e-6)
    template = _apply(_similarity(-40.0, 3.0, 5.0, 7.0), ARCFACE_TEMPLATE_112)
    assert alignment_residual(template[None])[0] < 1e-9
    assert np.isnan(alignment_residual(np.zeros((1, 5, 2))))[0]


def test_alignment_residual_grows_as_the_head_turns_to_profile() -> None:
    front = ASTRONAUT_LANDMARKS.astype(np.float64)
    angles = [0, 20, 40, 60, 75]
    residual = alignment_residual(np.stack([_turned(front, a) for a in angles]))
    assert np.all(np.diff(residual) > 0), residual
    assert residual[3] > residual[0] + 5  # a 60 degree turn is far from the template, the real frontal face is not
    distorted = front.copy()
    distorted[2] = distorted[0] - [15.0, 0.0]  # "nose" outside the eyes: no face a similarity can fit
    assert alignment_residual(distorted[None])[0] > residual[-1]

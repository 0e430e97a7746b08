"""Shared helpers for the face-path tests: sample face images and tiny videos written with PyAV."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest


def load_grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    return load_grace_hopper()


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 25,
    times_s: Sequence[float] | None = None,
    time_base: Fraction | None = None,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames; ``times_s`` gives each frame's presentation time (default i / fps)."""
    rate = Fraction(fps).limit_denominator(1000)
    tb = time_base or Fraction(1, 90000)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = None
        for i, img in enumerate(frames):
            if stream is None:
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height = img.shape[1], img.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.time_base = tb
                stream.codec_context.options = {"g": "12"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            t = times_s[i] if times_s is not None else i / fps
            frame.pts = int(round(t / tb))
            frame.time_base = tb
            for packet in stream.encode(frame):
                container.mux(packet)
        assert stream is not None, "no frames"
        for packet in stream.encode():
            container.mux(packet)
    return path


def gray_frames(n: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Frame i is uniformly gray at level (i * 5) % 250: its index can be read back after lossy coding."""
    w, h = size
    return [np.full((h, w, 3), (i * 5) % 250, np.uint8) for i in range(n)]


def gray_level_index(image: np.ndarray) -> int:
    return int(round(float(image.mean()) / 5.0))


def check_face_geometry(box: np.ndarray, landmarks: np.ndarray) -> None:
    """Eyes above nose above mouth, image-left eye left of the right one, every landmark inside the box."""
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = landmarks
    assert max(ly, ry) < ny < min(mly, mry), landmarks
    assert lx < rx and mlx < mrx, landmarks
    x1, y1, x2, y2 = box
    assert np.all(landmarks[:, 0] > x1) and np.all(landmarks[:, 0] < x2), (box, landmarks)
    assert np.all(landmarks[:, 1] > y1) and np.all(landmarks[:, 1] < y2), (box, landmarks)


@pytest.fixture(scope="session")
def face_tools():
    """The helpers above, for tests to call (conftest modules are not imported by tests directly)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        write_video=write_video,
        gray_frames=gray_frames,
        gray_level_index=gray_level_index,
        check_face_geometry=check_face_geometry,
        load_grace_hopper=load_grace_hopper,
    )

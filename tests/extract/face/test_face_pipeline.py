"""The batched face path end to end: decode thread -> detect -> subject -> align -> one row per frame."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from extract.face.decode import VideoDecodeError
from extract.face.detectors import create_detector
from extract.face.detectors.tiny import draw_marker_face
from extract.face.pipeline import FaceConfig, FacePipeline, prefetch
from extract.face.track import TrackConfig


def marker_video_frames(n: int = 40) -> list[np.ndarray]:
    """20 fps: a 24 px subject drifting right 1 px/frame, absent in frames 20-25; a 36 px distractor from 14."""
    frames = []
    for t in range(n):
        img = np.full((96, 128, 3), 40, np.uint8)
        if not 20 <= t <= 25:
            draw_marker_face(img, (20 + t, 30, 44 + t, 54))
        if t >= 14:
            draw_marker_face(img, (90, 50, 126, 86))
        frames.append(img)
    return frames


def test_tiny_pipeline_tracks_subject_skips_missing_frames_and_batches(tmp_path: Path, face_tools) -> None:
    path = face_tools.write_video(tmp_path / "markers.mp4", marker_video_frames(), fps=20)
    cfg = FaceConfig(fps=10.0, detector="tiny", detector_batch=4, crop_size=64, min_score=0.5, keyframe_s=0.0)
    pipe = FacePipeline.from_config(cfg)
    results = list(pipe.process_video(path))
    assert [r.index for r in results] == list(range(20))
    np.testing.assert_allclose([r.t_s for r in results], np.arange(20) * 0.1, atol=1e-6)
    found = [r.face_found for r in results]
    assert found == [True] * 10 + [False] * 3 + [True] * 7  # source frames 20, 22, 24 have no subject
    for r in results:
        if r.face_found:
            assert r.crop is not None and r.crop.shape == (64, 64, 3) and r.crop.dtype == np.uint8
            assert abs(r.box[0] - (20 + 2 * r.index)) <= 2  # the subject, never the bigger distractor
            assert r.crop[24:40, 24:40].mean(axis=(0, 1))[1] < 80  # the crop is the magenta marker
        else:
            assert r.crop is None and r.box is None and np.isnan(r.det_score)
    assert results[11].n_faces == 1 and results[15].n_faces == 2  # the distractor is seen, not chosen
    stats = pipe.stats.as_dict()
    assert stats["frames"] == 20 and stats["faces"] == 17
    # The device-side warp (one grid_sample over the batch, as on a GPU) gives the same crops.
    on_device = FacePipeline("tiny", dataclasses.replace(cfg, warp_backend="torch"))
    for r, s in zip(results, on_device.process_video(path), strict=True):
        assert r.face_found == s.face_found
        if r.face_found:
            assert np.abs(r.crop.astype(int) - s.crop.astype(int)).mean() < 1.0
    assert pipe.detector.forward_calls == stats["forward_calls"] == 5  # 20 frames / batch 4
    assert stats["forward_calls_per_frame"] == pytest.approx(1 / 4)


def test_mtcnn_pipeline_on_a_face_video_with_empty_frames(astronaut, tmp_path: Path, face_tools) -> None:
    from PIL import Image

    small = np.asarray(Image.fromarray(astronaut).resize((224, 224)))
    frames = [small] * 6 + [np.zeros_like(small)] * 6
    path = face_tools.write_video(tmp_path / "astro.mkv", frames, fps=12)
    pipe = FacePipeline("mtcnn", FaceConfig(fps=4.0, detector_batch=8, track=TrackConfig(init_frames=2)))
    batches = list(pipe.video_batches(path))
    results = [r for b in batches for r in b.results()]
    assert [r.face_found for r in results] == [True, True, False, False]
    np.testing.assert_allclose([r.t_s for r in results], [0.0, 0.25, 0.5, 0.75], atol=1e-3)
    for r in results[:2]:
        assert r.det_score > 0.9 and r.crop.shape == (224, 224, 3)
        face_tools.check_face_geometry(r.box, r.landmarks)
    crops = np.concatenate([b.crops for b in batches])
    assert crops.shape == (2, 224, 224, 3)  # no crop fabricated for the empty frames
    spec = pipe.spec
    assert spec["detector"]["name"] == "mtcnn" and spec["alignment"]["size"] == 224 and spec["fps"] == 4.0


def test_damaged_video_rows_come_first_then_the_error(tmp_path: Path, face_tools) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for img in marker_video_frames(60):
        noise = rng.integers(0, 30, img.shape, dtype=np.uint8)
        frames.append(np.where(img == 40, noise + 40, img).astype(np.uint8))
    full = face_tools.write_video(tmp_path / "full.mkv", frames, fps=20)
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    pipe = FacePipeline("tiny", FaceConfig(fps=10.0, detector_batch=4, min_score=0.5))
    rows = []
    with pytest.raises(VideoDecodeError, match="cut.mkv"):
        for r in pipe.process_video(cut):
            rows.append(r)
    assert 3 <= len(rows) < 30 and rows[0].face_found
    assert [r.index for r in rows] == list(range(len(rows)))


@dataclass
class Still:
    t_s: float
    image: np.ndarray


def test_still_images_of_different_sizes_use_the_largest_face_per_frame() -> None:
    a = np.zeros((60, 80, 3), np.uint8)
    draw_marker_face(a, (5, 5, 25, 25))
    draw_marker_face(a, (40, 10, 75, 45))
    b = np.zeros((90, 70, 3), np.uint8)
    draw_marker_face(b, (10, 50, 40, 80))
    c = np.zeros((50, 50), np.uint8)  # gray images are accepted
    stills = [Still(0.0, a), Still(1.0, b), Still(2.0, c)]
    pipe = FacePipeline("tiny", FaceConfig(subject="largest", detector_batch=8, crop_size=32, min_score=0.5))
    results = list(pipe.process(stills, background=False))
    assert [r.face_found for r in results] == [True, True, False]
    assert results[0].box.tolist() == [40, 10, 75, 45] and results[1].box.tolist() == [10, 50, 40, 80]
    assert pipe.detector.forward_calls == 1  # three sizes, one padded batch


def test_face_config_loads_from_nested_overrides() -> None:
    from pipelines.config import build_config

    cfg = build_config(
        FaceConfig, {"fps": 10, "track": {"max_misses": 3}, "detector_options": {"max_side": 320}}
    )
    assert cfg.fps == 10.0 and cfg.track.max_misses == 3 and cfg.detector_options == {"max_side": 320}
    assert cfg.align.size == 224


def test_background_decode_stops_when_the_consumer_stops() -> None:
    before = threading.active_count()
    img = np.zeros((32, 32, 3), np.uint8)
    draw_marker_face(img, (8, 8, 24, 24))
    endless = (Still(i / 5, img) for i in itertools.count())
    pipe = FacePipeline(create_detector("tiny"), FaceConfig(detector_batch=2, min_score=0.5))
    got = list(itertools.islice(pipe.process(endless), 5))
    assert len(got) == 5 and all(r.face_found for r in got)
    del got
    import gc

    gc.collect()
    for _ in range(100):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.02)
    assert threading.active_count() <= before

    def broken():
        yield Still(0.0, img)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        list(prefetch(broken(), 2))

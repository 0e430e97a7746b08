"""Streaming decode: times from pts, selection at a requested fps, damaged files keep their good frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from extract.base import ItemError
from extract.face.decode import VideoDecodeError, VideoReader, expected_count, iter_frames, probe_video


def test_5fps_from_50fps_gives_right_times_count_and_frames(tmp_path: Path, face_tools) -> None:
    path = face_tools.write_video(tmp_path / "v50.mp4", face_tools.gray_frames(500), fps=50)
    reader = VideoReader(path, fps=5.0)
    frames = list(reader)
    assert len(frames) == 50 == expected_count(10.0, 5.0)
    np.testing.assert_allclose([f.t_s for f in frames], np.arange(50) * 0.2, atol=1e-9)
    assert [f.index for f in frames] == list(range(50))
    assert [f.source_index for f in frames] == list(range(0, 500, 10))
    # The pixels are those of the selected source frame (gray level encodes the frame number mod 50).
    assert [face_tools.gray_level_index(f.image) for f in frames] == [(10 * k) % 50 for k in range(50)]
    assert reader.n_decoded == 500 and reader.error is None
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8


def test_timestamps_come_from_pts_with_a_nondefault_time_base(tmp_path: Path, face_tools) -> None:
    tb = Fraction(1, 90000)
    path = face_tools.write_video(tmp_path / "tb.mp4", face_tools.gray_frames(30), fps=30, time_base=tb)
    info = probe_video(path)
    assert info.time_base == tb and info.fps == pytest.approx(30) and info.n_frames == 30
    assert (info.width, info.height) == (64, 48)
    frames = list(VideoReader(path, fps=None))
    np.testing.assert_allclose([f.t_s for f in frames], np.arange(30) / 30, atol=1e-6)


def test_variable_frame_rate_uses_pts_not_a_counter(tmp_path: Path, face_tools) -> None:
    # 25 frames at 25 fps, a 1.04 s gap, 25 more frames: the header still says 25 fps.
    times = [i / 25 for i in range(25)] + [2.0 + i / 25 for i in range(25)]
    path = face_tools.write_video(tmp_path / "vfr.mkv", face_tools.gray_frames(50), fps=25, times_s=times)
    every = list(VideoReader(path, fps=None))
    np.testing.assert_allclose([f.t_s for f in every], times, atol=1e-3)  # mkv stores milliseconds
    counter_times = np.arange(50) / 25.0  # what counter x reported fps would claim
    assert abs(every[-1].t_s - counter_times[-1]) > 0.9
    picked = list(VideoReader(path, fps=5.0))
    t = np.array([f.t_s for f in picked])
    np.testing.assert_allclose(t, [0.0, 0.2, 0.4, 0.6, 0.8, 0.96, 2.0, 2.2, 2.4, 2.6, 2.8], atol=1e-3)
    assert len({f.source_index for f in picked}) == len(picked)  # no frame is yielded twice
    info = probe_video(path, count_frames=True)
    assert info.n_frames == 50 and info.fps_source == "counted"
    assert info.fps == pytest.approx(50 / 3.0, rel=0.02)


def test_fps_above_the_source_rate_never_duplicates_frames(tmp_path: Path, face_tools) -> None:
    path = face_tools.write_video(tmp_path / "v10.mkv", face_tools.gray_frames(20), fps=10)
    frames = list(VideoReader(path, fps=25.0))
    assert [f.source_index for f in frames] == list(range(20))


def test_max_side_shrinks_frames(tmp_path: Path, face_tools) -> None:
    path = face_tools.write_video(tmp_path / "big.mkv", face_tools.gray_frames(5, size=(128, 96)), fps=10)
    (first, *_) = list(VideoReader(path, fps=None, max_side=64))
    assert first.image.shape == (48, 64, 3)


@pytest.mark.parametrize("suffix,options", [(".mp4", {"movflags": "faststart"}), (".mkv", {})])
def test_truncated_video_keeps_frames_then_raises_naming_the_file(
    tmp_path: Path, face_tools, suffix: str, options: dict[str, str]
) -> None:
    rng = np.random.default_rng(0)
    noisy = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(100)]
    full = face_tools.write_video(tmp_path / f"full{suffix}", noisy, fps=50, options=options)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])

    kept = []
    with pytest.raises(VideoDecodeError) as info:
        for frame in VideoReader(cut, fps=5.0):
            kept.append(frame.t_s)
    assert str(cut) in str(info.value) and isinstance(info.value, ItemError)
    assert info.value.n_frames == len(kept) >= 3
    np.testing.assert_allclose(kept, np.arange(len(kept)) * 0.2, atol=1e-6)

    reader = VideoReader(cut, fps=5.0, raise_errors=False)
    assert len(list(reader)) == len(kept)
    assert reader.error is not None and str(cut) in str(reader.error)
    # The intact file decodes cleanly.
    assert len(list(iter_frames(full, fps=5.0))) == 10


def test_unreadable_and_missing_files_raise_item_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        list(VideoReader(garbage))
    reader = VideoReader(tmp_path / "missing.avi", raise_errors=False)
    assert list(reader) == [] and "not found" in str(reader.error)
    with pytest.raises(VideoDecodeError, match="missing.avi"):
        probe_video(tmp_path / "missing.avi")


def test_a_video_only_mkv_that_starts_late_is_not_called_truncated(tmp_path: Path) -> None:
    import av

    from extract.fixtures.video import tone, write_video

    # Matroska declares its duration from 0: a video-only file whose first frame is at 0.5 s says "1.5 s" in all.
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(10)]
    src = write_video(tmp_path / "src.mkv", frames, size=(64, 48), fps=10, audio=tone(1.5, 440.0),
                      audio_offset_s=-0.5)
    late = tmp_path / "late.mkv"
    with av.open(str(src)) as inp, av.open(str(late), "w") as out:  # keep only the video stream
        stream_out = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream_out
                out.mux(packet)
    reader = VideoReader(late, fps=None, raise_errors=False)
    frames_read = list(reader)
    assert reader.error is None and len(frames_read) == 10
    np.testing.assert_allclose([f.t_s for f in frames_read], np.arange(10) / 10, atol=1e-6)

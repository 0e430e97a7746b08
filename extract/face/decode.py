"""Streaming video decode at a requested frame rate, with timestamps taken from the stream.

``VideoReader(path, fps=5.0)`` decodes a video with PyAV one frame at a time and yields ``DecodedFrame`` rows at
(about) ``fps`` frames per second. The time of a frame is its presentation timestamp, ``pts * time_base``, measured
from the first decoded frame (or the stream's declared start time) — never ``counter / reported_fps``, which is wrong for variable-frame-rate files and
for files whose header carries a wrong rate. For each target time ``t_k = k / fps`` the decoded frame nearest to it
is selected (a frame is never yielded twice; a target with no frame of its own is skipped). Only the previous and
the current decoded frames are held, so memory does not grow with the length of the video.

A corrupt or truncated video does not lose what could be decoded: every good frame is yielded first, then a
``VideoDecodeError`` naming the file is raised at the end of the iteration (or, with ``raise_errors=False``, left
on ``reader.error`` for the caller to record). Corrupt packets in the middle are skipped and counted.

Example::

    reader = VideoReader("clip.avi", fps=5.0, max_side=640)
    rows = []
    try:
        for frame in reader:          # DecodedFrame(index, t_s, image HxWx3 uint8 RGB, source_index)
            rows.append(frame.t_s)
    except VideoDecodeError as exc:   # rows decoded before the damage are still in ``rows``
        log.warning("%s", exc)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from extract.base import ItemError

ThreadType = Literal["AUTO", "FRAME", "SLICE", "NONE"]
TimeOrigin = Literal["first_frame", "stream_start", "file_start"]

# A stream whose decoded frames stop this much before its declared end is reported as truncated.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRAMES = 3


class VideoDecodeError(ItemError):
    """A video that could not be (fully) decoded. ``n_frames`` good frames were yielded before it was raised."""

    def __init__(
        self, path: str | os.PathLike[str], reason: str, n_frames: int = 0, last_t_s: float | None = None
    ):
        self.path = str(path)
        self.reason = reason
        self.n_frames = n_frames
        self.last_t_s = last_t_s
        upto = f", decoded up to t={last_t_s:.3f} s" if last_t_s is not None else ""
        super().__init__(f"{self.path}: {reason} ({n_frames} frame(s) kept{upto})")


@dataclass(frozen=True)
class DecodedFrame:
    """One selected frame: ``index`` counts the yielded frames (0, 1, ...), ``source_index`` the decoded ones."""

    index: int
    t_s: float
    image: np.ndarray  # (H, W, 3) uint8 RGB
    source_index: int = -1


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream says about itself (``probe_video``). ``fps_source`` tells which number was trusted."""

    path: str
    width: int
    height: int
    duration_s: float | None
    fps: float | None
    n_frames: int | None
    start_s: float
    time_base: Fraction | None
    codec: str
    fps_source: str  # "average_rate", "frames/duration", "guessed_rate", "counted", or "unknown"


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    if not Path(path).is_file():
        raise VideoDecodeError(path, "video file not found")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(path, f"cannot open video: {exc.strerror or exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream in file")
    return container


def _stream_duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """The declared duration of the video stream; the container's only when the video is its sole stream."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0 and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def _declared_end_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, stream_start: float
) -> float | None:
    """Where the video stream says it ends, on the file's clock.

    A stream duration spans from the stream's start. A container duration (used when the video is the sole stream)
    is a span in some formats and an end time in others (Matroska counts from 0 even when the first frame is
    later), so the earlier of the two readings is taken: truncation is never claimed on an ambiguous header.
    """
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return stream_start + float(stream.duration * stream.time_base)
    declared = _stream_duration_s(container, stream)
    if declared is None:
        return None
    return min(stream_start + declared, max(declared, stream_start))


def probe_video(path: str | os.PathLike[str], count_frames: bool = False) -> VideoInfo:
    """Size, duration, nominal fps and frame count of a video's first video stream.

    The header's average rate is cross-checked against ``frames / duration`` (when both are declared) and replaced
    by the latter when they disagree by more than 5 %. With ``count_frames=True`` the packets are demuxed (not
    decoded) to count frames and measure the duration from their timestamps; that number wins.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        start_s = float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
        duration = _stream_duration_s(container, stream)
        n_frames = int(stream.frames) if stream.frames else None
        fps, source = None, "unknown"
        if stream.average_rate:
            fps, source = float(stream.average_rate), "average_rate"
        if n_frames and duration:
            measured = n_frames / duration
            if fps is None or abs(fps - measured) > 0.05 * measured:
                fps, source = measured, "frames/duration"
        if fps is None and stream.guessed_rate:
            fps, source = float(stream.guessed_rate), "guessed_rate"
        if count_frames:
            n, lo, hi, last_dur = 0, None, None, 0
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                n += 1
                lo = packet.pts if lo is None else min(lo, packet.pts)
                if hi is None or packet.pts >= hi:
                    hi, last_dur = packet.pts, packet.duration or 0
            if n and tb is not None and hi is not None and lo is not None:
                span = float((hi - lo + last_dur) * tb)
                n_frames, duration = n, span if span > 0 else duration
                if span > 0:
                    fps, source = n / span, "counted"
        if n_frames is None and duration and fps:
            n_frames = int(round(duration * fps))
        return VideoInfo(
            path=str(path),
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            duration_s=duration,
            fps=fps,
            n_frames=n_frames,
            start_s=start_s,
            time_base=tb,
            codec=stream.codec_context.name,
            fps_source=source,
        )
    finally:
        container.close()


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    if not max_side or max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class VideoReader:
    """Iterate the frames of one video at ``fps`` (None or 0: every decoded frame). See the module docstring.

    ``max_side`` shrinks frames whose longer side exceeds it (aspect kept) while converting to RGB; only selected
    frames are converted. ``time_origin``: t = 0 at the first decoded frame (default; AVI files with B-frames
    start their pts one frame late), at the stream's declared start time, or at the container's start
    (``file_start``: the file's clock, as players count). Once a frame is decoded, ``first_frame_file_s`` is
    that first frame's time on the file's clock (t_file = t_first_frame_clock + first_frame_file_s). ``raise_errors=False`` records a decode failure on ``self.error`` instead of raising it.
    After iteration, ``n_decoded`` is the number of frames the decoder produced and ``n_bad_packets`` the number
    of corrupt packets skipped.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | None = 5.0,
        *,
        max_side: int | None = None,
        thread_type: ThreadType = "AUTO",
        time_origin: TimeOrigin = "first_frame",
        raise_errors: bool = True,
        max_bad_packets: int = 50,
    ) -> None:
        if fps is not None and fps < 0:
            raise ValueError(f"fps must be positive (or None for every frame), got {fps}")
        self.path = Path(path)
        self.fps = fps or None
        self.max_side = max_side
        self.thread_type = thread_type
        self.time_origin = time_origin
        self.raise_errors = raise_errors
        self.max_bad_packets = max_bad_packets
        self.error: VideoDecodeError | None = None
        self.n_decoded = 0
        self.n_yielded = 0
        self.n_bad_packets = 0
        self.first_frame_file_s: float | None = None
        self._failure: str | None = None

    def __iter__(self) -> Iterator[DecodedFrame]:
        self.error = None
        self.n_decoded = self.n_yielded = self.n_bad_packets = 0
        try:
            container = _open(self.path)
        except VideoDecodeError as exc:
            self.error = exc
            if self.raise_errors:
                raise
            return
        try:
            yield from self._frames(container)
        finally:
            container.close()
        if self.error is not None and self.raise_errors:
            raise self.error

    def _emit(
        self, frame: av.VideoFrame, t_s: float, source_index: int, size: tuple[int, int] | None
    ) -> DecodedFrame:
        if size is not None:
            frame = frame.reformat(width=size[0], height=size[1], interpolation="AREA")
        image = frame.to_ndarray(format="rgb24")
        out = DecodedFrame(index=self.n_yielded, t_s=t_s, image=image, source_index=source_index)
        self.n_yielded += 1
        return out

    def _decoded(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order; corrupt packets are skipped and a failure left on ``_failure``."""
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:  # the demuxer itself failed: nothing more can be read
                self._failure = f"demux error: {exc.strerror or exc}"
                break
            try:
                frames = stream.decode(packet)
            except av.error.FFmpegError as exc:
                self.n_bad_packets += 1
                if self.n_bad_packets > self.max_bad_packets:
                    self._failure = (
                        f"too many corrupt packets ({self.n_bad_packets}), last: {exc.strerror or exc}"
                    )
                    break
                continue
            yield from frames
        try:  # flush what the decoder still holds (B-frame reordering, frame threads)
            yield from stream.decode(None)
        except av.error.EOFError:  # the demuxer's final empty packet already drained it
            pass
        except av.error.FFmpegError as exc:
            self._failure = self._failure or f"decode error at end of stream: {exc.strerror or exc}"
        if self.n_bad_packets and self._failure is None:
            self._failure = f"{self.n_bad_packets} corrupt packet(s) skipped"

    def _frames(self, container: av.container.InputContainer) -> Iterator[DecodedFrame]:
        stream = container.streams.video[0]
        stream.thread_type = self.thread_type
        tb = stream.time_base
        stream_start = (
            float(stream.start_time * tb) if stream.start_time is not None and tb is not None else 0.0
        )
        file_start = float(container.start_time) / av.time_base if container.start_time is not None else stream_start
        origin: float | None = {"stream_start": stream_start, "file_start": file_start}.get(self.time_origin)
        self.first_frame_file_s = None
        last_dt = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        self._failure = None
        size = None
        selector = _NearestSelector(1.0 / self.fps if self.fps else None)
        last_abs: float | None = None  # pts * time_base of the last decoded frame
        for frame in self._decoded(container, stream):
            if frame.pts is not None and tb is not None:
                t_abs = float(frame.pts * tb)
            else:  # no timestamp: assume the last frame interval
                t_abs = stream_start if last_abs is None else last_abs + last_dt
            if last_abs is not None and t_abs > last_abs:
                last_dt = t_abs - last_abs
            last_abs = t_abs
            if self.first_frame_file_s is None:
                self.first_frame_file_s = t_abs - file_start
            if origin is None:
                origin = t_abs
            if size is None and self.max_side:
                size = _target_size(frame.width, frame.height, self.max_side)
            self.n_decoded += 1
            for chosen in selector.push(frame, t_abs - origin, self.n_decoded - 1):
                yield self._emit(*chosen, size)
        for chosen in selector.finish(0.5 * last_dt):
            yield self._emit(*chosen, size)

        failure = self._failure
        if failure is None and self.n_decoded == 0:
            failure = "no frame could be decoded"
        if failure is None and last_abs is not None:
            declared_end = _declared_end_s(container, stream, stream_start)
            if declared_end is not None:
                end = last_abs + last_dt
                tolerance = max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRAMES * last_dt)
                if end < declared_end - tolerance:
                    failure = f"truncated: frames end at {end:.3f} s of a declared {declared_end:.3f} s"
        if failure is not None:
            last_t = None if last_abs is None or origin is None else last_abs - origin
            self.error = VideoDecodeError(self.path, failure, self.n_yielded, last_t)


class _NearestSelector:
    """For each target ``k * step``, pick the nearer of the two decoded frames around it (ties: the earlier).

    Holds at most one earlier frame. A frame is chosen at most once; a target whose nearest frame was already
    chosen for an earlier target is skipped. ``step=None`` passes every frame through.
    """

    _EPS = 1e-6

    def __init__(self, step: float | None) -> None:
        self.step = step
        self.k = 0
        self.prev: tuple[av.VideoFrame, float, int] | None = None
        self.prev_chosen = False

    def push(self, frame: av.VideoFrame, t: float, src: int) -> Iterator[tuple[av.VideoFrame, float, int]]:
        if self.step is None:
            yield frame, t, src
            return
        chosen_now = False
        while self.k * self.step <= t + self._EPS:
            target = self.k * self.step
            if self.prev is not None and (target - self.prev[1]) <= (t - target) + self._EPS:
                if not self.prev_chosen:
                    yield self.prev
                    self.prev_chosen = True
            elif not chosen_now:
                yield frame, t, src
                chosen_now = True
            self.k += 1
        self.prev, self.prev_chosen = (frame, t, src), chosen_now

    def finish(self, half_interval: float) -> Iterator[tuple[av.VideoFrame, float, int]]:
        """The last frame also stands for a target less than half a frame interval after it."""
        if self.step is not None and self.prev is not None and not self.prev_chosen:
            if self.k * self.step < self.prev[1] + half_interval - self._EPS:
                yield self.prev
                self.prev_chosen = True


def iter_frames(
    path: str | os.PathLike[str], fps: float | None = 5.0, *, max_side: int | None = None
) -> Iterator[DecodedFrame]:
    """Shorthand for ``iter(VideoReader(path, fps, max_side=max_side))`` (raises at the end on a bad video)."""
    return iter(VideoReader(path, fps, max_side=max_side))


def expected_count(duration_s: float, fps: float) -> int:
    """How many targets ``k / fps`` fall inside ``[0, duration_s)``: the row count a clean decode produces."""
    return int(math.ceil(duration_s * fps - 1e-9))

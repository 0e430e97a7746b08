"""Decode one audio track with PyAV, mono and resampled, with the time of its first sample on the video clock.

The video clock of ``extract.face.decode.VideoReader`` puts t = 0 at the first decoded video frame; an audio track
may start earlier or later than that (``start_s``). Files without video (wav) have t = 0 at their first sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class AudioDecodeError(RuntimeError):
    """The file has no decodable audio track; the message names the file."""


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples at ``sample_rate`` Hz; sample i is at ``start_s + i / sample_rate`` on the video clock."""

    samples: np.ndarray
    sample_rate: int
    start_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate)


def _video_origin_s(container: object) -> float | None:
    """pts * time_base of the first decoded video frame (the face path's t = 0), or None without video."""
    streams = container.streams.video  # type: ignore[attr-defined]
    if not streams:
        return None
    stream = streams[0]
    for frame in container.decode(stream):  # type: ignore[attr-defined]
        if frame.pts is not None and stream.time_base is not None:
            return float(frame.pts * stream.time_base)
        return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    return None


def _mono(frame: object) -> np.ndarray:
    """The mean over the channels of one planar float frame."""
    return frame.to_ndarray().reshape(-1, frame.samples).mean(axis=0)  # type: ignore[attr-defined]


def read_audio(path: str | Path, sample_rate: int = 16000) -> DecodedAudio:
    """The first audio track of ``path`` as mono (the mean of its channels) float32 at ``sample_rate``, timed on
    the video clock."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            origin = _video_origin_s(container)
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path}: no audio track")
            stream = container.streams.audio[0]
            # keep the channels and average them here: FFmpeg's own stereo -> mono downmix adds L and R at
            # -3 dB each (a stereo file would read 3 dB louder than the same sound in a mono file)
            resampler = av.AudioResampler(format="fltp", rate=int(sample_rate))
            chunks: list[np.ndarray] = []
            first_s: float | None = None
            for frame in container.decode(stream):
                if first_s is None and frame.pts is not None and frame.time_base is not None:
                    first_s = float(frame.pts * frame.time_base)
                chunks += [_mono(out) for out in resampler.resample(frame)]
            chunks += [_mono(out) for out in resampler.resample(None)]
    except AudioDecodeError:
        raise
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise AudioDecodeError(f"{path}: cannot decode audio ({exc})") from exc
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
    if not len(samples):
        raise AudioDecodeError(f"{path}: the audio track holds no samples")
    start = (first_s or 0.0) - (origin if origin is not None else (first_s or 0.0))
    return DecodedAudio(samples=samples, sample_rate=int(sample_rate), start_s=float(start))

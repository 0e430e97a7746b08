"""Decoding audio: a wav (resampled, downmixed), a video's AAC track, and the audio clock against the video clock
on a clip whose audio starts a known 0.5 s after its first video frame; the extractor's windows on that clock."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from extract.audio.decode import AudioDecodeError, read_audio
from extract.audio.extractor import AudioConfig, AudioFeatureExtractor
from extract.datasets.base import Item
from extract.face.decode import VideoReader
from extract.fixtures.video import AUDIO_RATE, tone, write_video

OFFSET_S = 0.5
FPS = 30.0


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM wav with the stdlib; ``samples`` (n,) mono or (n, channels)."""
    data = np.atleast_2d(samples.T).T if samples.ndim == 1 else samples
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(data, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / rate)[spec.argmax()])


def test_wav_is_resampled_and_downmixed(tmp_path: Path) -> None:
    t = np.arange(22050) / 22050.0
    left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 440 * t)
    path = write_wav(tmp_path / "a.wav", np.stack([left, right], axis=1), 22050)
    audio = read_audio(path, sample_rate=16000)
    assert audio.sample_rate == 16000 and audio.start_s == 0.0 and audio.samples.dtype == np.float32
    assert abs(len(audio.samples) - 16000) <= 32  # 1 s, give or take the resampler's flush
    assert abs(peak_hz(audio.samples, 16000) - 440) < 2
    assert 0.28 < np.abs(audio.samples[1000:-1000]).max() < 0.32  # mono = the mean of the two channels


def test_video_audio_track_and_bad_files(tmp_path: Path) -> None:
    frames = [np.full((32, 32, 3), 100, np.uint8)] * 15
    clip = write_video(tmp_path / "v.mp4", frames, size=(32, 32), fps=FPS, audio=tone(0.5, 880.0, 0.3))
    audio = read_audio(clip)
    assert abs(audio.start_s) < 1e-6 and abs(audio.duration_s - 0.5) < 0.05
    assert abs(peak_hz(audio.samples, 16000) - 880) < 4
    silent = write_video(tmp_path / "silent.mp4", frames, size=(32, 32), fps=FPS)
    with pytest.raises(AudioDecodeError, match=r"silent\.mp4: no audio track"):
        read_audio(silent)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav at all" * 10)
    with pytest.raises(AudioDecodeError, match=r"junk\.wav: cannot decode audio") as info:
        read_audio(junk)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def offset_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of video, dark except frames 1.5-2.5 s (bright); 2 s of audio starting 0.5 s after the first frame,
    silent for its first 1 s then a loud tone: on the video clock the sound is on exactly when the picture is
    bright (1.5-2.5 s)."""
    frames = [np.full((32, 32, 3), 230 if 45 <= i < 75 else 20, np.uint8) for i in range(90)]
    signal = np.concatenate([np.zeros(AUDIO_RATE, np.float32), tone(1.0, 600.0, 0.5)])
    return write_video(tmp_path_factory.mktemp("offset") / "offset.mp4", frames, size=(32, 32), fps=FPS,
                       audio=signal, audio_offset_s=OFFSET_S)


def test_audio_clock_matches_the_video_clock(offset_clip: Path) -> None:
    audio = read_audio(offset_clip)
    # AAC adds one priming frame (1024 samples at 48 kHz) before the first sample: the track's first decoded
    # sample is that much early, and its content says where the written samples really begin.
    assert OFFSET_S - 1024 / AUDIO_RATE - 2e-3 < audio.start_s <= OFFSET_S + 1e-3
    loud = np.flatnonzero(np.abs(audio.samples) > 0.1)
    onset_s, offset_s = audio.start_s + loud[0] / audio.sample_rate, audio.start_s + loud[-1] / audio.sample_rate
    video = [(f.t_s, float(f.image.mean())) for f in VideoReader(offset_clip, fps=None)]
    bright = [t for t, level in video if level > 120]
    assert abs(onset_s - 1.5) < 3e-3 and abs(bright[0] - 1.5) < 1e-3  # sound and picture start together
    assert abs(offset_s - 2.5) < 3e-3 and abs(bright[-1] + 1 / FPS - 2.5) < 1e-3


def test_feature_windows_land_on_the_face_clock(offset_clip: Path) -> None:
    ex = AudioFeatureExtractor(AudioConfig(window_s=0.5, step_s=0.5, n_mels=32))
    item = Item(key="x/offset", dataset="x", subject="01", session=1, trial="1", labels={"emotion": 0},
                sources={"video": str(offset_clip), "audio": str(offset_clip)})
    rows = ex.extract(None, item)  # type: ignore[arg-type]  (the audio extractor reads only the item)
    np.testing.assert_allclose(rows.t_start_s, np.arange(5) * 0.5)  # windows from the first video frame
    assert rows.quality["no_audio"].tolist() == [True, False, False, False, False]  # no audio before ~0.48 s
    level = np.nan_to_num(rows.embeddings[:, :32].max(axis=1), nan=-200.0)  # the loudest band's mean dB
    loud = level > -40.0
    assert loud.tolist() == [False, False, False, True, True]  # [1.5, 2.0) and [2.0, 2.5): the bright frames
    assert rows.embeddings.shape[1] == 2 * 32 and rows.meta["audio_start_s"] == pytest.approx(OFFSET_S, abs=0.03)

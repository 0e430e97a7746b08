"""Face path throughput and memory: the batched streaming pipeline against a naive per-frame loop.

1. A generated video (default 10 s, 50 fps, 720x576, H.264) with a real face (skimage's astronaut) moving
   across a textured background. Both paths take 5 fps from it:
   - pipeline: ``FacePipeline`` — streaming decode (only selected frames converted to RGB) in a background
     thread, detection in batches of ``--batch``, subject tracking, one batched warp per batch;
   - naive: decode every frame into a list, pick every (reported fps / 5)-th, detect one frame at a time,
     estimate + warp one face at a time.
   ``FaceConfig`` defaults cap the batch at 4 on the CPU (``--cpu-batch``; 0 lifts the cap).
   Per-stage frames/s (frames taken at 5 fps per second of that stage), detector forward calls per frame and
   the wall time are printed side by side with the pipeline/naive ratio. ``--detectors`` picks the detectors
   (``retinaface-mnet`` runs with random weights: a speed measurement only, no faces are expected).
2. Memory: peak RSS of a fresh process that streams a 10 s and a ``--long-seconds`` video through
   ``VideoReader`` at 5 fps (flat: it does not grow with the length), and of one that decodes the 10 s video
   into a list as the naive loop does.

``cpu_s_per_frame`` (user + system CPU seconds of the process per frame) is the number to compare on a shared
machine: wall-clock frames/s move with whatever else runs; ``--threads 1`` makes it steadier still.

Usage: python benchmarks/face_bench.py [--seconds 10] [--long-seconds 60] [--batch 16] [--device cpu]
       [--detectors mtcnn,retinaface-mnet] [--threads N] [--keep DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FPS_SOURCE = 50
FPS_TAKE = 5.0
SIZE = (720, 576)  # width, height


def make_video(path: Path, seconds: float, fps: int = FPS_SOURCE, size: tuple[int, int] = SIZE) -> Path:
    """A textured background with the astronaut's head (about 190x210 px) gliding across it."""
    import av
    from skimage import data

    w, h = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    background = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (w + h))], axis=-1)
    background = (background + rng.integers(0, 40, (h, w, 3))).clip(0, 255).astype(np.uint8)
    head = data.astronaut()[20:230, 130:320]  # the face with some hair and shoulders
    hh, hw = head.shape[:2]
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "g": "50"}
        stream.time_base = Fraction(1, 90000)
        for i in range(n):
            t = i / fps
            x = int((w - hw) * (0.5 + 0.45 * np.sin(2 * np.pi * t / 8.0)))
            y = int((h - hh) * (0.5 + 0.3 * np.sin(2 * np.pi * t / 5.0)))
            frame = background.copy()
            frame[y : y + hh, x : x + hw] = head
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = int(round(t * 90000))
            vf.time_base = stream.time_base
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_pipeline(
    video: Path, detector_name: str, batch: int, device: str, cpu_batch: int | None = None
) -> dict[str, float]:
    from extract.face.detectors import create_detector
    from extract.face.pipeline import FaceConfig, FacePipeline

    detector = _detector(create_detector, detector_name, device)
    _warm_up(detector)
    config = FaceConfig(
        fps=FPS_TAKE, detector=detector_name, detector_batch=batch, detector_batch_cpu=cpu_batch
    )
    pipe = FacePipeline(detector, config)
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    n = found = 0
    for b in pipe.video_batches(video):
        n += len(b)
        found += int(b.face_found.sum())
    wall = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    s = pipe.stats
    return {
        "batch": pipe.detector_batch,
        "frames": n,
        "faces": found,
        "decode_fps": n / s.decode_s,
        "detect_fps": n / s.detect_s,
        "align_fps": n / s.align_s if s.align_s else float("nan"),
        "wall_fps": n / wall,
        "forward_calls_per_frame": s.forward_calls / n,
        "cpu_s_per_frame": cpu / n,
        "wall_s": wall,
    }


def run_naive(video: Path, detector_name: str, device: str) -> dict[str, float]:
    import av

    from extract.face.align import AlignConfig, align_faces
    from extract.face.detectors import create_detector

    detector = _detector(create_detector, detector_name, device)
    _warm_up(detector)
    cpu0 = _cpu_s()
    t_start = time.perf_counter()
    # Decode everything into memory; trust the reported rate to pick frames.
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        reported = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    step = int(round(reported / FPS_TAKE))
    picked = frames[::step]
    t_decoded = time.perf_counter()
    dets = [detector.detect([img])[0] for img in picked]
    t_detected = time.perf_counter()
    cfg = AlignConfig()
    crops = 0
    for img, d in zip(picked, dets, strict=True):
        if len(d):
            align_faces([img], d.landmarks[:1], config=cfg)  # largest-score face, one at a time
            crops += 1
    t_aligned = time.perf_counter()
    n = len(picked)
    return {
        "frames": n,
        "faces": crops,
        "decode_fps": n / (t_decoded - t_start),
        "detect_fps": n / (t_detected - t_decoded),
        "align_fps": n / (t_aligned - t_detected),
        "wall_fps": n / (t_aligned - t_start),
        "forward_calls_per_frame": detector.forward_calls / n,
        "cpu_s_per_frame": (_cpu_s() - cpu0) / n,
        "wall_s": t_aligned - t_start,
    }


def _cpu_s() -> float:
    """User + system CPU seconds of this process (all threads): less sensitive to other load than wall time."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _detector(create, name: str, device: str):
    if name.startswith("retinaface"):
        # Random weights (no download here): speed only. A high threshold keeps NMS at a realistic size.
        return create(name, device=device, pretrained=False, score_threshold=0.999)
    return create(name, device=device)


def _warm_up(detector) -> None:
    detector.detect(np.zeros((1, SIZE[1], SIZE[0], 3), np.uint8))
    detector.reset_counters()


# VmHWM (peak resident set of this process image) rather than ru_maxrss, which Linux carries over from the
# parent across fork + exec.
_RSS_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
mode, path = sys.argv[1], sys.argv[2]
n = 0
if mode == "stream":
    from extract.face.decode import VideoReader
    for f in VideoReader(path, fps=5.0):
        n += 1
else:
    import av
    with av.open(path) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    n = len(frames)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(n, int(hwm.split()[1]) / 1024)
"""


def peak_rss_mb(mode: str, video: Path) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT.format(root=str(ROOT)), mode, str(video)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), float(out[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--long-seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=16, help="FaceConfig.detector_batch")
    parser.add_argument(
        "--cpu-batch", type=int, default=4, help="FaceConfig.detector_batch_cpu, the cap on the CPU (0: none)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detectors", default="mtcnn,retinaface-mnet")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--keep", type=Path, default=None, help="write the videos here and keep them")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="face_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"face_bench: torch {torch.__version__}, device {args.device}, {os.cpu_count()} CPU(s), "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    t0 = time.perf_counter()
    short = make_video(workdir / f"face_{int(args.seconds)}s.mp4", args.seconds)
    print(
        f"generated {short.name}: {args.seconds:g} s, {FPS_SOURCE} fps, {SIZE[0]}x{SIZE[1]} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    report: dict[str, object] = {
        "seconds": args.seconds,
        "batch": args.batch,
        "cpu_batch": args.cpu_batch,
        "device": args.device,
        "threads": torch.get_num_threads(),
    }

    keys = [
        "frames",
        "faces",
        "decode_fps",
        "detect_fps",
        "align_fps",
        "wall_fps",
        "forward_calls_per_frame",
        "cpu_s_per_frame",
    ]
    for name in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        fast = run_pipeline(short, name, args.batch, args.device, args.cpu_batch or None)
        slow = run_naive(short, name, args.device)
        report[name] = {"pipeline": fast, "naive": slow}
        print(
            f"\n[{name}] {fast['frames']} frames taken at {FPS_TAKE:g} fps; pipeline batch {fast['batch']:g} "
            f"(detector_batch {args.batch}, CPU cap {args.cpu_batch or 'none'})"
        )
        print(f"{'':<26}{'pipeline':>12}{'naive':>12}{'ratio':>10}")
        for key in keys:
            a, b = fast[key], slow[key]
            ratio = a / b if b else float("nan")
            print(f"{key:<26}{a:>12.3f}{b:>12.3f}{ratio:>10.2f}")

    long_video = make_video(workdir / f"face_{int(args.long_seconds)}s.mp4", args.long_seconds)
    n_short, rss_short = peak_rss_mb("stream", short)
    n_long, rss_long = peak_rss_mb("stream", long_video)
    n_all, rss_all = peak_rss_mb("list", short)
    report["memory_mb"] = {
        "stream_short": rss_short,
        "stream_long": rss_long,
        "decode_all_short": rss_all,
    }
    print("\npeak RSS (fresh process)")
    print(f"  streaming VideoReader, {args.seconds:g} s video  -> {n_short} frames: {rss_short:8.1f} MiB")
    print(f"  streaming VideoReader, {args.long_seconds:g} s video -> {n_long} frames: {rss_long:8.1f} MiB")
    print(f"  naive decode-all list, {args.seconds:g} s video  -> {n_all} frames: {rss_all:8.1f} MiB")
    print(f"  long/short streaming ratio: {rss_long / rss_short:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.keep is None:
        for p in workdir.iterdir():
            p.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

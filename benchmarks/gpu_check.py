"""GPU extraction measured in one run: backbone-only, detector-only and end-to-end ``pipeline extract`` throughput.

Nothing is downloaded: the backbone is a **ViT-L/14-shaped CLIP vision tower with random weights** (speed does not
depend on the weights) saved as a local folder and loaded as ``local:DIR``; the detector is RetinaFace-R50 with a
random checkpoint in the Pytorch_Retinaface layout. Sections, each printed as it finishes and collected in one JSON:

1. backbone: images/s through ``Backbone.embed`` (uint8 HWC in, preprocessing and host->device copy included) at
   the automatic batch size, per dtype (fp16, bf16; fp32 on the CPU) with and without ``torch.compile``, against
   the FLOP ceiling (``FLOPS_PER_IMAGE`` per 224x224 image / the device's dense peak), with peak GPU memory;
2. detector: frames/s of RetinaFace-R50 at DEAP's 720x576, batched, at its own resolution;
3. end to end: ``python -m pipelines.cli extract`` on a fixture DEAP face dataset with both models, per dtype,
   frames/s of the whole process (decode, detect, align, embed, commit), its peak RSS.

On a machine without CUDA the same code runs on the CPU with small sizes and says so on its first line: the CPU
numbers stand beside the GPU ones when both are run. ``benchmarks/gpu_check.sh`` wraps this with ``pytest -m gpu``
and ``nvidia-smi`` utilisation sampling.

Usage: python benchmarks/gpu_check.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLOPS_PER_IMAGE = 162e9  # ViT-L/14 at 224x224, measured by benchmarks/backbone_bench.py (FlopCounterMode)
DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def device_peak_flops(name: str) -> float | None:
    """Dense bf16/fp16 tensor-core peak of a known GPU model (None when unknown or on the CPU)."""
    return next((flops for key, flops in DENSE_BF16_PEAK.items() if key in name), None)


def save_vit_l14(folder: Path) -> Path:
    """A random-init CLIP ViT-L/14 vision tower + a standard CLIP image processor, as ``save_pretrained`` writes."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              patch_size=14, image_size=224, projection_dim=768)
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gpu_mib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def bench_backbone(model_dir: Path, device: str, dtype: str, compile: bool, n_images: int) -> dict[str, Any]:
    """Images/s of ``embed`` on ``n_images`` 224x224 uint8 images at the automatic batch size (after a warm-up)."""
    from extract.backbones import create_backbone

    images = np.random.default_rng(0).integers(0, 256, size=(n_images, 224, 224, 3), dtype=np.uint8)
    reset_peak(device)
    backbone = create_backbone(f"local:{model_dir}", device=device, dtype=dtype, compile=compile)
    start = time.perf_counter()
    backbone.embed(images[: backbone.batch_size])  # warm-up (and compilation)
    synchronize(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    backbone.embed(images)
    synchronize(device)
    elapsed = time.perf_counter() - start
    ips = n_images / elapsed
    peak = device_peak_flops(torch.cuda.get_device_name(0)) if device.startswith("cuda") else None
    return {
        "dtype": dtype, "compile": compile, "batch_size": backbone.batch_size, "images": n_images,
        "images_per_s": round(ips, 1), "warmup_s": round(warmup_s, 1),
        "achieved_tflops": round(ips * FLOPS_PER_IMAGE / 1e12, 2),
        "ceiling_images_per_s": round(peak / FLOPS_PER_IMAGE) if peak else None,
        "fraction_of_ceiling": round(ips * FLOPS_PER_IMAGE / peak, 3) if peak else None,
        "peak_gpu_mib": peak_gpu_mib(device),
    }


def bench_detector(checkpoint: Path, device: str, n_frames: int, batch: int) -> dict[str, Any]:
    """Frames/s of RetinaFace-R50 on DEAP-sized (720x576) frames, ``batch`` frames per call."""
    from extract.face.detectors import create_detector

    frames = np.random.default_rng(1).integers(0, 256, size=(n_frames, 576, 720, 3), dtype=np.uint8)
    reset_peak(device)
    detector = create_detector("retinaface-r50", device=device, weights=str(checkpoint))
    detector.detect(list(frames[:batch]))
    synchronize(device)
    start = time.perf_counter()
    for i in range(0, n_frames, batch):
        detector.detect(list(frames[i:i + batch]))
    synchronize(device)
    elapsed = time.perf_counter() - start
    return {"frames": n_frames, "batch": batch, "frames_per_s": round(n_frames / elapsed, 1),
            "peak_gpu_mib": peak_gpu_mib(device)}


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline {' '.join(args[:1])} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return elapsed, proc.stdout + proc.stderr


def count_rows(cache: Path) -> int:
    from store import open_store

    stores = [p for p in sorted((cache / "deap").glob("face-*")) if p.suffix in (".zarr", ".h5")]
    return sum(len(open_store(p).read().rows) for p in stores)


def bench_end_to_end(model_dir: Path, checkpoint: Path, work: Path, gpu: str, dtype: str,
                     subjects: int, trials: int, seconds: float) -> dict[str, Any]:
    """Frames/s of the whole ``pipeline extract`` process (python start, model load, decode, detect, embed, commit)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    data = work / "deap"
    if not data.exists():
        run_cli(["demo-data", "deap", "--out", str(data), "--subjects", str(subjects), "--trials", str(trials),
                 "--seconds", str(seconds), "--seed", "0"], env)
    cache = work / f"cache-{dtype}"
    args = ["extract", "--dataset", "deap", "--root", str(data), "--modality", "face", "--detector", "retinaface-r50",
            "--backbone", f"local:{model_dir}", "--fps", "5", "--gpu", gpu, "--out", str(cache), "--no-progress",
            "--set", f"face_options.detector_options.weights={checkpoint}",
            "--set", "face_options.min_score=0.5", "--set", f"face_options.compute_dtype={dtype}"]
    elapsed, _ = run_cli(args, env)
    rows = count_rows(cache)
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"dtype": dtype, "frames": rows, "seconds": round(elapsed, 1), "frames_per_s": round(rows / elapsed, 1),
            "peak_rss_mib_children": round(child)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--quick", action="store_true", help="smallest sizes (a smoke run of every section)")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = "cuda:0" if cuda else "cpu"
    gpu_name = torch.cuda.get_device_name(0) if cuda else None
    print(f"gpu_check: {'GPU mode on ' + gpu_name if cuda else 'CPU mode: no CUDA device, small sizes'}; "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, {platform.node()}", flush=True)
    big = cuda and not args.quick
    dtypes = ["float16", "bfloat16"] if cuda else ["float32"]
    report: dict[str, Any] = {"mode": "gpu" if cuda else "cpu", "gpu": gpu_name, "torch": torch.__version__,
                              "cpus": os.cpu_count(), "backbone": [], "detector": None, "end_to_end": []}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:  # noqa: SIM117
        work = Path(tmp)
        model_dir = save_vit_l14(work / "clip-vit-l14-random")
        from extract.face.detectors.retinaface import save_random_checkpoint

        checkpoint = save_random_checkpoint(work / "Resnet50_Final.pth", backbone="resnet50")

        for dtype in dtypes:
            for compile in ([False, True] if cuda else [False]):
                try:
                    result = bench_backbone(model_dir, device, dtype, compile, 4096 if big else 8)
                except Exception as exc:  # a failing variant is a finding to report, not a reason to stop
                    result = {"dtype": dtype, "compile": compile, "error": f"{type(exc).__name__}: {exc}"}
                report["backbone"].append(result)
                print("backbone ViT-L/14 (random):", json.dumps(result), flush=True)

        try:
            report["detector"] = bench_detector(checkpoint, device, 512 if big else 4, 32 if cuda else 2)
        except Exception as exc:
            report["detector"] = {"error": f"{type(exc).__name__}: {exc}"}
        print("detector RetinaFace-R50 (random) 720x576:", json.dumps(report["detector"]), flush=True)

        sizes = (6, 10, 30.0) if big else (1, 2, 2.0)  # DEAP fixtures lack the last trial video
        for dtype in dtypes:
            try:
                result = bench_end_to_end(model_dir, checkpoint, work, "0" if cuda else "-1", dtype, *sizes)
            except Exception as exc:
                result = {"dtype": dtype, "error": f"{type(exc).__name__}: {exc}"}
            report["end_to_end"].append(result)
            print("end to end pipeline extract:", json.dumps(result), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu_check-{report['mode']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_check: wrote {path}", flush=True)


if __name__ == "__main__":
    main()

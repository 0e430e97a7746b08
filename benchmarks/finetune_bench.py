"""Fine-tuning throughput: epochs fed from a crop store against epochs that decode and detect the videos again.

One run, same videos, same face path, same network and optimiser, side by side:

- crop store: ``pipeline extract --modality face_crops`` once (timed separately, it is paid once), then each epoch
  reads the store (``fuse.finetune.data.load_crops``) and trains on every crop;
- videos: each epoch runs the face-crop extractor on every video (PyAV decode, MTCNN detection, tracking,
  5-point alignment: what ``pipeline finetune`` would cost without a crop store) and trains on those crops.

The data are the DEAP fixture's face videos (synthetic faces MTCNN finds, ``--subjects`` x ``--trials`` clips of
``--seconds`` s at 25 fps, sampled at ``--fps``). Training is ``fuse.finetune``'s own step (``to_pixels``, the
net, AdamW, CE) on ``--backbone`` (default tiny-resnet: the cheapest net, so the ratio shows what the data path
costs; a ResNet-50 on a CPU is dominated by its own compute). Printed: crops/s of each, the ratio, the same for
the data path alone (training time taken out), the one-off store build. The numbers go to ``benchmarks/results/finetune_bench.json``.

Usage: python benchmarks/finetune_bench.py [--subjects 2] [--trials 3] [--seconds 3] [--fps 5] [--epochs 2]
       [--backbone tiny-resnet] [--crop-size 112] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "finetune_bench.json"
FACE_OPTIONS = {"detector_options": {"min_face_size": 40}}


def train_epoch(net, opt, crops: np.ndarray, y: np.ndarray, batch: int, rng: np.random.Generator) -> None:  # noqa: ANN001
    """One epoch of fuse.finetune's step over ``crops`` (shuffled batches)."""
    import torch

    from fuse.finetune.augment import to_pixels

    net.train()
    order = rng.permutation(len(crops))
    b = net.backbone
    for s in range(0, len(order), batch):
        idx = order[s: s + batch]
        if len(idx) < 2:
            continue
        x = to_pixels(torch.from_numpy(crops[idx]), b.image_size, b.mean, b.std)
        loss = torch.nn.functional.cross_entropy(net(x), torch.from_numpy(y[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--backbone", default="tiny-resnet")
    ap.add_argument("--crop-size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)  # 2+ oversubscribes a shared 2-core machine
    args = ap.parse_args()

    import torch

    from extract.base import EXTRACTORS
    from extract.datasets import create_dataset
    from extract.fixtures.deap import write_deap
    from fuse.finetune.backbones import FinetuneNet, create_adapter
    from fuse.finetune.data import load_crops
    from pipelines.jobs import ExtractConfig, run_extract

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="finetune-bench-"))
    root = write_deap(tmp / "DEAP", subjects=args.subjects, trials=args.trials, seconds=args.seconds, seed=1,
                      frame_size=(320, 256), fps=25.0)
    t0 = time.perf_counter()
    result = run_extract(ExtractConfig(dataset="deap", root=root, out_dir=tmp / "cache", modality="face_crops",
                                       detector="mtcnn", fps=args.fps, crop_size=args.crop_size,
                                       face_options=FACE_OPTIONS, gpu=(-1,), progress=False))
    build_s = time.perf_counter() - t0
    store = result.store("face_crops").path

    def fresh_net():  # noqa: ANN202
        torch.manual_seed(0)
        net = FinetuneNet(create_adapter(args.backbone, "none"), 2)
        return net, torch.optim.AdamW(net.param_groups(1e-4, 1e-3, 0.05))

    # crop store: read the store and train, every epoch
    net, opt = fresh_net()
    rng = np.random.default_rng(0)
    t0, n_store, train_store_s = time.perf_counter(), 0, 0.0
    for _ in range(args.epochs):
        data = load_crops(store)
        y = (data.rows["label_valence"].to_numpy(float) >= 5).astype(np.int64)
        t1 = time.perf_counter()
        train_epoch(net, opt, data.crops, y, args.batch, rng)
        train_store_s += time.perf_counter() - t1
        n_store += len(data.crops)
    store_s = time.perf_counter() - t0

    # videos: decode, detect, track and align every video again, then train, every epoch
    reader = create_dataset("deap", root)
    items = [it for it in reader.items() if "video" in it.sources]
    ex = EXTRACTORS.create("face_crops", detector="mtcnn", fps=args.fps, crop_size=args.crop_size,
                           device="cpu", **FACE_OPTIONS)
    net, opt = fresh_net()
    rng = np.random.default_rng(0)
    t0, n_video, train_video_s = time.perf_counter(), 0, 0.0
    for _ in range(args.epochs):
        crops, labels = [], []
        for it in items:
            rows = ex.extract(reader, it)
            found = rows.quality["face_found"].astype(bool)
            side = args.crop_size
            crops.append(rows.embeddings[found].reshape(-1, side, side, 3))
            labels.append(np.full(int(found.sum()), int(float(it.labels["valence"]) >= 5)))
        c, y = np.concatenate(crops), np.concatenate(labels).astype(np.int64)
        t1 = time.perf_counter()
        train_epoch(net, opt, c, y, args.batch, rng)
        train_video_s += time.perf_counter() - t1
        n_video += len(c)
    video_s = time.perf_counter() - t0
    ex.close()

    out = {
        "videos": len(items), "epochs": args.epochs, "backbone": args.backbone, "crop_size": args.crop_size,
        "threads": args.threads, "crops_per_epoch_store": n_store // args.epochs,
        "crops_per_epoch_videos": n_video // args.epochs, "store_build_s": round(build_s, 2),
        "store_crops_per_s": round(n_store / store_s, 1), "video_crops_per_s": round(n_video / video_s, 1),
    }
    out["ratio"] = round(out["store_crops_per_s"] / out["video_crops_per_s"], 1)
    out["store_data_crops_per_s"] = round(n_store / max(store_s - train_store_s, 1e-9), 1)
    out["video_data_crops_per_s"] = round(n_video / max(video_s - train_video_s, 1e-9), 1)
    out["data_ratio"] = round(out["store_data_crops_per_s"] / out["video_data_crops_per_s"], 1)
    print(f"{len(items)} videos, {out['crops_per_epoch_store']} face crops per epoch ({args.crop_size} px), "
          f"{args.backbone}, {args.epochs} epochs, {args.threads} torch threads")
    print(f"  crop store : {out['store_crops_per_s']:8.1f} crops/s  (store built once in {build_s:.1f} s)")
    print(f"  videos     : {out['video_crops_per_s']:8.1f} crops/s  (decode + MTCNN + align every epoch)")
    print(f"  ratio      : {out['ratio']:.1f}x")
    print(f"  data path alone (training time taken out): store {out['store_data_crops_per_s']:.1f} vs videos "
          f"{out['video_data_crops_per_s']:.1f} crops/s = {out['data_ratio']:.1f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Store write and full-read throughput against plain numpy ``np.save``/``np.load`` of the same array.

    python benchmarks/store_bench.py [--rows 262144] [--dim 768] [--item-rows 1024] [--repeats 5]

Writes ``rows x dim`` float16 (as items of ``item-rows`` rows, the way an extractor hands them over) through
``create_store`` for each backend, reads everything back with ``open_store(...).read()``, and times ``np.save`` /
``np.load`` of the same array in the same run, interleaved, in a temporary directory. Each number is the best of
``--repeats`` (the machine is shared; the best run is the least disturbed one). Ratios are numpy time / store
time: 1.0 = as fast as numpy, the target is >= 0.5.

Two write comparisons: the store's default is ``durable=True`` (every segment fsynced before it is published,
so a power cut cannot leave a published-but-empty segment), which is compared with ``np.save`` + ``fsync``;
``durable=False`` (still safe against process kills, the crash the tests exercise) is compared with plain
``np.save``.

Then each (non-durable) store is compacted (``compact_store``: segments -> one standard hierarchy, durable) and
read again: ``compact`` prints the compaction's own MiB/s, ``read f32 compacted`` the read of the compacted store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import compact_store, create_store, open_store  # noqa: E402
from store.checksums import chunk_checksums  # noqa: E402
from store.schema import ItemRows, Manifest  # noqa: E402


def _best(times: dict[str, list[float]], name: str, fn: Callable[[], object]) -> object:
    t0 = time.perf_counter()
    out = fn()
    times.setdefault(name, []).append(time.perf_counter() - t0)
    return out


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunked_write(path: Path, arr: np.ndarray, rows: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(arr).cast("B")
        step = rows * arr.shape[1] * arr.itemsize
        for off in range(0, len(view), step):
            os.pwrite(fd, view[off : off + step], off)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=262_144)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--item-rows", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backends", default="zarr,hdf5")
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    arr = rng.standard_normal((args.rows, args.dim), dtype=np.float32).astype(np.float16)
    manifest = Manifest(kind="face", dataset="bench", extractor="bench", extractor_version="1", dim=args.dim,
                        dtype="float16")
    items = []
    for i, lo in enumerate(range(0, args.rows, args.item_rows)):
        hi = min(lo + args.item_rows, args.rows)
        t = np.arange(hi - lo, dtype=np.float64) * 0.2
        items.append(ItemRows(key=f"bench/{i:06d}", embeddings=arr[lo:hi], subject=f"s{i % 32:02d}", session=1,
                              trial=f"{i:06d}", t_start_s=t, t_end_s=t + 0.2, labels={"valence": float(i % 9)},
                              quality={"face_found": np.ones(hi - lo, bool)}))
    backends = [b for b in args.backends.split(",") if b]
    mib = arr.nbytes / 2**20
    base = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
    times: dict[str, list[float]] = {}
    try:
        for rep in range(args.repeats):
            npy = base / f"a{rep}.npy"
            _best(times, "np.save", lambda npy=npy: np.save(npy, arr))
            _best(times, "np.load", lambda npy=npy: np.load(npy))
            _best(times, "np.load+astype(f32)", lambda npy=npy: np.load(npy).astype(np.float32))
            npy.unlink()
            _best(times, "np.save+fsync", lambda npy=npy: (np.save(npy, arr), _fsync(npy)))
            npy.unlink()
            # where the store's write time goes: the same bytes as chunk-sized positional writes, and checksums
            _best(times, "  chunked pwrite", lambda: _chunked_write(base / "raw.bin", arr, 1024))
            (base / "raw.bin").unlink()
            _best(times, "  checksums", lambda: chunk_checksums(arr, 1024))
            for backend in backends:
                for durable in (False, True):
                    path = base / f"{backend}-{rep}-{int(durable)}.store"

                    def write(path: Path = path, backend: str = backend, durable: bool = durable) -> None:
                        with create_store(path, manifest, backend=backend, durable=durable) as writer:
                            for item in items:
                                writer.write_item(item)

                    _best(times, f"{backend} write" + (" durable" if durable else ""), write)
                    if durable:
                        shutil.rmtree(path)
                        continue
                    data = _best(times, f"{backend} read f16",
                                 lambda path=path: open_store(path).read(dtype=None).embeddings)
                    if rep == 0 and not np.array_equal(data, arr):
                        raise SystemExit(f"{backend}: read back differs from what was written")
                    del data
                    _best(times, f"{backend} read f32", lambda path=path: open_store(path).read().embeddings)
                    _best(times, f"{backend} compact", lambda path=path: compact_store(path))
                    _best(times, f"{backend} read f32 compacted",
                          lambda path=path: open_store(path).read().embeddings)
                    shutil.rmtree(path)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    best = {k: min(v) for k, v in times.items()}
    print(f"store_bench: {args.rows} x {args.dim} float16 = {mib:.0f} MiB, items of {args.item_rows} rows, "
          f"best of {args.repeats}, {os.cpu_count()} CPUs")
    print(f"{'measurement':<24}{'seconds':>9}{'MiB/s':>9}   ratio vs numpy (numpy time / store time)")
    ref = {"write": "np.save", "write durable": "np.save+fsync", "read f16": "np.load",
           "read f32": "np.load+astype(f32)", "read f32 compacted": "np.load+astype(f32)"}
    ratios: dict[str, float] = {}
    for name in ("np.save", "np.save+fsync", "np.load", "np.load+astype(f32)", "  chunked pwrite", "  checksums"):
        print(f"{name:<24}{best[name]:>9.3f}{mib / best[name]:>9.0f}")
    for backend in backends:
        for what, against in ref.items():
            name = f"{backend} {what}"
            ratio = best[against] / best[name]
            ratios[name] = ratio
            print(f"{name:<24}{best[name]:>9.3f}{mib / best[name]:>9.0f}   {ratio:5.2f}x  (vs {against})")
    for backend in backends:
        name = f"{backend} compact"
        ratios[name + " MiB/s"] = mib / best[name]
        print(f"{name:<24}{best[name]:>9.3f}{mib / best[name]:>9.0f}   (segments -> one compacted hierarchy, "
              "durable)")
    targets = [f"{b} {w}" for b in backends for w in ("write durable", "read f32", "read f32 compacted")]
    ok = all(ratios[name] >= 0.5 for name in targets)
    print("target >= 0.5x (durable write, float32 reads):", "met" if ok else "NOT met")
    return ratios


if __name__ == "__main__":
    main()

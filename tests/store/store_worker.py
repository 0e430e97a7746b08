"""A child process for the crash and concurrency tests: writes ``worker_items`` into a store.

    python store_worker.py STORE BACKEND WRITER_ID START STOP STEP [--claim] [--segment-rows N] [--go FILE]

Prints ``ready`` once the store is open, so the parent can kill it while it writes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from store_testlib import make_manifest, worker_items  # noqa: E402

from store import create_store  # noqa: E402

N_ITEMS = 160


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("backend")
    ap.add_argument("writer_id")
    ap.add_argument("start", type=int)
    ap.add_argument("stop", type=int)
    ap.add_argument("step", type=int)
    ap.add_argument("--claim", action="store_true")
    ap.add_argument("--segment-rows", type=int, default=40)
    ap.add_argument("--go", default="", help="wait for this file to exist before writing (a start barrier)")
    args = ap.parse_args()
    items = worker_items(N_ITEMS)
    writer = create_store(args.store, make_manifest(dim=16), backend=args.backend, writer_id=args.writer_id,
                          chunk_rows=8, segment_rows=args.segment_rows)
    print("ready", flush=True)
    while args.go and not Path(args.go).exists():
        time.sleep(0.005)
    with writer:
        for item in items[args.start : args.stop : args.step]:
            if writer.status(item.key) == "done" or (args.claim and not writer.claim(item.key)):
                continue
            writer.write_item(item)
    print("finished", flush=True)


if __name__ == "__main__":
    main()

"""A child process for the compaction crash test: ``python compact_worker.py STORE`` compacts the store.

Prints ``ready`` once imported, so the parent can kill it while it compacts (or set ``MMER_STORE_CRASH_AT``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from store import compact_store  # noqa: E402

if __name__ == "__main__":
    print("ready", flush=True)
    compact_store(sys.argv[1])
    print("finished", flush=True)

"""Real processes: a writer SIGKILLed at random moments leaves a healthy store that a re-run completes to the
same rows as an uninterrupted run; two writers at once produce every row exactly once."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_testlib import assert_same, make_manifest, worker_items
from store_worker import N_ITEMS

from store import collect_garbage, create_store, open_store

WORKER = Path(__file__).with_name("store_worker.py")


def _spawn(path: Path, backend: str, writer_id: str, start: int = 0, stop: int = N_ITEMS, step: int = 1,
           *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(path), backend, writer_id, str(start), str(stop), str(step), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _reference(tmp: Path, backend: str) -> object:
    path = tmp / f"ref-{backend}.store"
    with create_store(path, make_manifest(dim=16), backend=backend, writer_id="ref", chunk_rows=8) as w:
        for item in worker_items(N_ITEMS):
            w.write_item(item)
    return open_store(path).read()


@pytest.mark.parametrize(("backend", "trials"), [("zarr", 3), ("hdf5", 2)])
def test_sigkill_at_random_moments_then_resume(tmp_path: Path, backend: str, trials: int) -> None:
    items = {it.key: it for it in worker_items(N_ITEMS)}
    reference = _reference(tmp_path, backend)
    rng = random.Random(1234)
    outcomes = []
    for trial in range(trials):
        path = tmp_path / f"crash{trial}.store"
        proc = _spawn(path, backend, "w1")
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # waits, and closes the pipes
        store = open_store(path)
        assert store.verify() == []
        done = store.items()
        outcomes.append(len(done))
        # no partial item: every committed item has all its rows, bit for bit
        for key, emb, rows in store.iter_items():
            want = items[key]
            assert len(rows) == want.n_rows and list(rows["row"]) == list(range(want.n_rows))
            assert (emb == want.embeddings.astype("float16").astype("float32")).all()
        # leftovers of the dead writer are garbage; gc takes them, the store stays healthy
        collect_garbage(path)
        assert not [p for p in (path / "segments").iterdir() if p.name.startswith(".")]
        assert open_store(path).verify() == []
        # re-running the same job finishes it (done items skipped) and equals an uninterrupted run
        with create_store(path, make_manifest(dim=16), backend=backend, writer_id="w1", chunk_rows=8) as w:
            for key, item in items.items():
                if w.status(key) != "done":
                    assert w.claim(key)  # the dead writer's claims are stale
                    w.write_item(item)
        assert_same(open_store(path).read(), reference)
    print(f"{backend}: items committed when killed: {outcomes}")


@pytest.mark.parametrize(("backend", "mode"), [("zarr", "claims"), ("hdf5", "disjoint")])
def test_two_processes_write_every_row_exactly_once(tmp_path: Path, backend: str, mode: str) -> None:
    path = tmp_path / "two.store"
    create_store(path, make_manifest(dim=16), backend=backend, chunk_rows=8).close()
    go = tmp_path / "go"
    if mode == "claims":  # both walk every item; claims decide who does what
        procs = [_spawn(path, backend, w, 0, N_ITEMS, 1, "--claim", "--go", str(go)) for w in ("wa", "wb")]
    else:  # a static split: evens and odds
        procs = [_spawn(path, backend, w, i, N_ITEMS, 2, "--go", str(go)) for i, w in enumerate(("wa", "wb"))]
    for proc in procs:  # start both at the same moment
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = open_store(path)
    assert store.verify() == [] and store.duplicates() == {}
    assert len(store.items()) == N_ITEMS
    writers = {seg.split("-")[0] for seg in store._segments}
    assert writers == {"wa", "wb"}, writers
    assert_same(store.read(), _reference(tmp_path, backend))
    assert not list((path / "claims").glob("*.claim"))

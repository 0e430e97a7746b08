"""Runners: the same ``WorkerContext.process`` driven serially, by local processes, or by a dask cluster.

Work comes in groups of items of one store (``StoreTask.items_per_call``: one item, or a few small ones the
extractor batches together); every group yields one ``ItemOutcome`` per item. Every runner keeps at most
``max_in_flight`` groups submitted at once (memory does not grow with the dataset), hands
each ``ItemOutcome`` to ``on_outcome`` as it arrives, and stops submitting when ``on_outcome`` returns True
(``--fail-fast``); items already running still finish and commit.

``--workers N`` uses a ``concurrent.futures.ProcessPoolExecutor`` (spawn) whose initializer builds one
``WorkerContext`` per process: no scheduler, nanny or ports for the common one-machine case, and a crashed worker
surfaces as ``BrokenProcessPool`` at once. ``--scheduler`` uses dask.distributed (``pipelines.jobs.dask_runner``).

While an item runs, its rows so far reach ``on_rows`` (per frame batch, throttled): directly in a serial run,
through a process queue drained by a driver thread with ``--workers``, as dask events with ``--scheduler``.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
import queue as queue_module
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from extract.datasets.base import Item
from pipelines.jobs.plan import import_plugins
from pipelines.jobs.worker import ItemOutcome, StoreTask, WorkerContext, limit_threads

log = logging.getLogger(__name__)

Work = tuple[StoreTask, list[Item]]  # a group of items of one store (one item unless the extractor batches items)
OnOutcome = Callable[[ItemOutcome], bool]  # returns True to stop submitting
OnCommit = Callable[[dict[str, float]], None]  # seconds of each store's final commit, per worker
OnRows = Callable[[str, str, int, "int | None"], None]  # rows of a running item: store, item key, rows, expected

# -- serial ---------------------------------------------------------------------------------------------------------


def run_serial(work: Iterable[Work], ctx: WorkerContext, on_outcome: OnOutcome, on_commit: OnCommit,
               on_rows: OnRows | None = None) -> bool:
    """In-process, one group at a time (the face extractor still overlaps decode with detect/embed inside)."""
    if on_rows is not None:
        ctx.rows_sink = on_rows
    stopped = False
    for task, items in work:
        if report(ctx.process_many(task, items), on_outcome):
            stopped = True
            break
    on_commit(ctx.close())
    return stopped


def report(outcomes: list[ItemOutcome], on_outcome: OnOutcome) -> bool:
    """Hand every outcome of a group to ``on_outcome``; True when it asked to stop at any of them."""
    stop = False
    for outcome in outcomes:
        stop = on_outcome(outcome) or stop
    return stop


# -- local processes ------------------------------------------------------------------------------------------------

_POOL_CTX: WorkerContext | None = None
_POOL_BARRIER: Any = None
BARRIER_TIMEOUT_S = 600.0


def _queue_sink(rows_queue: Any) -> Callable[[str, str, int, int | None], None]:
    """A worker's rows sink: put each count on the driver's queue, never blocking the work."""
    def put(store: str, key: str, rows: int, expected: int | None) -> None:
        try:
            rows_queue.put_nowait((store, key, rows, expected))
        except (queue_module.Full, ValueError, OSError):  # progress is best effort
            pass

    return put


def _pool_init(gpus: tuple[int, ...], counter: Any, barrier: Any, n_workers: int, plugins: tuple[str, ...],
               rows_queue: Any = None) -> None:
    global _POOL_CTX, _POOL_BARRIER
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _POOL_BARRIER = barrier
    limit_threads(n_workers)
    import_plugins(plugins)
    _POOL_CTX = WorkerContext(gpu=gpus[index % len(gpus)], name=f"w{index}",
                              rows_sink=_queue_sink(rows_queue) if rows_queue is not None else None)
    # Backstop if the pool is torn down without _pool_close (close is idempotent).
    multiprocessing.util.Finalize(None, _POOL_CTX.close, exitpriority=10)


def _pool_ready(tasks: list[StoreTask]) -> int:
    """Run once by each worker: build its models, then wait at the barrier until all are up (so n calls reach
    n different workers)."""
    assert _POOL_CTX is not None
    _POOL_CTX.prepare(tasks)
    _POOL_BARRIER.wait(BARRIER_TIMEOUT_S)
    return os.getpid()


def _pool_close() -> dict[str, float]:
    """Commit and close this worker's writers; the barrier again makes n calls reach n different workers."""
    assert _POOL_CTX is not None
    commit_s = _POOL_CTX.close()
    _POOL_BARRIER.wait(BARRIER_TIMEOUT_S)
    return commit_s


def _pool_process(task: StoreTask, items: list[Item]) -> list[ItemOutcome]:
    assert _POOL_CTX is not None, "worker context not initialised"
    return _POOL_CTX.process_many(task, items)


def run_processes(work: Iterable[Work], n_workers: int, gpus: tuple[int, ...], plugins: tuple[str, ...],
                  on_outcome: OnOutcome, on_commit: OnCommit, tasks: list[StoreTask] | None = None,
                  max_in_flight: int | None = None, on_rows: OnRows | None = None) -> bool:
    mp = multiprocessing.get_context("spawn")  # never fork a process that holds torch threads or CUDA
    counter = mp.Value("i", 0)
    barrier = mp.Barrier(n_workers)
    rows_queue = mp.Queue(10_000) if on_rows is not None else None
    # The drain thread outlives the pool: exiting workers flush their queued counts into a pipe still read.
    with _draining(rows_queue, on_rows), \
            ProcessPoolExecutor(n_workers, mp_context=mp, initializer=_pool_init,
                                initargs=(gpus, counter, barrier, n_workers, plugins, rows_queue)) as pool:
        try:
            # Start every worker and build its models before the first item, like the dask plugin does.
            for fut in [pool.submit(_pool_ready, list(tasks or [])) for _ in range(n_workers)]:
                fut.result()
            stopped = _drive(lambda t, i: pool.submit(_pool_process, t, i), iter(work),
                             max_in_flight or 2 * n_workers, on_outcome)
            # Every worker commits what it buffered before the pool goes away (errors surface here).
            for fut in [pool.submit(_pool_close) for _ in range(n_workers)]:
                on_commit(fut.result())
            return stopped
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


class _draining:
    """A driver thread handing the workers' row counts from ``rows_queue`` to ``on_rows`` while the block runs."""

    def __init__(self, rows_queue: Any, on_rows: OnRows | None) -> None:
        self.rows_queue, self.on_rows = rows_queue, on_rows
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _draining:
        if self.rows_queue is not None and self.on_rows is not None:
            self.thread = threading.Thread(target=self._drain, name="rows", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.thread is not None:
            self.rows_queue.put(None)
            self.thread.join(timeout=5.0)
            self.rows_queue.close()

    def _drain(self) -> None:
        assert self.on_rows is not None
        while True:
            message = self.rows_queue.get()
            if message is None:
                return
            try:
                self.on_rows(*message)
            except Exception:  # progress must never stop the job
                log.debug("progress update failed", exc_info=True)


def _drive(submit: Callable[[StoreTask, list[Item]], Any], work: Iterator[Work], max_in_flight: int,
           on_outcome: OnOutcome) -> bool:
    pending: set[Any] = set()
    stopped = False

    def fill() -> None:
        while not stopped and len(pending) < max_in_flight:
            nxt = next(work, None)
            if nxt is None:
                return
            pending.add(submit(*nxt))

    fill()
    while pending:
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in finished:
            pending.discard(fut)
            if report(fut.result(), on_outcome):
                stopped = True
        fill()
    return stopped

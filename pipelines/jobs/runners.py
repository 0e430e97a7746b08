"""Runners: the same ``WorkerContext.process`` driven serially, by local processes, or by a dask cluster.

Every runner keeps at most ``max_in_flight`` items submitted at once (memory does not grow with the dataset), hands
each ``ItemOutcome`` to ``on_outcome`` as it arrives, and stops submitting when ``on_outcome`` returns True
(``--fail-fast``); items already running still finish and commit.

``--workers N`` uses a ``concurrent.futures.ProcessPoolExecutor`` (spawn) whose initializer builds one
``WorkerContext`` per process: no scheduler, nanny or ports for the common one-machine case, and a crashed worker
surfaces as ``BrokenProcessPool`` at once. ``--scheduler local:N`` / ``tcp://HOST:PORT`` use dask.distributed with
a ``WorkerPlugin`` that builds the context (models once per worker) when the worker joins.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from distributed import WorkerPlugin

from extract.datasets.base import Item
from pipelines.jobs.plan import import_plugins
from pipelines.jobs.worker import ItemOutcome, StoreTask, WorkerContext

log = logging.getLogger(__name__)

Work = tuple[StoreTask, Item]
OnOutcome = Callable[[ItemOutcome], bool]  # returns True to stop submitting
OnCommit = Callable[[dict[str, float]], None]  # seconds of each store's final commit, per worker

PLUGIN_NAME = "mmer-extract"


def quiet_device(gpu: int) -> Any:
    """``cuda:gpu`` when present, else the CPU, without logging (the driver has said it once already)."""
    import torch

    if gpu is not None and gpu >= 0 and torch.cuda.is_available() and gpu < torch.cuda.device_count():
        return torch.device(f"cuda:{gpu}")
    return torch.device("cpu")


def _set_threads(n_workers: int) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, n_workers)))


# -- serial ---------------------------------------------------------------------------------------------------------


def run_serial(work: Iterable[Work], ctx: WorkerContext, on_outcome: OnOutcome, on_commit: OnCommit) -> bool:
    """In-process, one item at a time (the face extractor still overlaps decode with detect/embed inside)."""
    stopped = False
    for task, item in work:
        if on_outcome(ctx.process(task, item)):
            stopped = True
            break
    on_commit(ctx.close())
    return stopped


# -- local processes ------------------------------------------------------------------------------------------------

_POOL_CTX: WorkerContext | None = None
_POOL_BARRIER: Any = None
BARRIER_TIMEOUT_S = 600.0


def _pool_init(gpus: tuple[int, ...], counter: Any, barrier: Any, n_workers: int, plugins: tuple[str, ...]) -> None:
    global _POOL_CTX, _POOL_BARRIER
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    _POOL_BARRIER = barrier
    import_plugins(plugins)
    _set_threads(n_workers)
    _POOL_CTX = WorkerContext(device=quiet_device(gpus[index % len(gpus)]), name=f"w{index}")
    # Backstop if the pool is torn down without _pool_close (close is idempotent).
    multiprocessing.util.Finalize(None, _POOL_CTX.close, exitpriority=10)


def _pool_ready() -> int:
    """Run once by each worker: the barrier holds a worker until all are up, so n calls reach n workers."""
    _POOL_BARRIER.wait(BARRIER_TIMEOUT_S)
    return os.getpid()


def _pool_close() -> dict[str, float]:
    """Commit and close this worker's writers; the barrier again makes n calls reach n different workers."""
    assert _POOL_CTX is not None
    commit_s = _POOL_CTX.close()
    _POOL_BARRIER.wait(BARRIER_TIMEOUT_S)
    return commit_s


def _pool_process(task: StoreTask, item: Item) -> ItemOutcome:
    assert _POOL_CTX is not None, "worker context not initialised"
    return _POOL_CTX.process(task, item)


def run_processes(work: Iterable[Work], n_workers: int, gpus: tuple[int, ...], plugins: tuple[str, ...],
                  on_outcome: OnOutcome, on_commit: OnCommit, max_in_flight: int | None = None) -> bool:
    mp = multiprocessing.get_context("spawn")  # never fork a process that holds torch threads or CUDA
    counter = mp.Value("i", 0)
    barrier = mp.Barrier(n_workers)
    with ProcessPoolExecutor(n_workers, mp_context=mp, initializer=_pool_init,
                             initargs=(gpus, counter, barrier, n_workers, plugins)) as pool:
        try:
            # Start every worker (imports, device) before the first item, like a dask cluster does.
            for fut in [pool.submit(_pool_ready) for _ in range(n_workers)]:
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


def _drive(submit: Callable[[StoreTask, Item], Any], work: Iterator[Work], max_in_flight: int,
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
            if on_outcome(fut.result()):
                stopped = True
        fill()
    return stopped


# -- dask.distributed -----------------------------------------------------------------------------------------------


class ExtractWorkerPlugin(WorkerPlugin):
    """Builds this worker's ``WorkerContext`` when it joins; closes its writers when it leaves."""

    name = PLUGIN_NAME

    def __init__(self, gpus: tuple[int, ...], plugins: tuple[str, ...], n_workers: int, set_threads: bool) -> None:
        self.gpus = tuple(gpus)
        self.plugins = tuple(plugins)
        self.n_workers = n_workers
        self.set_threads = set_threads
        self.ctx: WorkerContext | None = None
        self.lock: Any = None

    def setup(self, worker: Any) -> None:
        import_plugins(self.plugins)
        if self.set_threads:
            _set_threads(self.n_workers)
        import threading

        # A worker with several threads runs one item at a time: its writer and models are not thread-safe
        # (start GPU workers with --nthreads 1; more threads only queue here).
        self.lock = threading.Lock()
        index = worker.name if isinstance(worker.name, int) else 0
        self.ctx = WorkerContext(device=quiet_device(self.gpus[index % len(self.gpus)]), name=f"dask{worker.name}")

    def teardown(self, worker: Any) -> None:
        if self.ctx is not None:
            self.ctx.close()
            self.ctx = None


def _dask_process(task: StoreTask, item: Item) -> ItemOutcome:
    from distributed import get_worker

    plugin = get_worker().plugins[PLUGIN_NAME]
    with plugin.lock:
        return plugin.ctx.process(task, item)


def _dask_close(dask_worker: Any) -> dict[str, float]:
    """Run on every worker by ``client.run`` (which passes the worker as ``dask_worker``)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is not None and plugin.ctx is not None:
        with plugin.lock:
            return plugin.ctx.close()
    return {}


def parse_local_scheduler(scheduler: str) -> tuple[int, bool]:
    """``local:N`` -> (N, processes=True); ``local-threads:N`` -> (N, processes=False)."""
    head, _, count = scheduler.partition(":")
    if head not in ("local", "local-threads") or not count.isdigit() or int(count) < 1:
        raise ValueError(f"scheduler {scheduler!r}: expected local:N, local-threads:N or tcp://HOST:PORT")
    return int(count), head == "local"


def run_dask(work: Iterable[Work], scheduler: str, gpus: tuple[int, ...], plugins: tuple[str, ...],
             on_outcome: OnOutcome, on_commit: OnCommit, max_in_flight: int | None = None) -> bool:
    """``local:N`` starts a LocalCluster of N single-threaded worker processes (``local-threads:N``: threads in
    this process); anything else is the address of a running scheduler, whose workers must see the dataset root
    and the output directory at the same paths (shared storage)."""
    from distributed import Client, LocalCluster, as_completed

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # distributed sets itself to INFO on import
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if scheduler.startswith("local"):
        n, processes = parse_local_scheduler(scheduler)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
        processes = True
    try:
        n_workers = max(1, len(client.nthreads()))
        plugin = ExtractWorkerPlugin(gpus, plugins, n_workers, set_threads=processes and cluster is not None)
        client.register_plugin(plugin, name=PLUGIN_NAME)
        try:
            it = iter(work)
            limit = max_in_flight or 2 * n_workers
            futures = as_completed()
            for _ in range(limit):
                nxt = next(it, None)
                if nxt is None:
                    break
                futures.add(client.submit(_dask_process, *nxt, pure=False))
            stopped = False
            for fut in futures:
                outcome = fut.result()
                fut.release()
                if on_outcome(outcome):
                    stopped = True
                if not stopped:
                    nxt = next(it, None)
                    if nxt is not None:
                        futures.add(client.submit(_dask_process, *nxt, pure=False))
            # Every worker commits what it buffered; errors surface here.
            for commit_s in client.run(_dask_close).values():
                on_commit(commit_s)
            return stopped
        finally:
            # Teardown closes each worker's writers again (no-op) and forgets the plugin: a long-lived cluster
            # keeps its workers, not our models.
            client.unregister_worker_plugin(PLUGIN_NAME)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

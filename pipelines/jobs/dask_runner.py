"""The dask.distributed runner: ``--scheduler local:N`` (a LocalCluster), ``local-threads:N`` or ``tcp://HOST:PORT``.

A ``WorkerPlugin`` builds each worker's ``WorkerContext`` when the worker joins (models once per worker, its own
``StoreWriter``); groups of items are submitted with at most ``max_in_flight`` outstanding; at the end ``client.run`` commits
every worker's buffer and the plugin is unregistered (a long-lived cluster keeps its workers, not our models).
The rows of running items travel as dask events (topic ``ROWS_TOPIC``) to a handler on the client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from distributed import WorkerPlugin

from extract.datasets.base import Item
from pipelines.jobs.plan import import_plugins
from pipelines.jobs.runners import OnCommit, OnOutcome, OnRows, Work, report
from pipelines.jobs.worker import ItemOutcome, StoreTask, WorkerContext, limit_threads

log = logging.getLogger(__name__)

PLUGIN_NAME = "mmer-extract"
ROWS_TOPIC = "mmer-extract-rows"


def _event_sink(worker: Any) -> Any:
    """A worker's rows sink: each count becomes an event of ``ROWS_TOPIC`` (msgpack: a plain list)."""
    def send(store: str, key: str, rows: int, expected: int | None) -> None:
        try:
            worker.log_event(ROWS_TOPIC, [store, key, int(rows), None if expected is None else int(expected)])
        except Exception:  # progress is best effort
            log.debug("sending a progress event failed", exc_info=True)

    return send


class ExtractWorkerPlugin(WorkerPlugin):
    """Builds this worker's ``WorkerContext`` when it joins; closes its writers when it leaves."""

    name = PLUGIN_NAME

    def __init__(self, gpus: tuple[int, ...], plugins: tuple[str, ...], n_workers: int, set_threads: bool,
                 tasks: list[StoreTask] | None = None, report_rows: bool = False) -> None:
        self.tasks = list(tasks or [])
        self.report_rows = report_rows
        self.gpus = tuple(gpus)
        self.plugins = tuple(plugins)
        self.n_workers = n_workers
        self.set_threads = set_threads
        self.ctx: WorkerContext | None = None
        self.lock: Any = None

    def setup(self, worker: Any) -> None:
        if self.set_threads:
            limit_threads(self.n_workers)
        import_plugins(self.plugins)
        import threading

        # A worker with several threads runs one item at a time: its writer and models are not thread-safe
        # (start GPU workers with --nthreads 1; more threads only queue here).
        self.lock = threading.Lock()
        index = worker.name if isinstance(worker.name, int) else 0
        self.ctx = WorkerContext(gpu=self.gpus[index % len(self.gpus)], name=f"dask{worker.name}",
                                 rows_sink=_event_sink(worker) if self.report_rows else None)
        self.ctx.prepare(self.tasks)  # models load once, when the worker joins

    def teardown(self, worker: Any) -> None:
        if self.ctx is not None:
            self.ctx.close()
            self.ctx = None


def _dask_process(task: StoreTask, items: list[Item]) -> list[ItemOutcome]:
    from distributed import get_worker

    plugin = get_worker().plugins[PLUGIN_NAME]
    with plugin.lock:
        return plugin.ctx.process_many(task, items)


def _dask_close(dask_worker: Any) -> dict[str, float]:
    """Run on every worker by ``client.run`` (which passes the worker as ``dask_worker``)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is not None and plugin.ctx is not None:
        with plugin.lock:
            return plugin.ctx.close()
    return {}


def _on_event(event: tuple[float, Any], on_rows: OnRows) -> None:
    """A ``ROWS_TOPIC`` event ``(time, [store, key, rows, expected])`` -> ``on_rows``."""
    try:
        store, key, rows, expected = event[1]
        on_rows(str(store), str(key), int(rows), None if expected is None else int(expected))
    except Exception:  # progress must never stop the job
        log.debug("progress event not understood: %r", event, exc_info=True)


def parse_local_scheduler(scheduler: str) -> tuple[int, bool]:
    """``local:N`` -> (N, processes=True); ``local-threads:N`` -> (N, processes=False)."""
    head, _, count = scheduler.partition(":")
    if head not in ("local", "local-threads") or not count.isdigit() or int(count) < 1:
        raise ValueError(f"scheduler {scheduler!r}: expected local:N, local-threads:N or tcp://HOST:PORT")
    return int(count), head == "local"


def run_dask(work: Iterable[Work], scheduler: str, gpus: tuple[int, ...], plugins: tuple[str, ...],
             on_outcome: OnOutcome, on_commit: OnCommit, tasks: list[StoreTask] | None = None,
             max_in_flight: int | None = None, on_rows: OnRows | None = None) -> bool:
    """``local:N`` starts a LocalCluster of N single-threaded worker processes (``local-threads:N``: threads in
    this process); anything else is the address of a running scheduler, whose workers must see the dataset root
    and the output directory at the same paths (shared storage)."""
    from distributed import Client, LocalCluster, as_completed

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # distributed sets itself to INFO on import
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if scheduler.startswith("local"):
        n, processes = parse_local_scheduler(scheduler)
        # ":0": the scheduler's HTTP server on a free port; None still binds 8787 and warns when it is taken
        # (two local runs at once, or a notebook's cluster)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0")
        client = Client(cluster)
    else:
        client = Client(scheduler)
        processes = True
    try:
        n_workers = max(1, len(client.nthreads()))
        plugin = ExtractWorkerPlugin(gpus, plugins, n_workers, set_threads=processes and cluster is not None,
                                     tasks=tasks, report_rows=on_rows is not None)
        if on_rows is not None:
            client.subscribe_topic(ROWS_TOPIC, lambda event: _on_event(event, on_rows))
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
                outcomes = fut.result()
                fut.release()
                if report(outcomes, on_outcome):
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
            if on_rows is not None:
                client.unsubscribe_topic(ROWS_TOPIC)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

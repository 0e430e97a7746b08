"""The work of one item, the same in every runner: claim it, extract it, commit it whole or record its failure.

A ``WorkerContext`` lives once per worker (the driver process in a serial run, each local process, each dask worker)
and caches what is expensive: the extractors (models load once), the dataset readers and one ``StoreWriter`` per
store with this worker's own writer id, so each worker writes its own segments into the shared store.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extract.datasets.base import DatasetReader, Item
from pipelines.jobs.plan import ExtractorRecipe, import_plugins

log = logging.getLogger(__name__)

# (store path, key of the first item of the call, rows made so far, rows expected or None): the rows of items still
# running, sent while they run (extract.progress) so the driver's progress moves per frame, not per item.
RowsSink = Callable[[str, str, int, "int | None"], None]


@dataclass(frozen=True)
class StoreTask:
    """Everything a worker needs to write items of one store (small and picklable: it travels with each item)."""

    path: str
    backend: str
    manifest: dict[str, Any]
    recipe: ExtractorRecipe
    dataset: str
    root: str
    reader_options_json: str = "{}"
    plugins: tuple[str, ...] = ()
    commit_interval_s: float = 30.0  # a writer commits its buffered items at least this often (and at close)
    items_per_call: int = 1  # items handed to the extractor together (``FeatureExtractor.items_per_call``)


@dataclass
class ItemOutcome:
    """What happened to one item; the driver turns these into progress and the summary."""

    store: str
    key: str
    status: str  # "done" | "failed" | "claimed" (another live writer holds it)
    n_rows: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    worker: str = ""


def new_writer_id(name: str = "") -> str:
    """Unique per worker and per run: host, pid, worker name and a random suffix (it names segment files)."""
    from store.layout import sanitize_name

    parts = [socket.gethostname().split(".")[0], str(os.getpid())]
    if name:
        parts.append(str(name))
    parts.append(uuid.uuid4().hex[:6])
    return sanitize_name("-".join(parts))


def quiet_device(gpu: int | None) -> Any:
    """``cuda:gpu`` when present, else the CPU, without logging (the driver has said it once already)."""
    import torch

    if gpu is not None and gpu >= 0 and torch.cuda.is_available() and gpu < torch.cuda.device_count():
        return torch.device(f"cuda:{gpu}")
    return torch.device("cpu")


def limit_threads(n_workers: int) -> None:
    """Share the CPU cores between ``n_workers`` worker processes (torch/OpenMP intra-op threads)."""
    import sys

    n = str(max(1, (os.cpu_count() or 1) // max(1, n_workers)))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(n))
    else:  # read by torch (and numpy's BLAS) when they load
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, n)


class WorkerContext:
    """Per-worker caches: extractors by recipe, readers by dataset, writers by store path.

    ``device`` is given, or resolved from ``gpu`` the first time an extractor needs one (an EEG-only worker never
    imports torch)."""

    def __init__(self, device: Any = None, name: str = "", gpu: int | None = None,
                 rows_sink: RowsSink | None = None, rows_interval_s: float = 0.25) -> None:
        self._device = device
        self.rows_sink = rows_sink
        self.rows_interval_s = rows_interval_s
        self.gpu = gpu
        self.name = name
        self.writer_id = new_writer_id(name)
        self._extractors: dict[ExtractorRecipe, Any] = {}
        self._readers: dict[tuple[str, str, str], DatasetReader] = {}
        self._writers: dict[str, Any] = {}
        self._imported: set[tuple[str, ...]] = set()

    @property
    def device(self) -> Any:
        if self._device is None:
            self._device = quiet_device(self.gpu)
        return self._device

    # -- caches
    def adopt_extractor(self, recipe: ExtractorRecipe, extractor: Any) -> None:
        """Reuse an extractor the driver built for planning (serial runs load the models once, not twice)."""
        self._extractors[recipe] = extractor

    def adopt_writer(self, path: str, writer: Any) -> None:
        self._writers[str(path)] = writer

    def extractor(self, recipe: ExtractorRecipe) -> Any:
        if recipe not in self._extractors:
            t0 = time.perf_counter()
            self._extractors[recipe] = recipe.build(lambda: self.device)
            log.debug("worker %s built %s in %.1f s", self.name or "main", recipe.name, time.perf_counter() - t0)
        return self._extractors[recipe]

    def reader(self, task: StoreTask) -> DatasetReader:
        key = (task.dataset, task.root, task.reader_options_json)
        if key not in self._readers:
            import json

            from extract.datasets.base import create_dataset

            self._readers[key] = create_dataset(task.dataset, task.root, **json.loads(task.reader_options_json))
        return self._readers[key]

    def writer(self, task: StoreTask) -> Any:
        if task.path not in self._writers:
            from store import create_store
            from store.schema import Manifest

            self._writers[task.path] = create_store(
                task.path, Manifest.from_dict(task.manifest), backend=task.backend, writer_id=self.writer_id,
                flush_interval_s=task.commit_interval_s,
            )
        return self._writers[task.path]

    def prepare(self, tasks: list[StoreTask]) -> None:
        """Build every extractor the tasks need now (models load before the first item, not during it)."""
        for task in tasks:
            self.ensure_plugins(task.plugins)
            self.extractor(task.recipe)

    def ensure_plugins(self, plugins: tuple[str, ...]) -> None:
        if plugins not in self._imported:
            import_plugins(plugins)
            self._imported.add(plugins)

    # -- the work
    def process(self, task: StoreTask, item: Item) -> ItemOutcome:
        """Claim, extract and write one item (``process_many`` of one)."""
        return self.process_many(task, [item])[0]

    def process_many(self, task: StoreTask, items: list[Item]) -> list[ItemOutcome]:
        """Claim, extract and write each of ``items`` into ``task``'s store, one outcome per item in order. Items
        another live writer holds are left to it; the rest go to the extractor together (``extract_many``: one
        call for a group of small items). Any exception of an item is recorded as its failure (failures are data);
        only store errors propagate.

        The writer buffers whole items and commits them as one segment every ``commit_interval_s`` (or when its
        buffer is full, and at close): one segment per item would leave thousands of tiny segments. A kill loses
        at most the uncommitted items, which the next run redoes."""
        self.ensure_plugins(task.plugins)
        t0 = time.perf_counter()
        writer = self.writer(task)
        claimed = [writer.claim(item.key) for item in items]
        mine = [item for item, ok in zip(items, claimed, strict=True) if ok]
        results, stages = self._extract_reporting(task, mine) if mine else ([], {})
        share = {k: v / max(1, len(mine)) for k, v in stages.items()}  # the group's stage time, split per item
        seconds = (time.perf_counter() - t0) / max(1, len(mine))
        pending = iter(results)
        outcomes = []
        for item, ok in zip(items, claimed, strict=True):
            if ok:
                outcomes.append(self._record(writer, task, item, next(pending), seconds, dict(share)))
            else:
                outcomes.append(ItemOutcome(task.path, item.key, "claimed", worker=self.writer_id))
        return outcomes

    def _extract_reporting(self, task: StoreTask, items: list[Item]) -> tuple[list[Any], dict[str, float]]:
        """``_extract``, with the rows made so far sent to ``rows_sink`` (if any) while it runs."""
        if self.rows_sink is None:
            return self._extract(task, items)
        from extract.progress import reporting

        sink, token = self.rows_sink, items[0].key
        with reporting(lambda rows, expected: sink(task.path, token, rows, expected), self.rows_interval_s):
            return self._extract(task, items)

    def _extract(self, task: StoreTask, items: list[Item]) -> tuple[list[Any], dict[str, float]]:
        """Rows or exception per item, and the extractor's stage seconds. If a group call itself fails (not an
        item: the model), each item is redone alone, so the failure lands on the items as a per-item run would."""
        try:
            extractor = self.extractor(task.recipe)
            reader = self.reader(task)
        except Exception as exc:  # every item fails with it, as it would one by one
            return [exc] * len(items), {}
        if len(items) == 1:
            results = _extract_one(extractor, reader, items[0])
        else:
            try:
                results = list(extractor.extract_many(reader, items))
                if len(results) != len(items):
                    raise RuntimeError(f"extract_many returned {len(results)} results for {len(items)} items")
            except Exception as exc:
                log.warning("extract_many failed (%s); redoing the %d items one by one", _error_line(exc), len(items),
                            exc_info=True)
                results = [r for item in items for r in _extract_one(extractor, reader, item)]
        return results, dict(getattr(extractor, "last_stage_s", None) or {})

    def _record(self, writer: Any, task: StoreTask, item: Item, result: Any, seconds: float,
                stages: dict[str, float]) -> ItemOutcome:
        """Write the item's rows (buffered whole) or mark it failed (written at once, atomically)."""
        if not isinstance(result, Exception) and result.key != item.key:
            result = ValueError(f"extractor returned rows for {result.key!r}, expected {item.key!r}")
        if isinstance(result, Exception):
            error = _error_line(result)
            _log_failure(item.key, result)
            writer.mark_failed(item.key, error, timing_s=seconds)
            return ItemOutcome(task.path, item.key, "failed", 0, seconds, stages, error, self.writer_id)
        t1 = time.perf_counter()
        writer.write_item(result, timing_s=seconds)  # commits with the writer's next segment
        stages["write"] = stages.get("write", 0.0) + time.perf_counter() - t1
        return ItemOutcome(task.path, item.key, "done", result.n_rows, seconds + time.perf_counter() - t1, stages,
                           None, self.writer_id)

    def close(self) -> dict[str, float]:
        """Commit and close the writers, release the extractors' models. Safe to call twice. Returns the seconds
        each store's final commit took (path -> s), for the summary's write stage."""
        errors = []
        commit_s: dict[str, float] = {}
        for path, writer in self._writers.items():
            t0 = time.perf_counter()
            try:
                writer.close()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
            commit_s[path] = time.perf_counter() - t0
        self._writers.clear()
        for extractor in self._extractors.values():
            try:
                extractor.close()
            except Exception:
                log.debug("closing an extractor failed", exc_info=True)
        self._extractors.clear()
        self._readers.clear()
        if errors:
            raise errors[0]
        return commit_s


def _extract_one(extractor: Any, reader: DatasetReader, item: Item) -> list[Any]:
    """``[rows]`` or ``[exception]`` for one item through ``extract`` (the per-item path)."""
    try:
        return [extractor.extract(reader, item)]
    except Exception as exc:  # one bad item must not stop the run
        return [exc]


def _log_failure(key: str, exc: BaseException) -> None:
    """An ``ItemError`` is the item's own fault (traceback at debug); any other exception may be a bug: its
    traceback is logged at WARNING, as well as recorded as the item's failure."""
    from extract.base import ItemError

    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, ItemError):
        log.debug("item %s failed:\n%s", key, trace)
    else:
        log.warning("item %s failed with an unexpected %s (recorded as its failure):\n%s", key, type(exc).__name__,
                    trace)


def _error_line(exc: BaseException) -> str:
    from extract.base import ItemError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ItemError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

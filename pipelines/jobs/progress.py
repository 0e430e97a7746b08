"""Progress bars while a job runs, and the summary it leaves: printed, and written as JSON beside each store."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from pipelines.jobs.plan import StorePlan
from pipelines.jobs.worker import ItemOutcome

STAGE_ORDER = ("read", "decode", "detect", "track", "align", "embed", "features", "write")


def summary_path(store: Path) -> Path:
    """``cache/deap/face-...-1a2b3c4d.zarr`` -> ``cache/deap/face-...-1a2b3c4d.zarr.summary.json`` (beside it)."""
    store = Path(store)
    return store.with_name(store.name + ".summary.json")


@dataclass
class StoreStats:
    """What this run did to one store."""

    plan: StorePlan
    done: int = 0
    rows: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    claimed: list[str] = field(default_factory=list)
    item_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None

    def add(self, outcome: ItemOutcome) -> None:
        self.finished = time.perf_counter()
        if outcome.status == "done":
            self.done += 1
            self.rows += outcome.n_rows
        elif outcome.status == "failed":
            self.failed[outcome.key] = outcome.error or "failed"
        else:
            self.claimed.append(outcome.key)
        self.item_s += outcome.seconds
        for stage, seconds in outcome.stages.items():
            self.stages[stage] = self.stages.get(stage, 0.0) + float(seconds)

    @property
    def wall_s(self) -> float:
        if self.started is None or self.finished is None:
            return 0.0
        return max(self.finished - self.started, 1e-9)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0

    def ordered_stages(self) -> dict[str, float]:
        keys = [k for k in STAGE_ORDER if k in self.stages] + sorted(k for k in self.stages if k not in STAGE_ORDER)
        return {k: round(self.stages[k], 4) for k in keys}

    def summary(self, *, config: dict[str, Any], runner: str, device: str, stopped: bool,
                totals: tuple[int, int] | None) -> dict[str, Any]:
        plan = self.plan
        retried_ok = [k for k in plan.retry if k not in self.failed and k not in self.claimed]
        return {
            "store": str(plan.path),
            "kind": plan.kind,
            "dataset": plan.manifest.dataset,
            "extractor": plan.manifest.extractor,
            "fingerprint": plan.fingerprint,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runner": runner,
            "device": device,
            "stopped_early": stopped,
            "items": {
                "planned": len(plan.todo),
                "done": self.done,
                "failed": len(self.failed),
                "skipped_done": len(plan.done),
                "skipped_failed": len(plan.failed) - len(plan.retry),
                "retried": len(plan.retry),
                "retried_ok": len(retried_ok),
                "claimed_elsewhere": len(self.claimed),
                "not_run": len(plan.todo) - self.done - len(self.failed) - len(self.claimed),
                "no_media": len(plan.missing),
            },
            "store_totals": None if totals is None else {"done": totals[0], "failed": totals[1]},
            "rows": self.rows,
            "wall_s": round(self.wall_s, 4),
            "rows_per_s": round(self.rows_per_s, 3),
            "item_s_mean": round(self.item_s / max(1, self.done + len(self.failed)), 4),
            "stage_s": self.ordered_stages(),
            "failures": dict(sorted(self.failed.items())),
            "skipped_failures": {k: v for k, v in sorted(plan.failed.items()) if k not in plan.retry},
            "no_media_items": list(plan.missing),
            "config": config,
        }


def write_summary(summary: dict[str, Any]) -> Path:
    path = summary_path(Path(summary["store"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def eta_s(elapsed_s: float, done: float, total: int) -> float | None:
    """Seconds left at the mean pace so far (None before any work is measured); 0 when all is done. ``done`` may
    count the finished share of running items (rows made / rows expected)."""
    if total <= done:
        return 0.0
    if done <= 0 or elapsed_s <= 0:
        return None
    return elapsed_s / done * (total - done)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class StoreLine:
    """What the progress knows about one store: finished items, and the rows of the items running now."""

    name: str
    total: int
    done: int = 0  # finished items (failed ones included)
    rows: int = 0  # rows of the finished items
    failed: int = 0
    started: float | None = None
    running: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # call's first key -> rows, expected
    finished: set[str] = field(default_factory=set)

    def all_rows(self) -> int:
        return self.rows + sum(rows for rows, _ in self.running.values())

    def completed(self) -> float:
        """Finished items plus the share of the running ones made so far (where their row count is known)."""
        share = sum(min(rows / expected, 0.99) for rows, expected in self.running.values() if expected)
        return min(float(self.done) + share, float(self.total))

    def elapsed(self, now: float | None = None) -> float:
        return 0.0 if self.started is None else (now or time.perf_counter()) - self.started


class RowsPerSecond(ProgressColumn):
    """Rows (frames, windows) per second of this store's task, rows of running items included."""

    def render(self, task: Any) -> Text:
        rows = task.fields.get("rows", 0)
        elapsed = task.elapsed or 0.0
        if not elapsed or not rows:
            return Text("      - rows/s", style="progress.data.speed")
        return Text(f"{rows / elapsed:8.1f} rows/s", style="progress.data.speed")


class MeanPaceEta(ProgressColumn):
    """Time left at the mean pace since the store started, running items' rows counted (rich's own estimate
    needs two updates within 30 s, which items that take longer never give)."""

    def render(self, task: Any) -> Text:
        left = eta_s(task.elapsed or 0.0, float(task.completed), int(task.total or 0))
        return Text(f"ETA {_clock(left)}", style="progress.remaining")


class PlainProgress:
    """Progress for logs, pipes and cluster jobs: one timestamped plain line per running store every
    ``interval_s`` seconds (and when a store starts and finishes), with items, rows, rows/s and the ETA."""

    def __init__(self, console: Console, lines: dict[str, StoreLine], lock: threading.Lock,
                 interval_s: float = 5.0) -> None:
        self.console = console
        self.interval_s = interval_s
        self.lines = lines
        self._lock = lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PlainProgress:
        self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def render(self, store: str, now: float | None = None) -> str:
        line = self.lines[store]
        elapsed = line.elapsed(now)
        completed, rows = line.completed(), line.all_rows()
        pct = 100.0 * completed / line.total if line.total else 100.0
        rate = f"{rows / elapsed:.1f}" if elapsed > 0 and rows else "-"
        stamp = datetime.now().strftime("%H:%M:%S")
        return (f"{stamp} {line.name}: {line.done}/{line.total} items ({pct:.0f}%), {rows} rows, {rate} rows/s, "
                f"{line.failed} failed, elapsed {_clock(elapsed)}, ETA {_clock(eta_s(elapsed, completed, line.total))}")

    def emit(self, store: str) -> None:
        with self._lock:
            text = self.render(store)
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            for store, line in list(self.lines.items()):
                if line.started is not None and line.done < line.total:
                    self.emit(store)


class JobProgress:
    """One bar per store on a terminal (items done/total, rows/s, elapsed, ETA at the mean pace); elsewhere plain
    timestamped lines every ``interval_s`` seconds (PlainProgress). Both move per frame: ``rows`` takes the rows
    of running items as the workers send them. Failed items count as finished."""

    def __init__(self, console: Console, enabled: bool = True, plain: bool | None = None,
                 interval_s: float = 5.0) -> None:
        plain = not console.is_terminal if plain is None else plain
        self.lines: dict[str, StoreLine] = {}
        self._lock = threading.Lock()
        self.plain = PlainProgress(console, self.lines, self._lock, interval_s) if enabled and plain else None
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RowsPerSecond(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            MeanPaceEta(),
            console=console,
            disable=not enabled or self.plain is not None,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> JobProgress:
        if self.plain is not None:
            self.plain.__enter__()
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
        if self.plain is not None:
            self.plain.__exit__(*exc)

    def add_store(self, plan: StorePlan) -> None:
        name = f"{plan.manifest.dataset if plan.manifest else ''} {plan.label}".strip()
        self.lines[str(plan.path)] = StoreLine(name, len(plan.todo))
        self.tasks[str(plan.path)] = self.progress.add_task(name, total=len(plan.todo), rows=0, failed=0,
                                                            start=False)

    def start(self, store: str) -> None:
        with self._lock:
            self.lines[store].started = time.perf_counter()
        if self.plain is not None:
            self.plain.emit(store)
        self.progress.start_task(self.tasks[store])

    def rows(self, store: str, key: str, rows: int, expected: int | None) -> None:
        """A running call (named by its first item's key) has made ``rows`` rows of about ``expected``."""
        with self._lock:
            line = self.lines.get(store)
            if line is None or key in line.finished:  # a late count of an item already finished
                return
            line.running[key] = (int(rows), expected)
        self._refresh(store)

    def update(self, outcome: ItemOutcome, stats: StoreStats) -> None:
        """An item finished (done, failed or claimed elsewhere); ``stats`` has the store's totals."""
        with self._lock:
            line = self.lines[outcome.store]
            line.done += 1
            line.rows, line.failed = stats.rows, len(stats.failed)
            key = getattr(outcome, "key", None)
            if key is not None:
                line.finished.add(key)
                line.running.pop(key, None)
            finished = line.done >= line.total
        if self.plain is not None and finished:
            self.plain.emit(outcome.store)
        self._refresh(outcome.store)

    def _refresh(self, store: str) -> None:
        with self._lock:
            line = self.lines[store]
            completed, rows, failed = line.completed(), line.all_rows(), line.failed
        self.progress.update(self.tasks[store], completed=completed, rows=rows, failed=failed)

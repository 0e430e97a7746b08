"""Rows an extractor has made so far within the item it is working on, for the job's progress (per frame, not per
item: a long video moves the bar and the ETA while it runs).

Extractors call ``expect_rows(n)`` once they know how many rows an item will give and ``add_rows(n)`` as rows are
made; the worker running the item installs a sink with ``reporting`` that forwards the running count to the driver
(directly, through a process queue or as a dask event). Without a sink both are no-ops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

RowSink = Callable[[int, "int | None"], None]  # (rows made so far in this call, rows expected or None)

_local = threading.local()


class _Counter:
    """The running count of one ``reporting`` block, sent at most every ``interval_s`` seconds."""

    def __init__(self, sink: RowSink, interval_s: float) -> None:
        self.sink = sink
        self.interval_s = interval_s
        self.rows = 0
        self.expected: int | None = None
        self.sent_at = float("-inf")

    def send(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.sent_at >= self.interval_s:
            self.sent_at = now
            self.sink(self.rows, self.expected)


def active() -> bool:
    """Whether a sink listens in this thread (skip work done only for the progress, e.g. probing a video)."""
    return getattr(_local, "counter", None) is not None


def add_rows(n: int) -> None:
    """``n`` more rows of the current item are made (a batch of frames through detection and embedding)."""
    counter: _Counter | None = getattr(_local, "counter", None)
    if counter is not None and n > 0:
        counter.rows += int(n)
        counter.send()


def expect_rows(n: int | None) -> None:
    """The current item will give about ``n`` rows (summed over the items of one call); None: not known."""
    counter: _Counter | None = getattr(_local, "counter", None)
    if counter is not None and n is not None and n > 0:
        counter.expected = (counter.expected or 0) + int(n)
        counter.send(force=True)


@contextmanager
def reporting(sink: RowSink, interval_s: float = 0.25) -> Iterator[None]:
    """Send this thread's ``add_rows``/``expect_rows`` counts to ``sink`` while the block runs (throttled)."""
    previous = getattr(_local, "counter", None)
    _local.counter = _Counter(sink, interval_s)
    try:
        yield
    finally:
        _local.counter = previous

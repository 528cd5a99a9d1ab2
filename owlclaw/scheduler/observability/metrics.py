"""Prometheus metrics, when ``prometheus-client`` is installed (extra ``metrics``).

They live in prometheus-client's default registry, so an app that already
serves it exports them too; ``owlclaw-scheduler worker --metrics-port N``
serves it on its own. Without the package every call here is a no-op, except
``serve_metrics``, which says what to install. Its HTTP server listens on
loopback unless ``$OWLCLAW_METRICS_ADDR`` says otherwise (``0.0.0.0`` in a
container that Prometheus scrapes).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from owlclaw.scheduler.errors import ConfigError, NotSupportedError

__all__ = [
    "ADDR_ENV",
    "MetricsServer",
    "record_ended",
    "record_lateness",
    "record_occurrences",
    "serve_metrics",
]

log = logging.getLogger("owlclaw.scheduler.metrics")

ADDR_ENV = "OWLCLAW_METRICS_ADDR"  # where --metrics-port listens; default loopback
PENDING_CACHE_SECONDS = 5.0  # a scrape asks the backend for pending schedules at most this often
PENDING_TIMEOUT_SECONDS = 5.0
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class _Recorded:
    """The attempt metrics as plain numbers, exported by this collector at
    scrape time. (A prometheus-client child per label set took a lock per
    counter and a Python loop over the buckets per observation: a tenth of a
    memory-backend run's CPU.)"""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[tuple[str, str], list[float]] = {}  # (task, state) -> [count, created]
        self.attempts: dict[tuple[str, str], list[float]] = {}  # (task, outcome) -> [count, created]
        # task -> one count per bucket (+Inf last), then the sum
        self.duration: dict[str, list[float]] = {}
        self.lateness: dict[str, list[float]] = {}
        # (task, outcome, reason) -> [count, created]: schedule occurrences
        self.occurrences: dict[tuple[str, str, str], list[float]] = {}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self.lock:
            runs = {k: list(v) for k, v in self.runs.items()}
            attempts = {k: list(v) for k, v in self.attempts.items()}
            duration = {k: list(v) for k, v in self.duration.items()}
            lateness = {k: list(v) for k, v in self.lateness.items()}
            occurrences = {k: list(v) for k, v in self.occurrences.items()}
        for name, doc, label, rows in (
            ("owlclaw_scheduler_runs", _RUNS_DOC, "state", runs),
            ("owlclaw_scheduler_attempts", _ATTEMPTS_DOC, "outcome", attempts),
        ):
            counter = CounterMetricFamily(name, doc, labels=["task", label])
            for (task, value), (count, created) in rows.items():
                counter.add_metric([task, value], count, created=created)
            yield counter
        counter = CounterMetricFamily(
            "owlclaw_scheduler_schedule_occurrences", _OCCURRENCES_DOC, labels=["task", "outcome", "reason"]
        )
        for (task, outcome, reason), (count, created) in occurrences.items():
            counter.add_metric([task, outcome, reason], count, created=created)
        yield counter
        for name, doc, bounds, table in (
            ("owlclaw_scheduler_run_duration_seconds", _DURATION_DOC, DURATION_BUCKETS, duration),
            ("owlclaw_scheduler_run_lateness_seconds", _LATENESS_DOC, LATENESS_BUCKETS, lateness),
        ):
            histogram = HistogramMetricFamily(name, doc, labels=["task"])
            les = [str(float(b)) for b in bounds] + ["+Inf"]  # as prometheus-client writes them
            for task, row in table.items():
                cumulative = list(itertools.accumulate(row[:-1]))
                histogram.add_metric([task], list(zip(les, cumulative, strict=True)), row[-1])
            yield histogram


_RUNS_DOC = "Runs that reached a final state in this worker, by task and state (succeeded, failed)"
_ATTEMPTS_DOC = "Attempts run by this worker, by task and outcome (succeeded, failed, cancelled)"
_OCCURRENCES_DOC = (
    "Schedule occurrences by task and outcome: fired, coalesced (folded into a catch-up run) or "
    "skipped, with the reason (too_old, over_cap, paused, skip, overlap, task_not_registered)"
)
_DURATION_DOC = "Wall-clock seconds one attempt took, by task"
_LATENESS_DOC = (
    "Seconds from a run's due time (or run_task call; a schedule's nominal time) "
    "to its first attempt's start, by task"
)


@functools.cache
def _metrics() -> _Recorded | None:
    """The recorded metrics, registered in prometheus-client's default
    registry on first use; None without prometheus-client."""
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        return None
    recorded = _Recorded()
    REGISTRY.register(recorded)
    return recorded


def record_ended(task: str, outcome: str, duration: float, run_state: str | None) -> None:
    """An attempt's end: its outcome and duration, and the run's final state
    when ``run_state`` is given."""
    if (m := _metrics()) is None:
        return
    m.lock.acquire()  # not "with": half the cost, per attempt
    try:
        key = (task, outcome)
        if (row := m.attempts.get(key)) is not None:
            row[0] += 1
        else:
            m.attempts[key] = [1, time.time()]
        _observe(m.duration, DURATION_BUCKETS, task, duration)
        if run_state is not None:
            key = (task, run_state)
            if (row := m.runs.get(key)) is not None:
                row[0] += 1
            else:
                m.runs[key] = [1, time.time()]
    finally:
        m.lock.release()


def record_lateness(task: str, seconds: float) -> None:
    if (m := _metrics()) is None:
        return
    m.lock.acquire()  # not "with": half the cost, per first attempt
    try:
        _observe(m.lateness, LATENESS_BUCKETS, task, seconds if seconds > 0.0 else 0.0)
    finally:
        m.lock.release()


def _observe(table: dict[str, list[float]], bounds: tuple[float, ...], task: str, value: float) -> None:
    """One histogram observation (the caller holds the lock)."""
    row = table.get(task)
    if row is None:
        row = table[task] = [0.0] * (len(bounds) + 2)
    row[bisect.bisect_left(bounds, value)] += 1  # the first bucket whose bound is >= value
    row[-1] += value


def record_occurrences(task: str, outcome: str, reason: str, count: int) -> None:
    """``count`` occurrences of a schedule of ``task`` fired, were coalesced or skipped."""
    if (m := _metrics()) is None:
        return
    with m.lock:
        key = (task, outcome, reason)
        if (row := m.occurrences.get(key)) is not None:
            row[0] += count
        else:
            m.occurrences[key] = [count, time.time()]


class _PendingCollector:
    """``owlclaw_scheduler_pending_schedules{task}``: one-off schedules not yet
    due, asked of each served scheduler at scrape time (cached a few seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schedulers: list[Any] = []
        self._cached: dict[int, Counter[str]] = {}
        self._at: dict[int, float] = {}

    def add(self, scheduler: Any) -> None:
        with self._lock:
            self._schedulers.append(scheduler)

    def remove(self, scheduler: Any) -> None:
        with self._lock:
            if scheduler in self._schedulers:
                self._schedulers.remove(scheduler)
            self._cached.pop(id(scheduler), None)

    def _count(self, scheduler: Any) -> Counter[str] | None:
        key = id(scheduler)
        if key in self._cached and time.monotonic() - self._at[key] < PENDING_CACHE_SECONDS:
            return self._cached[key]
        try:
            pending = asyncio.run(asyncio.wait_for(scheduler.list_scheduled_tasks(), PENDING_TIMEOUT_SECONDS))
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail: keep the last answer
            log.debug("pending schedules unavailable: %s: %s", type(exc).__name__, exc)
            return self._cached.get(key)
        self._cached[key] = Counter(info.task_name for info in pending)
        self._at[key] = time.monotonic()
        return self._cached[key]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "owlclaw_scheduler_pending_schedules",
            "One-off schedules waiting for their due time, by task",
            labels=["task"],
        )
        total: Counter[str] = Counter()
        tasks: set[str] = set()
        with self._lock:
            for scheduler in self._schedulers:
                counts = self._count(scheduler)
                if counts is not None:
                    total.update(counts)
                    tasks.update(getattr(scheduler, "tasks", {}))
        for task in sorted(tasks | set(total)):
            family.add_metric([task], total.get(task, 0))
        yield family


@functools.cache
def _pending() -> _PendingCollector:
    from prometheus_client import REGISTRY

    collector = _PendingCollector()
    REGISTRY.register(collector)
    return collector


class MetricsServer:
    """The HTTP server ``serve_metrics`` started; ``close()`` stops it."""

    def __init__(self, server: Any, thread: Any, scheduler: Any) -> None:
        self._server = server
        self._thread = thread
        self._scheduler = scheduler
        self.host, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        if self._scheduler is not None:
            _pending().remove(self._scheduler)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(port: int, scheduler: Any = None, *, addr: str | None = None) -> MetricsServer:
    """Serve the metrics over HTTP on ``addr:port`` (default ``$OWLCLAW_METRICS_ADDR``,
    else 127.0.0.1; port 0 picks a free one) in a daemon thread; with
    ``scheduler``, also its pending schedules.

    :raises NotSupportedError: prometheus-client is not installed.
    :raises ConfigError: the port is out of range or cannot be bound.
    """
    if _metrics() is None:
        raise NotSupportedError("metrics need prometheus-client: pip install 'owlclaw-scheduler[metrics]'")
    from prometheus_client import start_http_server

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be an int from 1 to 65535 (0 picks a free one), got {port!r}")
    host = addr or os.environ.get(ADDR_ENV) or "127.0.0.1"
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; pick a free --metrics-port"
        ) from exc
    if scheduler is not None:
        _pending().add(scheduler)
    served = MetricsServer(server, thread, scheduler)
    log.info("serving Prometheus metrics on %s", served.url)
    return served

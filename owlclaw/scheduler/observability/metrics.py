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
import functools
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
    "record_attempt",
    "record_lateness",
    "record_run",
    "serve_metrics",
]

log = logging.getLogger("owlclaw.scheduler.metrics")

ADDR_ENV = "OWLCLAW_METRICS_ADDR"  # where --metrics-port listens; default loopback
PENDING_CACHE_SECONDS = 5.0  # a scrape asks the backend for pending schedules at most this often
PENDING_TIMEOUT_SECONDS = 5.0
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@functools.cache
def _metrics() -> dict[str, Any] | None:
    try:
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Histogram
    except ImportError:
        return None
    return {
        "runs": PromCounter(
            "owlclaw_scheduler_runs",
            "Runs that reached a final state in this worker, by task and state (succeeded, failed)",
            ["task", "state"],
        ),
        "attempts": PromCounter(
            "owlclaw_scheduler_attempts",
            "Attempts run by this worker, by task and outcome (succeeded, failed, cancelled)",
            ["task", "outcome"],
        ),
        "duration": Histogram(
            "owlclaw_scheduler_run_duration_seconds",
            "Wall-clock seconds one attempt took, by task",
            ["task"],
            buckets=DURATION_BUCKETS,
        ),
        "lateness": Histogram(
            "owlclaw_scheduler_run_lateness_seconds",
            "Seconds from a run's due time (or run_task call) to its first attempt's start, by task",
            ["task"],
            buckets=LATENESS_BUCKETS,
        ),
    }


@functools.lru_cache(maxsize=4096)
def _child(metric: str, *labels: str) -> Any:
    """One label set of a metric (``labels()`` is slow; the children live as
    long as the metric, as nothing here removes a label set)."""
    m = _metrics()
    assert m is not None
    return m[metric].labels(*labels)


def record_attempt(task: str, outcome: str, duration: float) -> None:
    if _metrics() is not None:
        _child("attempts", task, outcome).inc()
        _child("duration", task).observe(duration)


def record_run(task: str, state: str) -> None:
    if _metrics() is not None:
        _child("runs", task, state).inc()


def record_lateness(task: str, seconds: float) -> None:
    if _metrics() is not None:
        _child("lateness", task).observe(max(seconds, 0.0))


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

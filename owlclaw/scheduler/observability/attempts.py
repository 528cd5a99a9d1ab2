"""``observe_attempt``: the log lines, span and metrics around one attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from owlclaw.scheduler.errors import describe_error
from owlclaw.scheduler.models import TaskContext, TaskOptions
from owlclaw.scheduler.observability import logs, metrics, tracing

__all__ = ["observe_attempt"]


@contextlib.contextmanager
def observe_attempt(
    options: TaskOptions,
    ctx: TaskContext,
    payload: Any,
    *,
    trace: Mapping[str, Any] | None = None,
    lateness: float | None = None,
) -> Iterator[None]:
    """Wrap one attempt: a ``started`` line, then ``succeeded``, ``failed`` or
    ``cancelled`` with its duration; a span (child of ``trace``); metrics.

    ``lateness`` (seconds from due time to start) is given for first attempts.
    A failure counts as the run's final one when no retry follows.
    """
    name, task_id, attempt = options.name, ctx.task_id, ctx.attempt
    backend = str(getattr(ctx.scheduler, "backend_name", "unknown"))
    logs.attempt_event(logging.INFO, "started", name, task_id, attempt)
    logs.log_payload(name, task_id, attempt, payload)
    if lateness is not None:
        metrics.record_lateness(name, lateness)
    start = time.perf_counter()
    with tracing.run_span(name, task_id, attempt, backend, trace):
        try:
            yield
        except asyncio.CancelledError:
            duration = time.perf_counter() - start
            logs.attempt_event(logging.WARNING, "cancelled", name, task_id, attempt, duration=duration)
            metrics.record_attempt(name, "cancelled", duration)
            raise
        except Exception as exc:
            duration = time.perf_counter() - start
            will_retry = options.will_retry(attempt, exc)
            logs.attempt_event(
                logging.WARNING if will_retry else logging.ERROR,
                "failed",
                name,
                task_id,
                attempt,
                duration=duration,
                error=describe_error(exc),
                will_retry=will_retry,
            )
            metrics.record_attempt(name, "failed", duration)
            if not will_retry:
                metrics.record_run(name, "failed")
            raise
        duration = time.perf_counter() - start
        logs.attempt_event(logging.INFO, "succeeded", name, task_id, attempt, duration=duration)
        metrics.record_attempt(name, "succeeded", duration)
        metrics.record_run(name, "succeeded")

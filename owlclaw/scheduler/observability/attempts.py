"""``observe_attempt``: the log lines, span and metrics around one attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from owlclaw.scheduler.errors import describe_error
from owlclaw.scheduler.models import TaskContext, TaskOptions
from owlclaw.scheduler.observability import logs, metrics, tracing

__all__ = ["observe_attempt"]


def observe_attempt(
    options: TaskOptions,
    ctx: TaskContext,
    payload: Any,
    *,
    trace: Mapping[str, Any] | None = None,
    lateness: float | None = None,
) -> contextlib.AbstractContextManager[None]:
    """Wrap one attempt: a ``started`` line, then ``succeeded``, ``failed`` or
    ``cancelled`` with its duration; a span (child of ``trace``); metrics.

    ``lateness`` (seconds from due time to start) is given for first attempts.
    A failure counts as the run's final one when no retry follows.
    """
    return _Observed(options, ctx, payload, trace, lateness)


class _Observed:
    """``observe_attempt``'s context manager (a class: no generator per attempt)."""

    __slots__ = ("_attempt", "_name", "_options", "_span", "_start", "_task_id")

    def __init__(
        self,
        options: TaskOptions,
        ctx: TaskContext,
        payload: Any,
        trace: Mapping[str, Any] | None,
        lateness: float | None,
    ) -> None:
        name, task_id, attempt = options.name, ctx.task_id, ctx.attempt
        self._options, self._name, self._task_id, self._attempt = options, name, task_id, attempt
        if logs.log.isEnabledFor(logging.INFO):
            occurrence = ctx.occurrence_id
            logs.attempt_event(
                logging.INFO, "started", name, task_id, attempt, occurrence_id=occurrence, lateness=lateness
            )
            logs.log_payload(name, task_id, attempt, payload)
        if lateness is not None:
            metrics.record_lateness(name, lateness)
        self._span = None
        if trace or tracing.recording():  # else no span: no context to continue, no provider to record it
            span = tracing.run_span(name, task_id, attempt, ctx.scheduler, trace)
            self._span = None if span is tracing.NO_SPAN else span
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()
        if self._span is not None:
            self._span.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        name, task_id, attempt = self._name, self._task_id, self._attempt
        duration = time.perf_counter() - self._start
        if exc is None:
            if logs.log.isEnabledFor(logging.INFO):
                logs.attempt_event(logging.INFO, "succeeded", name, task_id, attempt, duration=duration)
            metrics.record_ended(name, "succeeded", duration, "succeeded")
        elif isinstance(exc, asyncio.CancelledError):
            logs.attempt_event(logging.WARNING, "cancelled", name, task_id, attempt, duration=duration)
            metrics.record_ended(name, "cancelled", duration, None)
        elif isinstance(exc, Exception):
            will_retry = self._options.will_retry(attempt, exc)
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
            metrics.record_ended(name, "failed", duration, None if will_retry else "failed")
        return None if self._span is None else self._span.__exit__(kind, exc, tb)

"""Running one attempt of a task, and deciding what follows it.

``run_attempt`` is the one place that decides whether a failed attempt is
retried or final, after how long, and what a timeout says; a backend maps the
``AttemptOutcome`` it returns onto its engine (queue the retry, record the
failure, or tell the engine's SDK).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from owlclaw.scheduler.errors import describe_error
from owlclaw.scheduler.kit.payloads import check_result, json_roundtrip
from owlclaw.scheduler.kit.sync import call_sync, task_exit
from owlclaw.scheduler.models import CancelFlag, TaskContext, TaskFailure, TaskOptions
from owlclaw.scheduler.observability import observe_attempt
from owlclaw.scheduler.protocol import Scheduler

__all__ = [
    "AttemptOutcome",
    "execute_attempt",
    "failed_outcome",
    "log_attempt_failure",
    "make_context",
    "run_attempt",
    "run_on_failure",
    "timeout_error",
    "uses_threads",
]

log = logging.getLogger("owlclaw.scheduler.runs")

_is_async_cached = functools.lru_cache(maxsize=1024)(inspect.iscoroutinefunction)


def _is_async(func: Any) -> bool:
    """``inspect.iscoroutinefunction``, asked once per function, not per attempt."""
    try:
        return _is_async_cached(func)
    except TypeError:  # an unhashable callable
        return inspect.iscoroutinefunction(func)


def uses_threads(options: TaskOptions) -> bool:
    """Whether the task's function or its ``on_failure`` is sync (run on the
    worker's threads, see ``kit.sync.hold_sync_threads``)."""
    return not _is_async(options.func) or (
        options.on_failure is not None and not _is_async(options.on_failure)
    )


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt came to, and what follows it.

    On success ``error`` is None, ``result`` is the task's result as JSON
    carries it, and ``final`` is True. On failure ``error`` is
    ``"ExceptionType: message"`` and ``exception`` the exception (a
    ``TimeoutError`` carrying the timeout text when ``timed_out``);
    ``retryable`` says whether the error may be retried at all, ``final``
    whether this was the run's last attempt (no retries left, or not
    retryable), and ``retry_delay`` how many seconds to wait before the next
    attempt (None when final).
    """

    attempt: int
    result: Any = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    timed_out: bool = False
    retryable: bool = False
    final: bool = True
    retry_delay: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def _success(attempt: int, result: Any) -> AttemptOutcome:
    """``AttemptOutcome(attempt=attempt, result=result)``, its ``__dict__`` set at
    once (a frozen dataclass sets each field through ``object.__setattr__``)."""
    outcome = object.__new__(AttemptOutcome)
    # the other fields read their defaults from the class (a unit test compares the two)
    object.__setattr__(outcome, "__dict__", {"attempt": attempt, "result": result})
    return outcome


def timeout_error(options: TaskOptions) -> TimeoutError:
    """The error of an attempt that ran past its task's ``timeout``."""
    return TimeoutError(f"task {options.name!r} exceeded its timeout of {options.timeout:g}s")


def failed_outcome(
    options: TaskOptions, attempt: int, exc: BaseException, *, timed_out: bool = False
) -> AttemptOutcome:
    """The outcome of failed attempt number ``attempt`` (1-based).

    A timeout may always be retried; another error as ``TaskOptions.should_retry``
    says. The wait before a retry follows the task's backoff.
    """
    retryable = timed_out or options.should_retry(exc)
    final = not options.will_retry(attempt, None if timed_out else exc)
    return AttemptOutcome(
        attempt=attempt,
        error=describe_error(exc),
        exception=exc,
        timed_out=timed_out,
        retryable=retryable,
        final=final,
        retry_delay=None if final else options.retry_delay(attempt),
    )


def make_context(
    options: TaskOptions,
    *,
    task_id: str,
    attempt: int,
    scheduler: Scheduler,
    durable_sleep: Callable[[float], Awaitable[None]] | None = None,
    cancel_event: CancelFlag | None = None,
    scheduled_for: datetime | None = None,
    occurrence_id: str | None = None,
) -> TaskContext:
    """The ``ctx`` of one attempt; ``durable_sleep`` is used only by durable
    tasks. Called on the worker's event loop, whose loop ``ctx.sync_scheduler``
    calls. ``scheduled_for`` and ``occurrence_id`` are given for runs a
    schedule fired (``ctx.scheduled_for``, ``ctx.occurrence_id``)."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    # positional: a class called with keywords builds a kwargs dict (a third of this call)
    return TaskContext(
        task_id,
        options.name,
        attempt,
        scheduler,
        durable_sleep if options.durable else None,
        cancel_event,
        loop,
        scheduled_for,
        occurrence_id,
    )


async def run_attempt(
    options: TaskOptions,
    payload: Any,
    ctx: TaskContext,
    *,
    trace: Mapping[str, Any] | None = None,
    lateness: float | None = None,
    timed_out: Callable[[], bool] | None = None,
    abandoned: Callable[[], bool] | None = None,
    through: Callable[[Awaitable[Any]], Awaitable[Any]] | None = None,
    record: Callable[[AttemptOutcome], None] | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> AttemptOutcome:
    """Run attempt ``ctx.attempt`` of a task and return its outcome; a task's
    error is returned, not raised.

    A failure is logged; a final one then calls the task's ``on_failure``
    with a ``TaskFailure`` before this returns, so a run can be reported
    FAILED once its callback has returned. ``record`` (if given) sees a
    failed outcome before that, e.g. to store the error where status reads
    find it while ``on_failure`` runs.

    The attempt is cut off after ``options.timeout`` seconds of real time.
    A backend that keeps time itself (the memory backend's virtual clock)
    passes ``timed_out``, cancels the attempt when its time is up, and
    ``timed_out()`` then says that the cancellation was a timeout. Any other
    cancellation propagates. ``abandoned`` (if given) says that the backend
    has given up on the attempt (its run was cancelled meanwhile): an error
    the task raises then is that cancellation's echo, raised as
    ``CancelledError``, not a failure. ``through`` wraps the task's call (the
    memory backend injects faults and its timeouts there).

    ``trace`` is the metadata the scheduling call sent (the attempt's span is
    its child); ``lateness`` is the seconds from due time to a first attempt's
    start. See ``owlclaw.scheduler.observability``.

    ``executor`` runs a sync task (and a sync ``on_failure``): the worker's
    ``kit.sync.SyncExecutor``, sized by its slots. A sync attempt cut off by
    its timeout or a cancellation sees ``ctx.cancelled``; its thread runs on
    until the function returns (see ``kit.sync.hold_sync_threads``), its
    result discarded.
    """
    call: Awaitable[Any] = execute_attempt(
        options, payload, ctx, trace=trace, lateness=lateness, executor=executor
    )
    if through is not None:
        call = through(call)
    attempt = ctx.attempt
    try:
        if timed_out is None:
            async with asyncio.timeout(options.timeout) as deadline:
                result = await call
        else:
            result = await call
        return _success(attempt, result)
    except asyncio.CancelledError:
        if timed_out is None or not timed_out():
            raise
        outcome = failed_outcome(options, attempt, timeout_error(options), timed_out=True)
    except Exception as exc:  # noqa: BLE001 - a task's failure is data
        if abandoned is not None and abandoned():
            raise asyncio.CancelledError from None
        if timed_out is None and isinstance(exc, TimeoutError) and deadline.expired():
            outcome = failed_outcome(options, attempt, timeout_error(options), timed_out=True)
        else:
            outcome = failed_outcome(options, attempt, exc)
    error = outcome.error or ""
    if record is not None:
        record(outcome)
    log_attempt_failure(options, ctx.task_id, attempt, error, final=outcome.final)
    if outcome.final:
        failure = TaskFailure(options.name, ctx.task_id, json_roundtrip(payload, "payload"), error, attempt)
        await run_on_failure(options, failure, executor=executor)
    return outcome


async def execute_attempt(
    options: TaskOptions,
    payload: Any,
    ctx: TaskContext,
    *,
    trace: Mapping[str, Any] | None = None,
    lateness: float | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> Any:
    """Call the task once and return its result as JSON would carry it; its
    error is raised. Logged, traced and counted (``observe_attempt``).
    ``run_attempt`` adds the timeout and the retry decision.

    A sync function runs on ``executor`` (see ``run_attempt``). A
    ``SystemExit`` or other ``BaseException`` that is not an ``Exception``
    (cancellation and ``KeyboardInterrupt`` aside) is raised as a
    ``kit.sync.TaskExit`` of the same name: a failed attempt, not a dead worker.
    """
    with observe_attempt(options, ctx, payload, trace=trace, lateness=lateness):
        try:
            if _is_async(options.func):
                result = await options.func(payload, ctx)
            else:
                result = await call_sync(
                    executor,
                    options.func,
                    payload,
                    ctx,
                    owner=ctx.scheduler,
                    on_cancel=ctx._stop_attempt,
                )
                if inspect.isawaitable(result):
                    result = await result
        except BaseException as exc:
            failure = task_exit(exc)
            if failure is exc:
                raise
            raise failure from exc
        return check_result(result, task=options.name)


async def run_on_failure(
    options: TaskOptions, failure: TaskFailure, *, executor: concurrent.futures.Executor | None = None
) -> None:
    """Call the task's ``on_failure`` (a sync one on ``executor``); its own
    errors (``SystemExit`` included) are logged, never raised."""
    if options.on_failure is None:
        return
    try:
        if inspect.iscoroutinefunction(options.on_failure):
            await options.on_failure(failure)
        else:
            result = await call_sync(executor, options.on_failure, failure)
            if inspect.isawaitable(result):
                await result
    except (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a failing callback must not change the run
        log.error("on_failure of task %s (%s) raised %s", options.name, failure.task_id, describe_error(exc))


def log_attempt_failure(
    options: TaskOptions, task_id: str, attempt: int, error: str, *, final: bool = False
) -> None:
    """A DEBUG line per failed attempt with the retries left; the INFO+ line
    per failure is observability's "run failed"."""
    retries_left = 0 if final else max(options.retries + 1 - attempt, 0)
    if retries_left:
        log.debug(
            "task %s (%s) attempt %d failed, %d retries left: %s",
            options.name,
            task_id,
            attempt,
            retries_left,
            error,
        )
    else:
        log.debug("task %s (%s) failed after %d attempts: %s", options.name, task_id, attempt, error)

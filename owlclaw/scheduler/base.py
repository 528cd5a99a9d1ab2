"""What every backend shares: task declarations, input checks, JSON rules,
running one attempt, and the worker's signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import re
import signal
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

from owlclaw.scheduler.cron import normalize_cron
from owlclaw.scheduler.errors import (
    InvalidScheduleError,
    PayloadError,
    TaskDefinitionError,
    TaskNotRegisteredError,
)
from owlclaw.scheduler.models import OnFailure, TaskContext, TaskFailure, TaskOptions
from owlclaw.scheduler.observability import observe_attempt

__all__ = ["BaseScheduler", "dump_json", "json_roundtrip", "resolve_due_time"]

F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B", bound="BaseScheduler")

log = logging.getLogger("owlclaw.scheduler.runs")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
#: Largest payload, as compact UTF-8 JSON: well under the 4 MiB gRPC message
#: limit of Hatchet's SDK and engine, so every backend refuses the same ones.
MAX_PAYLOAD_BYTES = 1024 * 1024
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def dump_json(value: Any, what: str) -> str:
    """Serialize as the engine would, or raise PayloadError naming ``what``."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PayloadError(
            f"{what} is not JSON-serializable ({exc}); use dicts, lists, str, "
            "int, float (finite), bool and None, e.g. datetime.isoformat() for times"
        ) from exc


def json_roundtrip(value: Any, what: str) -> Any:
    """Return ``value`` exactly as it comes back after a trip through JSON."""
    return json.loads(dump_json(value, what))


def check_payload(payload: Any) -> dict[str, Any]:
    """A payload is a JSON object; None means ``{}``."""
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise PayloadError(
            f"payload must be a JSON object (a dict), got {type(payload).__name__}; "
            'wrap it, e.g. {"value": ...}'
        )
    text = dump_json(dict(payload), "payload")
    size = len(text.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"payload is {size} bytes as JSON, over the {MAX_PAYLOAD_BYTES}-byte limit; "
            "store large data elsewhere (a file, a database row) and pass its key"
        )
    result: dict[str, Any] = json.loads(text)
    return result


def resolve_due_time(now: datetime, delay_seconds: float | None, at: datetime | None) -> datetime:
    """The UTC instant a one-off schedule is due."""
    if (delay_seconds is None) == (at is None):
        raise InvalidScheduleError(
            "give exactly one of delay_seconds=<seconds> or at=<timezone-aware datetime>"
        )
    if at is not None:
        if not isinstance(at, datetime):
            raise InvalidScheduleError(f"at must be a datetime, got {type(at).__name__}")
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidScheduleError(
                f"at={at.isoformat()} is naive; pass a timezone-aware datetime, "
                "e.g. datetime(..., tzinfo=timezone.utc)"
            )
        return at.astimezone(UTC)
    if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, (int, float)):
        raise InvalidScheduleError(f"delay_seconds must be a number of seconds, got {delay_seconds!r}")
    if not math.isfinite(delay_seconds) or delay_seconds <= 0:
        raise InvalidScheduleError(
            f"delay_seconds must be > 0, got {delay_seconds!r}; use run_task() to run now"
        )
    return now + timedelta(seconds=delay_seconds)


def run_priority(options: TaskOptions, priority: Any) -> int:
    """A run's priority: the task's unless the call gives one."""
    if priority is None:
        return options.priority
    if isinstance(priority, bool) or priority not in (1, 2, 3):
        raise InvalidScheduleError(f"priority must be 1, 2 or 3 (3 runs first), got {priority!r}")
    return int(priority)


def _check_number(name: str, value: Any, *, minimum: float, allow_equal: bool) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= minimum if allow_equal else value > minimum)
    )
    if not ok:
        sign = ">=" if allow_equal else ">"
        raise TaskDefinitionError(f"{name} must be a number {sign} {minimum:g}, got {value!r}")


def make_options(
    func: Callable[..., Any],
    name: str | None,
    *,
    cron: str | None,
    retries: int,
    timeout: float | None,
    priority: int,
    durable: bool,
    backoff_factor: float | None = None,
    backoff_max_seconds: float | None = None,
    backoff: str | None = None,
    backoff_base: float | None = None,
    retry_on: Any = (),
    no_retry_on: Any = (),
    on_failure: Any = None,
    concurrency: int | None = None,
    concurrency_key: str | None = None,
) -> TaskOptions:
    if not callable(func):
        raise TaskDefinitionError(f"@task must decorate a function, got {func!r}")
    task_name = name if name is not None else getattr(func, "__name__", "")
    if not isinstance(task_name, str) or not _NAME.match(task_name):
        raise TaskDefinitionError(
            f"task name {task_name!r} is invalid: use 1-128 letters, digits, '_', '.', ':' or '-'"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise TaskDefinitionError(f"retries must be an int >= 0, got {retries!r}")
    if timeout is not None:
        _check_number("timeout", timeout, minimum=0, allow_equal=False)
    if isinstance(priority, bool) or priority not in (1, 2, 3):
        raise TaskDefinitionError(
            f"priority must be 1, 2 or 3 (Hatchet's range, 3 runs first), got {priority!r}"
        )
    backoff, backoff_base = _check_backoff(backoff, backoff_base, backoff_factor, backoff_max_seconds)
    if on_failure is not None and not callable(on_failure):
        raise TaskDefinitionError(
            f"on_failure must be a function taking a TaskFailure (sync or async), got {on_failure!r}"
        )
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise TaskDefinitionError(f"concurrency must be an int >= 1 (most runs at once), got {concurrency!r}")
    if concurrency_key is not None:
        if concurrency is None:
            raise TaskDefinitionError(
                f"concurrency_key={concurrency_key!r} needs a limit: add concurrency=N (runs per key)"
            )
        if not isinstance(concurrency_key, str) or not _FIELD.match(concurrency_key):
            raise TaskDefinitionError(
                f"concurrency_key must name a top-level payload field (letters, digits, '_'), "
                f"got {concurrency_key!r}"
            )
    return TaskOptions(
        name=task_name,
        func=func,
        retries=retries,
        timeout=float(timeout) if timeout is not None else None,
        priority=priority,
        durable=bool(durable),
        cron=normalize_cron(cron) if cron is not None else None,
        backoff=backoff,
        backoff_base=backoff_base,
        backoff_max_seconds=backoff_max_seconds,
        retry_on=_exception_types("retry_on", retry_on),
        no_retry_on=_exception_types("no_retry_on", no_retry_on),
        on_failure=on_failure,
        concurrency=concurrency,
        concurrency_key=concurrency_key,
    )


def _check_backoff(
    backoff: str | None,
    base: float | None,
    factor: float | None,
    max_seconds: float | None,
) -> tuple[str | None, float | None]:
    """Validate the backoff arguments; returns (backoff, base)."""
    if factor is not None:
        if backoff is not None or base is not None:
            raise TaskDefinitionError(
                "give either backoff_factor=F or backoff='exponential', backoff_base=F, not both"
            )
        _check_number("backoff_factor", factor, minimum=1, allow_equal=True)
        backoff, base = "exponential", factor
    if max_seconds is not None:
        _check_number("backoff_max_seconds", max_seconds, minimum=0, allow_equal=False)
    if backoff is None:
        if base is not None or max_seconds is not None:
            raise TaskDefinitionError(
                "backoff_base/backoff_max_seconds need backoff='fixed' or backoff='exponential'"
            )
        return None, None
    if backoff == "exponential":
        base = 2.0 if base is None else base
        _check_number("backoff_base", base, minimum=1, allow_equal=True)
        return backoff, base
    if backoff == "fixed":
        # Hatchet waits whole seconds: only whole seconds wait the same everywhere
        if not isinstance(base, (int, float)) or isinstance(base, bool) or base < 1 or base != int(base):
            raise TaskDefinitionError(
                f"backoff='fixed' needs backoff_base=<whole seconds >= 1> (the wait before each "
                f"retry; the engine counts whole seconds), got {base!r}"
            )
        if max_seconds is not None:
            raise TaskDefinitionError(
                "backoff='fixed' waits backoff_base each time: drop backoff_max_seconds"
            )
        return backoff, float(base)
    raise TaskDefinitionError(f"backoff must be 'fixed' or 'exponential', got {backoff!r}")


def _exception_types(name: str, value: Any) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, (tuple, list)) else (value,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, Exception)):
            raise TaskDefinitionError(
                f"{name} takes exception classes, e.g. {name}=(TimeoutError, ConnectionError), got {t!r}"
            )
    return tuple(types)


async def run_on_failure(options: TaskOptions, failure: TaskFailure) -> None:
    """Call the task's ``on_failure``; its own errors are logged, never raised."""
    if options.on_failure is None:
        return
    try:
        if inspect.iscoroutinefunction(options.on_failure):
            await options.on_failure(failure)
        else:
            result = await asyncio.to_thread(options.on_failure, failure)
            if inspect.isawaitable(result):
                await result
    except Exception as exc:  # noqa: BLE001 - a failing callback must not change the run
        log.error("on_failure of task %s (%s) raised %s", options.name, failure.task_id, describe_error(exc))


async def execute_attempt(
    options: TaskOptions,
    payload: Any,
    ctx: TaskContext,
    *,
    trace: Mapping[str, Any] | None = None,
    lateness: float | None = None,
) -> Any:
    """Run one attempt of a task and return its result as JSON would carry it.

    Logged, traced (a child of the span in ``trace``, the metadata the
    scheduling call sent) and counted: see ``owlclaw.scheduler.observability``.
    """
    with observe_attempt(options, ctx, payload, trace=trace, lateness=lateness):
        if inspect.iscoroutinefunction(options.func):
            result = await options.func(payload, ctx)
        else:
            result = await asyncio.to_thread(options.func, payload, ctx)
            if inspect.isawaitable(result):
                result = await result
        return json_roundtrip(result, f"the result of task {options.name!r}")


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def log_attempt_failure(
    options: TaskOptions, task_id: str, attempt: int, error: str, *, final: bool = False
) -> None:
    # DEBUG: the one INFO+ line per failure is observability's "run failed"
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


class BaseScheduler:
    """Task registry, validation and context-manager plumbing for backends."""

    backend_name = "base"

    def __init__(self) -> None:
        self._tasks: dict[str, TaskOptions] = {}

    @property
    def tasks(self) -> Mapping[str, TaskOptions]:
        return MappingProxyType(self._tasks)

    def task(
        self,
        name: str | None = None,
        *,
        cron: str | None = None,
        retries: int = 0,
        timeout: float | None = None,
        priority: int = 1,
        durable: bool = False,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
        backoff: str | None = None,
        backoff_base: float | None = None,
        retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        no_retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        on_failure: OnFailure | None = None,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
    ) -> Callable[[F], F]:
        def decorate(func: F) -> F:
            options = make_options(
                func,
                name,
                cron=cron,
                retries=retries,
                timeout=timeout,
                priority=priority,
                durable=durable,
                backoff_factor=backoff_factor,
                backoff_max_seconds=backoff_max_seconds,
                backoff=backoff,
                backoff_base=backoff_base,
                retry_on=retry_on,
                no_retry_on=no_retry_on,
                on_failure=on_failure,
                concurrency=concurrency,
                concurrency_key=concurrency_key,
            )
            self.add_tasks([options])
            return func

        return decorate

    def add_tasks(self, tasks: Iterable[TaskOptions]) -> None:
        for options in tasks:
            if options.name in self._tasks:
                raise TaskDefinitionError(
                    f"a task named {options.name!r} is already registered; pick another name"
                )
            self._check_task(options)
            self._tasks[options.name] = options
            self._task_added(options)

    def _check_task(self, options: TaskOptions) -> None:
        """Hook: raise TaskDefinitionError for what this backend cannot run."""

    def _task_added(self, options: TaskOptions) -> None:
        """Hook for backends that must know tasks as they are declared."""

    def _options(self, task_name: str) -> TaskOptions:
        try:
            return self._tasks[task_name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none yet"
            raise TaskNotRegisteredError(
                f"no task named {task_name!r} is registered (registered: {known}); "
                "declare it with @scheduler.task"
            ) from None

    async def connect(self) -> None:
        raise NotImplementedError

    async def disconnect(self) -> None:
        raise NotImplementedError

    async def start_worker(self) -> None:
        raise NotImplementedError

    async def stop_worker(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: B) -> B:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    def run_worker(self) -> None:
        asyncio.run(self._serve_until_signal())

    async def _serve_until_signal(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        async with self:
            await self.start_worker()
            logging.getLogger("owlclaw.scheduler").info(
                "%s worker running %d tasks; SIGTERM drains and stops",
                self.backend_name,
                len(self._tasks),
            )
            await stop.wait()
            await self.stop_worker()

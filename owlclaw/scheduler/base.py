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
from owlclaw.scheduler.models import TaskContext, TaskOptions

__all__ = ["BaseScheduler", "dump_json", "json_roundtrip", "resolve_due_time"]

F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B", bound="BaseScheduler")

log = logging.getLogger("owlclaw.scheduler.runs")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
#: Largest payload, as compact UTF-8 JSON: well under the 4 MiB gRPC message
#: limit of Hatchet's SDK and engine, so every backend refuses the same ones.
MAX_PAYLOAD_BYTES = 1024 * 1024


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
    backoff_factor: float | None,
    backoff_max_seconds: float | None,
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
    if backoff_factor is not None:
        _check_number("backoff_factor", backoff_factor, minimum=1, allow_equal=True)
    if backoff_max_seconds is not None:
        _check_number("backoff_max_seconds", backoff_max_seconds, minimum=0, allow_equal=False)
    return TaskOptions(
        name=task_name,
        func=func,
        retries=retries,
        timeout=float(timeout) if timeout is not None else None,
        priority=priority,
        durable=bool(durable),
        cron=normalize_cron(cron) if cron is not None else None,
        backoff_factor=backoff_factor,
        backoff_max_seconds=backoff_max_seconds,
    )


async def execute_attempt(options: TaskOptions, payload: Any, ctx: TaskContext) -> Any:
    """Run one attempt of a task and return its result as JSON would carry it."""
    if inspect.iscoroutinefunction(options.func):
        result = await options.func(payload, ctx)
    else:
        result = await asyncio.to_thread(options.func, payload, ctx)
        if inspect.isawaitable(result):
            result = await result
    return json_roundtrip(result, f"the result of task {options.name!r}")


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def log_attempt_failure(options: TaskOptions, task_id: str, attempt: int, error: str) -> None:
    retries_left = max(options.retries + 1 - attempt, 0)
    if retries_left:
        log.warning(
            "task %s (%s) attempt %d failed, %d retries left: %s",
            options.name,
            task_id,
            attempt,
            retries_left,
            error,
        )
    else:
        log.error("task %s (%s) failed after %d attempts: %s", options.name, task_id, attempt, error)


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
            self._tasks[options.name] = options
            self._task_added(options)

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

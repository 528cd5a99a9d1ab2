"""Task declarations: ``make_options`` turns the arguments of
``@scheduler.task(...)`` into checked ``TaskOptions``, or raises
``TaskDefinitionError`` naming the bad argument and what would be accepted.

Every backend declares tasks through it, so a declaration one backend accepts
is accepted (or refused with the same message) by all of them; a backend adds
its own limits in ``BaseScheduler._check_task``.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any, TypedDict

from owlclaw.scheduler.cron import normalize_cron
from owlclaw.scheduler.errors import InvalidScheduleError, TaskDefinitionError
from owlclaw.scheduler.limits import MAX_BACKOFF_SECONDS, MAX_RETRIES, MAX_TIMEOUT_SECONDS
from owlclaw.scheduler.models import OnFailure, TaskOptions
from owlclaw.scheduler.schedules.spec import check_zone

__all__ = ["TaskArgs", "make_options"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class TaskArgs(TypedDict, total=False):
    """The keyword arguments of ``@scheduler.task(...)``, for a decorator that
    passes them on to ``make_options`` (``**declared: Unpack[TaskArgs]``);
    their defaults are ``make_options``'s."""

    cron: str | None
    timezone: str
    retries: int
    timeout: float | None
    priority: int
    durable: bool
    backoff_factor: float | None
    backoff_max_seconds: float | None
    backoff: str | None
    backoff_base: float | None
    retry_on: type[Exception] | tuple[type[Exception], ...]
    no_retry_on: type[Exception] | tuple[type[Exception], ...]
    on_failure: OnFailure | None
    concurrency: int | None
    concurrency_key: str | None


def _check_number(
    name: str, value: Any, *, minimum: float, allow_equal: bool, maximum: float | None = None
) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= minimum if allow_equal else value > minimum)
    )
    if not ok:
        sign = ">=" if allow_equal else ">"
        raise TaskDefinitionError(f"{name} must be a number {sign} {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise TaskDefinitionError(
            f"{name} must be at most {maximum:g} seconds ({maximum / 86400:g} days), got {value!r}; "
            "check the unit (seconds, not milliseconds)"
        )


def make_options(
    func: Callable[..., Any],
    name: str | None = None,
    *,
    cron: str | None = None,
    timezone: str = "UTC",
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
) -> TaskOptions:
    """Check one task declaration and return its options. The keyword
    arguments and their defaults are those of ``@scheduler.task(...)``
    (``TaskArgs``, documented on ``Scheduler.task``).

    :raises TaskDefinitionError: an argument is out of range or of the wrong type.
    """
    if not callable(func):
        raise TaskDefinitionError(f"@task must decorate a function, got {func!r}")
    task_name = name if name is not None else getattr(func, "__name__", "")
    if not isinstance(task_name, str) or not _NAME.match(task_name):
        raise TaskDefinitionError(
            f"task name {task_name!r} is invalid: use 1-128 letters, digits, '_', '.', ':' or '-'"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise TaskDefinitionError(f"retries must be an int >= 0, got {retries!r}")
    if retries > MAX_RETRIES:
        raise TaskDefinitionError(
            f"retries must be at most {MAX_RETRIES}, got {retries!r}; for work that must keep "
            "trying, retry with backoff and add a cron that picks up what failed"
        )
    if durable and not inspect.iscoroutinefunction(func):
        raise TaskDefinitionError(
            f"durable=True needs an async function: task {task_name!r} is sync, and a durable sleep "
            "is awaited (`await ctx.sleep(...)`); declare it `async def`"
        )
    if timeout is not None:
        _check_number("timeout", timeout, minimum=0, allow_equal=False, maximum=MAX_TIMEOUT_SECONDS)
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
    timezone = _check_timezone(task_name, cron, timezone)
    return TaskOptions(
        name=task_name,
        func=func,
        retries=retries,
        timeout=float(timeout) if timeout is not None else None,
        priority=priority,
        durable=bool(durable),
        cron=normalize_cron(cron) if cron is not None else None,
        timezone=timezone,
        backoff=backoff,
        backoff_base=backoff_base,
        backoff_max_seconds=backoff_max_seconds,
        retry_on=_exception_types("retry_on", retry_on),
        no_retry_on=_exception_types("no_retry_on", no_retry_on),
        on_failure=on_failure,
        concurrency=concurrency,
        concurrency_key=concurrency_key,
    )


def _check_timezone(task_name: str, cron: str | None, timezone: Any) -> str:
    """An IANA zone the cron's wall times are read in; only with a cron."""
    if timezone == "UTC":
        return "UTC"
    if cron is None:
        raise TaskDefinitionError(
            f"timezone={timezone!r} without cron= on task {task_name!r}: the zone is the one "
            "the cron's wall times are read in; add cron='0 9 * * *' or drop timezone"
        )
    try:
        check_zone(timezone)
    except InvalidScheduleError as exc:
        raise TaskDefinitionError(f"task {task_name!r}: {exc}") from None
    return str(timezone)


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
        _check_number(
            "backoff_max_seconds", max_seconds, minimum=0, allow_equal=False, maximum=MAX_BACKOFF_SECONDS
        )
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
        _check_number("backoff_base", base, minimum=1, allow_equal=True, maximum=MAX_BACKOFF_SECONDS)
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

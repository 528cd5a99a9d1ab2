"""One way to wait for a condition: read it again until it holds or a deadline passes.

Every wait in the library and its tests goes through :func:`poll_until` (or its
blocking twin for threads and subprocess harnesses), so each has a bound and a
failure that says what it last saw.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from owlclaw.scheduler.errors import WaitTimeoutError

__all__ = ["PollTimeoutError", "poll_until", "poll_until_blocking"]

T = TypeVar("T")


class PollTimeoutError(WaitTimeoutError, AssertionError):
    """The condition did not hold in time; ``last`` is the last value read.

    An ``AssertionError`` too, so that a test that polls fails as a failed
    assertion (with what it saw), not as an error.
    """

    def __init__(self, message: str, last: Any) -> None:
        super().__init__(message)
        self.last = last


def _message(what: str, timeout: float, last: Any, error: BaseException | None) -> str:
    seen = f"last saw {last!r}" if error is None else f"last read raised {type(error).__name__}: {error}"
    return f"{what}: not reached within {timeout:g}s; {seen}"


async def poll_until(
    read: Callable[[], Awaitable[T] | T],
    done: Callable[[T], bool] = bool,
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``read()`` (sync or async) until ``done(value)``; return that value.

    Raises :class:`PollTimeoutError` after ``timeout`` seconds, naming ``what``
    and the last value read (or the last error, for exceptions in ``ignore``).
    A ``timeout`` of 0 reads once.
    """
    if not timeout >= 0:
        raise ValueError(f"poll_until needs a timeout >= 0 seconds, got {timeout!r}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            value = read()
            if inspect.isawaitable(value):
                value = await value
            last, error = value, None
            if done(value):
                return value
        except ignore as exc:
            error = exc
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise PollTimeoutError(_message(what, timeout, last, error), last)
        await asyncio.sleep(min(interval, remaining))


def poll_until_blocking(
    read: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """:func:`poll_until` for code without an event loop (threads, process harnesses)."""
    if not timeout >= 0:
        raise ValueError(f"poll_until_blocking needs a timeout >= 0 seconds, got {timeout!r}")
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            value = read()
            last, error = value, None
            if done(value):
                return value
        except ignore as exc:
            error = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PollTimeoutError(_message(what, timeout, last, error), last)
        time.sleep(min(interval, remaining))

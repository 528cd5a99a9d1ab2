"""The documented upper bounds on what a call may ask for (docs/testing.md, "Bounds").

Every value below passes through date arithmetic, float powers or recursive
JSON encoding somewhere in a worker; past these bounds that arithmetic
overflows and the run would stall QUEUED or RUNNING. So the call that gives
such a value is refused, on every backend alike, with the typed error and
the bound in its message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from owlclaw.scheduler.errors import InvalidScheduleError, PayloadError

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "MAX_DELAY_SECONDS",
    "MAX_JSON_DEPTH",
    "MAX_RETRIES",
    "MAX_TIMEOUT_SECONDS",
    "MAX_WAIT_SECONDS",
    "check_json_depth",
    "check_limit",
    "check_wait_seconds",
    "exponential_delay",
]

_DAY = 24 * 3600

#: Farthest a schedule (``delay_seconds``, ``at``) or a durable sleep may
#: reach: ten years, well inside what Hatchet's schedule times and Python's
#: datetime can hold.
MAX_DELAY_SECONDS = 10 * 365 * _DAY

#: Longest ``timeout`` of a task: seven days (Hatchet's execution timeout is
#: a duration the engine keeps per attempt; a week covers any agent step).
MAX_TIMEOUT_SECONDS = 7 * _DAY

#: Most ``retries`` of a task.
MAX_RETRIES = 100

#: Longest wait between two attempts (``backoff_max_seconds``, a fixed
#: ``backoff_base``, or the largest exponential step): one day.
MAX_BACKOFF_SECONDS = _DAY

#: Longest ``wait_for_task(timeout=...)``, ``advance(seconds)`` or
#: ``run_until_idle(max_seconds=...)``: as far as a schedule may reach.
MAX_WAIT_SECONDS = MAX_DELAY_SECONDS

#: Deepest nesting of lists and objects in a payload or result. JSON
#: encoders recurse per level; this is far below Python's recursion limit.
MAX_JSON_DEPTH = 100


def exponential_delay(base: float, failed_attempt: int, cap: float | None) -> float:
    """``base ** failed_attempt`` seconds, at most ``cap``, without overflowing."""
    limit = MAX_BACKOFF_SECONDS if cap is None else cap
    if base > 1 and failed_attempt * math.log(base) >= math.log(limit):
        return float(limit)
    return min(float(base**failed_attempt), float(limit))


def check_json_depth(value: Any, what: str) -> None:
    """Raise PayloadError when ``value`` nests deeper than ``MAX_JSON_DEPTH``.

    Iterative, so a value nested thousands deep is refused, not a
    ``RecursionError`` from the encoder.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise PayloadError(
                f"{what} nests lists/objects more than {MAX_JSON_DEPTH} levels deep; "
                "flatten it (e.g. a list of rows with parent ids) or store it elsewhere and pass its key"
            )
        stack.extend((child, depth + 1) for child in children)


def check_wait_seconds(name: str, value: Any) -> float:
    """A number of seconds to wait or move time by: finite, >= 0, at most
    ``MAX_WAIT_SECONDS`` (date arithmetic past it overflows).

    :raises InvalidScheduleError: naming ``name`` and the range.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or value > MAX_WAIT_SECONDS:
        raise InvalidScheduleError(
            f"{name} takes seconds from 0 to {MAX_WAIT_SECONDS} (ten years), got {value!r}"
        )
    return float(value)


def check_limit(limit: Any) -> int:
    """``list_tasks(limit=...)``: an int >= 1 (a negative slice would drop rows).

    :raises InvalidScheduleError: naming the fix.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidScheduleError(f"limit must be an int >= 1 (most runs to return), got {limit!r}")
    return limit

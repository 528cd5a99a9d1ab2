"""One table of every bad argument the scheduling API accepts from users, and
the test that runs each row on a backend: the same error type, and a message
that names the fix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from owlclaw.scheduler.errors import (
    InvalidCronError,
    InvalidScheduleError,
    PayloadError,
    SchedulerError,
    TaskDefinitionError,
    TaskNotFoundError,
    TaskNotRegisteredError,
)
from owlclaw.scheduler.kit import MAX_PAYLOAD_BYTES
from owlclaw.scheduler.limits import MAX_DELAY_SECONDS, MAX_RETRIES
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["BAD_CALLS", "BadCall", "BadCallConformance", "check_bad_call"]


@dataclass(frozen=True)
class BadCall:
    """A call with bad input, the error every backend raises, and a phrase of
    its message that tells the user what to write instead."""

    id: str
    call: Callable[[Any], Any]  # takes the scheduler; returns a coroutine, or raises at once
    error: type[SchedulerError]
    fix: str
    #: Other phrases the message must contain (e.g. the name the user gave).
    mentions: tuple[str, ...] = ()


async def _noop(payload: Any, ctx: Any) -> None: ...


def _add_cron(expression: Any) -> Callable[[Any], Any]:
    return lambda s: s.add_cron("conf_cron_target", expression)


def _wait_timeout(timeout: Any) -> Callable[[Any], Any]:
    return lambda s: s.wait_for_task(str(uuid.uuid4()), timeout=timeout)


def _list_limit(limit: Any) -> Callable[[Any], Any]:
    return lambda s: s.list_tasks(limit=limit)


def _with_priority(kind: str, priority: Any) -> Callable[[Any], Any]:
    if kind == "run":
        return lambda s: s.run_task("conf_echo", {}, priority=priority)
    return lambda s: s.schedule_task("conf_echo", {}, delay_seconds=60, priority=priority)


_SOON: dict[str, Any] = {"delay_seconds": 5}
_BIG = {"blob": "x" * MAX_PAYLOAD_BYTES}


def _nested(depth: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return {"deep": value}


_DEEP = _nested(5000)  # the JSON encoder would raise RecursionError, not a PayloadError


class _Model(BaseModel):
    user: str = "ada"


#: Every bad argument the scheduling API accepts from users.
BAD_CALLS: list[BadCall] = [
    BadCall(
        "run-unknown-task",
        lambda s: s.run_task("no_such_task"),
        TaskNotRegisteredError,
        "@scheduler.task",
        mentions=("no_such_task",),
    ),
    BadCall(
        "schedule-unknown-task",
        lambda s: s.schedule_task("no_such_task", **_SOON),
        TaskNotRegisteredError,
        "@scheduler.task",
    ),
    BadCall(
        "cron-unknown-task",
        lambda s: s.add_cron("no_such_task", "* * * * *"),
        TaskNotRegisteredError,
        "declare",
    ),
    BadCall("payload-list", lambda s: s.run_task("conf_echo", [1, 2]), PayloadError, "wrap it"),
    BadCall("payload-str", lambda s: s.run_task("conf_echo", "text"), PayloadError, "a dict"),
    BadCall(
        "payload-datetime",
        lambda s: s.run_task("conf_echo", {"at": datetime(2030, 1, 1, tzinfo=UTC)}),
        PayloadError,
        "isoformat",
    ),
    BadCall("payload-object", lambda s: s.run_task("conf_echo", {"x": object()}), PayloadError, "use dicts"),
    BadCall("payload-nan", lambda s: s.run_task("conf_echo", {"x": float("nan")}), PayloadError, "finite"),
    BadCall("payload-inf", lambda s: s.run_task("conf_echo", {"x": float("inf")}), PayloadError, "finite"),
    BadCall(
        "schedule-payload-list",
        lambda s: s.schedule_task("conf_echo", ["not", "a", "dict"], **_SOON),
        PayloadError,
        "wrap it",
    ),
    BadCall(
        "schedule-payload-datetime",
        lambda s: s.schedule_task("conf_echo", {"when": datetime(2030, 1, 1)}, **_SOON),
        PayloadError,
        "isoformat",
    ),
    BadCall(
        "schedule-payload-object",
        lambda s: s.schedule_task("conf_echo", {"x": object()}, **_SOON),
        PayloadError,
        "use dicts",
    ),
    BadCall(
        "schedule-payload-inf",
        lambda s: s.schedule_task("conf_echo", {"x": float("inf")}, **_SOON),
        PayloadError,
        "finite",
    ),
    BadCall(
        "payload-set", lambda s: s.schedule_task("conf_echo", {"x": {1}}, **_SOON), PayloadError, "lists"
    ),
    BadCall("payload-too-big", lambda s: s.run_task("conf_echo", _BIG), PayloadError, "store large data"),
    BadCall(
        "schedule-payload-too-big",
        lambda s: s.schedule_task("conf_echo", _BIG, **_SOON),
        PayloadError,
        "store large data",
    ),
    BadCall("payload-too-deep", lambda s: s.run_task("conf_echo", _DEEP), PayloadError, "levels deep"),
    BadCall(
        "schedule-payload-too-deep",
        lambda s: s.schedule_task("conf_echo", _DEEP, **_SOON),
        PayloadError,
        "levels deep",
    ),
    BadCall(
        "cron-payload-too-deep",
        lambda s: s.add_cron("conf_cron_target", "@daily", _DEEP),
        PayloadError,
        "levels deep",
    ),
    BadCall(
        "payload-pydantic-model",
        lambda s: s.run_task("conf_echo", _Model()),
        PayloadError,
        'model_dump(mode="json")',
    ),
    BadCall(
        "payload-nested-pydantic-model",
        lambda s: s.schedule_task("conf_echo", {"user": _Model()}, **_SOON),
        PayloadError,
        'model_dump(mode="json")',
    ),
    BadCall("cron-payload", lambda s: s.add_cron("conf_cron_target", "@daily", [1]), PayloadError, "wrap it"),
    BadCall("schedule-neither", lambda s: s.schedule_task("conf_echo"), InvalidScheduleError, "exactly one"),
    BadCall(
        "schedule-both",
        lambda s: s.schedule_task("conf_echo", delay_seconds=5, at=datetime(2030, 1, 1, tzinfo=UTC)),
        InvalidScheduleError,
        "exactly one",
    ),
    BadCall(
        "delay-zero", lambda s: s.schedule_task("conf_echo", delay_seconds=0), InvalidScheduleError, "> 0"
    ),
    BadCall(
        "delay-negative",
        lambda s: s.schedule_task("conf_echo", delay_seconds=-1),
        InvalidScheduleError,
        "> 0",
    ),
    BadCall(
        "delay-nan",
        lambda s: s.schedule_task("conf_echo", delay_seconds=float("nan")),
        InvalidScheduleError,
        "> 0",
    ),
    BadCall(
        "delay-inf",
        lambda s: s.schedule_task("conf_echo", delay_seconds=float("inf")),
        InvalidScheduleError,
        "> 0",
    ),
    BadCall(
        "delay-too-far",
        lambda s: s.schedule_task("conf_echo", delay_seconds=1e12),
        InvalidScheduleError,
        "ten years",
        mentions=(str(MAX_DELAY_SECONDS),),
    ),
    BadCall(
        "at-too-far",
        lambda s: s.schedule_task("conf_echo", at=datetime(9000, 1, 1, tzinfo=UTC)),
        InvalidScheduleError,
        "ten years",
    ),
    BadCall(
        "delay-text",
        lambda s: s.schedule_task("conf_echo", delay_seconds="5"),
        InvalidScheduleError,
        "number of seconds",
    ),
    BadCall(
        "delay-bool",
        lambda s: s.schedule_task("conf_echo", delay_seconds=True),
        InvalidScheduleError,
        "number of seconds",
    ),
    BadCall(
        "at-naive",
        lambda s: s.schedule_task("conf_echo", at=datetime(2030, 1, 1)),
        InvalidScheduleError,
        "timezone-aware",
    ),
    BadCall(
        "at-text", lambda s: s.schedule_task("conf_echo", at="2030-01-01"), InvalidScheduleError, "a datetime"
    ),
    *[
        BadCall(f"cron-{name}", _add_cron(expr), InvalidCronError, "fields")
        for name, expr in [
            ("empty", ""),
            ("blank", "   "),
            ("three-fields", "* * *"),
            ("seven-fields", "* * * * * * *"),
            ("minute-61", "61 * * * *"),
            ("hour-24", "0 24 * * *"),
            ("month-13", "0 0 1 13 *"),
            ("february-31", "0 0 31 2 *"),
            ("sunday-as-7", "0 0 * * 7"),
            ("words", "every day at noon"),
            ("unknown-alias", "@sometimes"),
            ("not-a-string", 5),
        ]
    ],
    BadCall(
        "status-unknown-id", lambda s: s.get_task_status(str(uuid.uuid4())), TaskNotFoundError, "no task"
    ),
    BadCall("status-malformed-id", lambda s: s.get_task_status("not-an-id"), TaskNotFoundError, "no task"),
    BadCall("cancel-unknown-id", lambda s: s.cancel_task(str(uuid.uuid4())), TaskNotFoundError, "no task"),
    BadCall(
        "wait-unknown-id",
        lambda s: s.wait_for_task(str(uuid.uuid4()), timeout=1),
        TaskNotFoundError,
        "no task",
    ),
    *[
        BadCall(
            f"wait-timeout-{label}",
            _wait_timeout(timeout),
            InvalidScheduleError,
            "seconds from 0 to",
        )
        for label, timeout in [("negative", -1), ("nan", float("nan")), ("huge", 1e12), ("text", "5")]
    ],
    BadCall(
        "at-out-of-range",
        lambda s: s.schedule_task("conf_echo", at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))),
        InvalidScheduleError,
        "check the date",
    ),
    BadCall(
        "remove-unknown-cron", lambda s: s.remove_cron(str(uuid.uuid4())), TaskNotFoundError, "list_crons"
    ),
    BadCall(
        "task-priority-0",
        lambda s: s.task(name="conf_bad", priority=0)(_noop),
        TaskDefinitionError,
        "1, 2 or 3",
    ),
    BadCall(
        "task-priority-4",
        lambda s: s.task(name="conf_bad", priority=4)(_noop),
        TaskDefinitionError,
        "1, 2 or 3",
    ),
    BadCall(
        "task-priority-text",
        lambda s: s.task(name="conf_bad", priority="3")(_noop),
        TaskDefinitionError,
        "1, 2 or 3",
    ),
    BadCall(
        "task-retries-negative",
        lambda s: s.task(name="conf_bad", retries=-1)(_noop),
        TaskDefinitionError,
        ">= 0",
    ),
    BadCall(
        "task-retries-float",
        lambda s: s.task(name="conf_bad", retries=1.5)(_noop),
        TaskDefinitionError,
        "an int",
    ),
    BadCall(
        "task-timeout-zero", lambda s: s.task(name="conf_bad", timeout=0)(_noop), TaskDefinitionError, "> 0"
    ),
    BadCall(
        "task-timeout-inf",
        lambda s: s.task(name="conf_bad", timeout=float("inf"))(_noop),
        TaskDefinitionError,
        "> 0",
    ),
    BadCall(
        "task-timeout-too-long",
        lambda s: s.task(name="conf_bad", timeout=1e12)(_noop),
        TaskDefinitionError,
        "at most",
    ),
    BadCall(
        "task-retries-too-many",
        lambda s: s.task(name="conf_bad", retries=MAX_RETRIES + 1)(_noop),
        TaskDefinitionError,
        f"at most {MAX_RETRIES}",
    ),
    BadCall(
        "task-backoff-max-too-long",
        lambda s: s.task(name="conf_bad", retries=3, backoff_factor=2, backoff_max_seconds=1e9)(_noop),
        TaskDefinitionError,
        "at most",
    ),
    BadCall(
        "task-fixed-backoff-too-long",
        lambda s: s.task(name="conf_bad", retries=3, backoff="fixed", backoff_base=10**9)(_noop),
        TaskDefinitionError,
        "at most",
    ),
    *[
        BadCall(f"list-limit-{label}", _list_limit(limit), InvalidScheduleError, ">= 1")
        for label, limit in [("negative", -1), ("zero", 0), ("text", "5"), ("bool", True)]
    ],
    BadCall(
        "task-name-space", lambda s: s.task(name="bad name")(_noop), TaskDefinitionError, "letters, digits"
    ),
    BadCall("task-name-empty", lambda s: s.task(name="")(_noop), TaskDefinitionError, "letters, digits"),
    BadCall("task-name-long", lambda s: s.task(name="n" * 129)(_noop), TaskDefinitionError, "1-128"),
    BadCall("task-not-callable", lambda s: s.task(name="conf_bad")(42), TaskDefinitionError, "a function"),
    BadCall(
        "task-duplicate",
        lambda s: s.task(name="conf_echo")(_noop),
        TaskDefinitionError,
        "another name",
        mentions=("already registered",),
    ),
    BadCall(
        "task-bad-cron", lambda s: s.task(name="conf_bad", cron="often")(_noop), InvalidCronError, "fields"
    ),
    *[
        BadCall(
            f"{kind}-priority-{label}",
            _with_priority(kind, priority),
            InvalidScheduleError,
            "1, 2 or 3",
        )
        for kind in ("run", "schedule")
        for label, priority in [("0", 0), ("4", 4), ("bool", True)]
    ],
]


async def check_bad_call(scheduler: Scheduler, case: BadCall) -> None:
    """Assert ``case`` raises its error with its fix, and registers nothing."""
    with pytest.raises(case.error) as caught:
        result = case.call(scheduler)
        if asyncio.iscoroutine(result):
            await result
    for phrase in (case.fix, *case.mentions):
        assert phrase in str(caught.value), f"{case.id}: the message does not say {phrase!r}: {caught.value}"
    assert "conf_bad" not in scheduler.tasks


class BadCallConformance(ConformanceBase):
    """Bad input is refused the same way on every backend."""

    @pytest.mark.parametrize("case", BAD_CALLS, ids=lambda c: c.id)
    async def test_bad_input_is_refused_with_the_same_error(
        self, scheduler: Scheduler, case: BadCall
    ) -> None:
        """Every backend refuses the same bad input, with the same error type and fix."""
        await check_bad_call(scheduler, case)
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []

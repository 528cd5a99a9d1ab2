"""The behavioural contract every backend must pass.

Opt a backend in by subclassing and providing the ``scheduler`` fixture::

    from owlclaw.scheduler.testing import SchedulerConformance, register_conformance_tasks

    class TestMyBackend(SchedulerConformance):
        supports_virtual_time = False

        @pytest.fixture
        async def scheduler(self):
            s = register_conformance_tasks(MyScheduler(...))
            async with s:
                await s.start_worker()
                yield s
                await s.stop_worker()

Delays are a few real seconds so the same tests run against a real engine;
on a virtual clock they take no time. Tests that only make sense on virtual
time are skipped, with the reason, when ``supports_virtual_time`` is False.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest

from owlclaw.scheduler.clock import utc_now
from owlclaw.scheduler.errors import (
    InvalidCronError,
    InvalidScheduleError,
    PayloadError,
    SchedulerConnectionError,
    SchedulerError,
    TaskDefinitionError,
    TaskNotFoundError,
    TaskNotRegisteredError,
    WaitTimeoutError,
)
from owlclaw.scheduler.kit import MAX_PAYLOAD_BYTES
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.tasks import DECLARED_CRON, EXPONENTIAL_BACKOFF, FIXED_BACKOFF

__all__ = ["BAD_CALLS", "BadCall", "SchedulerConformance", "SchedulerFaultConformance"]

JSON_VALUES: list[Any] = [
    {"nested": {"list": [1, 2.5, "x", None, True]}},
    [1, "two", {"three": 3}],
    "text with ünïcode",
    42,
    3.25,
    True,
    None,
]


@dataclass(frozen=True)
class BadCall:
    """A call with bad input, the error every backend raises, and a phrase of
    its message that tells the user what to write instead."""

    id: str
    call: Callable[[Any], Any]  # takes the scheduler; returns a coroutine, or raises at once
    error: type[SchedulerError]
    fix: str


async def _noop(payload: Any, ctx: Any) -> None: ...


def _add_cron(expression: Any) -> Callable[[Any], Any]:
    return lambda s: s.add_cron("conf_cron_target", expression)


_SOON: dict[str, Any] = {"delay_seconds": 5}
_BIG = {"blob": "x" * MAX_PAYLOAD_BYTES}

#: Every bad argument the scheduling API accepts from users.
BAD_CALLS: list[BadCall] = [
    BadCall(
        "run-unknown-task", lambda s: s.run_task("no_such_task"), TaskNotRegisteredError, "@scheduler.task"
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
        "task-name-space", lambda s: s.task(name="bad name")(_noop), TaskDefinitionError, "letters, digits"
    ),
    BadCall("task-name-empty", lambda s: s.task(name="")(_noop), TaskDefinitionError, "letters, digits"),
    BadCall("task-name-long", lambda s: s.task(name="n" * 129)(_noop), TaskDefinitionError, "1-128"),
    BadCall("task-not-callable", lambda s: s.task(name="conf_bad")(42), TaskDefinitionError, "a function"),
    BadCall("task-duplicate", lambda s: s.task(name="conf_echo")(_noop), TaskDefinitionError, "another name"),
    BadCall(
        "task-bad-cron", lambda s: s.task(name="conf_bad", cron="often")(_noop), InvalidCronError, "fields"
    ),
]


async def check_bad_call(scheduler: Scheduler, case: BadCall) -> None:
    """Assert ``case`` raises its error with its fix, and registers nothing."""
    with pytest.raises(case.error) as caught:
        result = case.call(scheduler)
        if asyncio.iscoroutine(result):
            await result
    assert case.fix in str(caught.value), f"{case.id}: the message does not say {case.fix!r}: {caught.value}"
    assert "conf_bad" not in scheduler.tasks


class SchedulerConformance:
    """Every rule of the ``Scheduler`` protocol, as tests."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    #: The backend runs on a clock that tests move (``advance()``).
    supports_virtual_time: bool = False
    #: Slack allowed between a due time and the start of the run, in seconds.
    start_tolerance: float = 10.0
    #: Longest a test waits for a run to finish, in seconds.
    wait_timeout: float = 60.0
    #: How late a retry may start after its backoff, in seconds. Hatchet
    #: v0.105.0 polls its retry queue every 1 s, slowing to every 30 s (plus
    #: jitter) while the queue stays empty; retries were seen 36 to 38 s late
    #: with ten of them waiting on a loaded 2-core machine.
    retry_slack: float = 60.0

    @pytest.fixture
    async def scheduler(self) -> AsyncIterator[Scheduler]:
        """A connected scheduler with ``register_conformance_tasks`` applied
        and a worker running. Backends must override this."""
        raise NotImplementedError("provide a `scheduler` fixture for your backend")
        yield  # pragma: no cover

    @pytest.fixture
    async def single_slot_scheduler(self) -> AsyncIterator[Scheduler]:
        """Like ``scheduler``, but its worker has 1 slot and nothing else runs
        on it; timestamps must be real (priority is judged by start times).
        Backends must override this."""
        raise NotImplementedError("provide a `single_slot_scheduler` fixture for your backend")
        yield  # pragma: no cover

    # helpers

    async def pass_time(self, scheduler: Scheduler, seconds: float) -> None:
        advance = getattr(scheduler, "advance", None)
        if self.supports_virtual_time and advance is not None:
            await advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def now(self, scheduler: Scheduler) -> datetime:
        clock = getattr(scheduler, "clock", None)
        if clock is not None:
            now: datetime = clock.now()
            return now
        return utc_now()

    async def wait_for_state(
        self, scheduler: Scheduler, task_id: str, states: Iterable[TaskState], timeout: float = 30
    ) -> TaskInfo:
        wanted = set(states)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            info = await scheduler.get_task_status(task_id)
            if info.state in wanted:
                return info
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"task {task_id} stayed {info.state} (wanted {wanted})")
            await asyncio.sleep(0.05)

    async def finish(self, scheduler: Scheduler, task_id: str) -> TaskInfo:
        return await scheduler.wait_for_task(task_id, timeout=self.wait_timeout)

    # running now

    @pytest.mark.parametrize("value", JSON_VALUES, ids=lambda v: type(v).__name__)
    async def test_run_task_returns_any_json_result(self, scheduler: Scheduler, value: Any) -> None:
        task_id = await scheduler.run_task("conf_echo", {"value": value})
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == value
        assert info.id == task_id
        assert info.task_name == "conf_echo"
        assert info.payload == {"value": value}
        assert info.attempts == 1
        assert info.error is None

    async def test_finished_run_has_aware_timestamps_in_order(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_echo", {"value": 1}))
        assert info.scheduled_at and info.started_at and info.finished_at
        for stamp in (info.scheduled_at, info.started_at, info.finished_at):
            assert stamp.utcoffset() == timedelta(0)
        assert info.started_at <= info.finished_at

    async def test_sync_task_function_runs_with_context(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sync_echo", {"value": 7}))
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"value": 7, "attempt": 1, "task": "conf_sync_echo"}

    async def test_context_describes_the_run(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_context")
        info = await self.finish(scheduler, task_id)
        assert info.result == {
            "task_id": task_id,
            "task_name": "conf_context",
            "attempt": 1,
            "cancelled": False,
        }

    async def test_result_comes_back_as_json_would_carry_it(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_tuple"))
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"pair": [1, 2], "3": "int key"}

    async def test_result_that_is_not_json_fails_the_run(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_not_json"))
        assert info.state is TaskState.FAILED
        assert info.error and "JSON" in info.error

    async def test_payload_is_stored_as_json(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.schedule_task("conf_echo", {"value": (1, 2), 5: "five"}, delay_seconds=3600)
        info = await scheduler.get_task_status(task_id)
        assert info.payload == {"value": [1, 2], "5": "five"}
        assert await scheduler.cancel_task(task_id) is True

    # bad input

    async def test_unknown_task_name_is_rejected(self, scheduler: Scheduler) -> None:
        with pytest.raises(TaskNotRegisteredError, match="no_such_task"):
            await scheduler.run_task("no_such_task")
        with pytest.raises(TaskNotRegisteredError):
            await scheduler.schedule_task("no_such_task", delay_seconds=5)
        with pytest.raises(TaskNotRegisteredError):
            await scheduler.add_cron("no_such_task", "* * * * *")

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"delay_seconds": 0},
            {"delay_seconds": -5},
            {"delay_seconds": float("nan")},
            {"at": datetime(2030, 1, 1)},
            {"delay_seconds": 5, "at": datetime(2030, 1, 1, tzinfo=UTC)},
        ],
        ids=["neither", "zero", "negative", "nan", "naive", "both"],
    )
    async def test_bad_schedule_is_rejected(self, scheduler: Scheduler, kwargs: dict[str, Any]) -> None:
        with pytest.raises(InvalidScheduleError):
            await scheduler.schedule_task("conf_echo", {}, **kwargs)
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []

    @pytest.mark.parametrize(
        "payload",
        [
            {"when": datetime(2030, 1, 1)},
            {"x": object()},
            {"x": float("inf")},
            ["not", "a", "dict"],
        ],
        ids=["datetime", "object", "inf", "list"],
    )
    async def test_payload_that_is_not_a_json_object_is_rejected(
        self, scheduler: Scheduler, payload: Any
    ) -> None:
        with pytest.raises(PayloadError):
            await scheduler.run_task("conf_echo", payload)
        with pytest.raises(PayloadError):
            await scheduler.schedule_task("conf_echo", payload, delay_seconds=5)

    @pytest.mark.parametrize("expression", ["", "* * *", "61 * * * *", "@sometimes", "* * * * * * *"])
    async def test_invalid_cron_is_rejected(self, scheduler: Scheduler, expression: str) -> None:
        with pytest.raises(InvalidCronError):
            await scheduler.add_cron("conf_cron_target", expression)

    async def test_bad_task_declarations_are_rejected(self, scheduler: Scheduler) -> None:
        async def f(payload: Any, ctx: Any) -> None: ...

        bad: list[dict[str, Any]] = [{"priority": 0}, {"priority": 4}, {"retries": -1}, {"timeout": 0}]
        for kwargs in bad:
            with pytest.raises(TaskDefinitionError):
                scheduler.task(name="conf_never", **kwargs)(f)
        with pytest.raises(InvalidCronError):
            scheduler.task(name="conf_never", cron="not a cron")(f)
        with pytest.raises(TaskDefinitionError, match="already registered"):
            scheduler.task(name="conf_echo")(f)
        assert "conf_never" not in scheduler.tasks

    @pytest.mark.parametrize("case", BAD_CALLS, ids=lambda c: c.id)
    async def test_bad_input_is_refused_with_the_same_error(
        self, scheduler: Scheduler, case: BadCall
    ) -> None:
        """Every backend refuses the same bad input, with the same error type and fix."""
        await check_bad_call(scheduler, case)
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []

    async def test_unknown_ids_raise_task_not_found(self, scheduler: Scheduler) -> None:
        missing = str(uuid.uuid4())
        with pytest.raises(TaskNotFoundError):
            await scheduler.get_task_status(missing)
        with pytest.raises(TaskNotFoundError):
            await scheduler.cancel_task(missing)
        with pytest.raises(TaskNotFoundError):
            await scheduler.remove_cron(missing)

    # scheduling

    async def test_delayed_task_is_listed_then_runs_once(self, scheduler: Scheduler) -> None:
        before = await self.now(scheduler)
        task_id = await scheduler.schedule_task("conf_echo", {"value": "later"}, delay_seconds=2)
        info = await scheduler.get_task_status(task_id)
        assert info.state is TaskState.SCHEDULED
        assert info.attempts == 0
        scheduled_at = info.scheduled_at
        assert scheduled_at is not None
        assert abs((scheduled_at - before).total_seconds() - 2) < self.start_tolerance
        listed = await scheduler.list_scheduled_tasks(task_name="conf_echo")
        assert [t.id for t in listed] == [task_id]
        assert listed[0].payload == {"value": "later"}

        await self.pass_time(scheduler, 2.5)
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED
        assert info.result == "later"
        assert info.attempts == 1
        assert info.started_at is not None
        assert info.started_at >= scheduled_at - timedelta(seconds=1)
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []

    async def test_task_scheduled_at_an_aware_time_runs_then(self, scheduler: Scheduler) -> None:
        plus_two = timezone(timedelta(hours=2))
        at = (await self.now(scheduler) + timedelta(seconds=2)).astimezone(plus_two)
        task_id = await scheduler.schedule_task("conf_echo", {"value": "at"}, at=at)
        info = await scheduler.get_task_status(task_id)
        assert info.scheduled_at is not None
        assert abs((info.scheduled_at - at).total_seconds()) < 1
        assert info.scheduled_at.utcoffset() == timedelta(0)
        await self.pass_time(scheduler, 2.5)
        assert (await self.finish(scheduler, task_id)).result == "at"

    async def test_scheduled_list_is_soonest_first_and_filters_by_name(self, scheduler: Scheduler) -> None:
        late = await scheduler.schedule_task("conf_echo", {}, delay_seconds=7200)
        soon = await scheduler.schedule_task("conf_echo", {}, delay_seconds=3600)
        other = await scheduler.schedule_task("conf_cron_target", {}, delay_seconds=1800)
        try:
            assert [t.id for t in await scheduler.list_scheduled_tasks(task_name="conf_echo")] == [
                soon,
                late,
            ]
            everything = [t.id for t in await scheduler.list_scheduled_tasks()]
            assert everything.index(other) < everything.index(soon) < everything.index(late)
        finally:
            for task_id in (late, soon, other):
                await scheduler.cancel_task(task_id)

    async def test_list_tasks_shows_runs_not_pending_schedules(self, scheduler: Scheduler) -> None:
        pending = await scheduler.schedule_task("conf_echo", {"value": 1}, delay_seconds=3600)
        ran = await scheduler.run_task("conf_echo", {"value": 2})
        await self.finish(scheduler, ran)
        listed = await scheduler.list_tasks(task_name="conf_echo", limit=1000)
        assert ran in [t.id for t in listed]
        assert pending not in [t.id for t in listed]
        assert [t.id for t in await scheduler.list_tasks(states=[TaskState.SCHEDULED])] == []
        await scheduler.cancel_task(pending)
        assert pending not in [t.id for t in await scheduler.list_tasks(limit=1000)]

    async def test_listing_an_unknown_task_name_is_empty(self, scheduler: Scheduler) -> None:
        # listings filter; they do not require the task to be registered here
        assert await scheduler.list_tasks(task_name="conf_never_registered") == []
        assert await scheduler.list_scheduled_tasks(task_name="conf_never_registered") == []

    async def test_task_schedules_itself(self, scheduler: Scheduler) -> None:
        parent = await self.finish(
            scheduler,
            await scheduler.run_task("conf_self_schedule", {"delay": 1, "value": "child"}),
        )
        assert parent.state is TaskState.SUCCEEDED, parent.error
        child_id = parent.result
        child = await scheduler.get_task_status(child_id)
        assert child.task_name == "conf_echo"
        assert child.state in (
            TaskState.SCHEDULED,
            TaskState.QUEUED,
            TaskState.RUNNING,
            TaskState.SUCCEEDED,
        )
        await self.pass_time(scheduler, 1.5)
        child = await self.finish(scheduler, child_id)
        assert child.state is TaskState.SUCCEEDED
        assert child.result == "child"

    async def test_wait_for_task_times_out(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.schedule_task("conf_echo", {}, delay_seconds=3600)
        with pytest.raises(WaitTimeoutError):
            await scheduler.wait_for_task(task_id, timeout=1)
        assert await scheduler.cancel_task(task_id) is True

    # cancelling

    async def test_cancelled_schedule_never_runs(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.schedule_task("conf_echo", {"value": 1}, delay_seconds=2)
        assert await scheduler.cancel_task(task_id) is True
        assert (await scheduler.get_task_status(task_id)).state is TaskState.CANCELLED
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []
        await self.pass_time(scheduler, 3.5)
        info = await scheduler.get_task_status(task_id)
        assert info.state is TaskState.CANCELLED
        assert info.attempts == 0
        assert info.result is None
        assert await scheduler.cancel_task(task_id) is False

    async def test_cancelling_a_running_task_interrupts_it(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_slow", {"seconds": 30})
        await self.wait_for_state(scheduler, task_id, {TaskState.RUNNING})
        assert await scheduler.cancel_task(task_id) is True
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.CANCELLED
        assert info.result is None
        assert await scheduler.cancel_task(task_id) is False

    async def test_cancelling_a_finished_task_returns_false(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_echo", {"value": 1})
        await self.finish(scheduler, task_id)
        assert await scheduler.cancel_task(task_id) is False
        assert (await scheduler.get_task_status(task_id)).state is TaskState.SUCCEEDED

    # failures, retries, timeouts

    async def test_failure_is_reported_with_its_error(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_fail"))
        assert info.state is TaskState.FAILED
        assert info.attempts == 1
        assert info.error and "boom: conformance failure" in info.error
        assert info.result is None

    async def test_retries_until_success(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_flaky", {"fail_times": 2}))
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.attempts == 3
        assert info.result == 3

    async def test_retries_are_bounded(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_flaky", {"fail_times": 9}))
        assert info.state is TaskState.FAILED
        assert info.attempts == 3
        assert info.error and "planned failure on attempt 3" in info.error

    async def test_no_final_state_before_the_last_attempt(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_flaky", {"fail_times": 9})
        deadline = asyncio.get_running_loop().time() + self.wait_timeout
        while True:
            info = await scheduler.get_task_status(task_id)
            if info.state.is_final:
                break
            assert asyncio.get_running_loop().time() < deadline, f"still {info.state}"
            await self.pass_time(scheduler, 0.05)
        assert info.state is TaskState.FAILED
        assert info.attempts == 3, f"final after attempt {info.attempts} of 3"

    async def test_timed_out_attempt_fails_and_counts(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_timeout", {"seconds": 10}))
        assert info.state is TaskState.FAILED
        assert info.attempts == 2
        assert info.error and "timeout" in info.error.lower()

    # durable sleep

    async def test_durable_sleep_wakes_after_the_delay(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_durable", {"seconds": 2})
        await self.pass_time(scheduler, 2.5)
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"woke": True, "task_id": task_id}
        assert info.started_at and info.finished_at
        assert (info.finished_at - info.started_at).total_seconds() >= 1.9

    async def test_sleep_in_a_non_durable_task_is_not_supported(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sleep_not_durable"))
        assert info.state is TaskState.FAILED
        assert info.error and "NotSupportedError" in info.error and "durable=True" in info.error

    # crons

    async def test_declared_cron_is_registered_on_connect(self, scheduler: Scheduler) -> None:
        crons = await scheduler.list_crons(task_name="conf_declared_cron")
        assert [c.expression for c in crons] == [DECLARED_CRON]

    async def test_cron_fires_until_removed(self, scheduler: Scheduler) -> None:
        cron_id = await scheduler.add_cron("conf_cron_target", "*/1 * * * * *", {"from": "cron"})
        try:
            listed = await scheduler.list_crons(task_name="conf_cron_target")
            assert [c.id for c in listed] == [cron_id]
            assert listed[0].expression == "*/1 * * * * *"
            assert listed[0].payload == {"from": "cron"}
            await self.pass_time(scheduler, 3.5)
            runs = await self._cron_runs(scheduler)
            assert runs, "a per-second cron ran no task in 3.5 seconds"
            done = await self.finish(scheduler, runs[-1].id)
            assert done.state is TaskState.SUCCEEDED
            assert done.result == {"from": "cron"}
        finally:
            await scheduler.remove_cron(cron_id)
        assert await scheduler.list_crons(task_name="conf_cron_target") == []
        await self.pass_time(scheduler, 1.5)  # let a tick already in flight land
        count = len(await self._cron_runs(scheduler))
        await self.pass_time(scheduler, 2.5)
        assert len(await self._cron_runs(scheduler)) == count
        with pytest.raises(TaskNotFoundError):
            await scheduler.remove_cron(cron_id)

    async def _cron_runs(self, scheduler: Scheduler) -> list[TaskInfo]:
        return await scheduler.list_tasks(task_name="conf_cron_target", limit=1000)

    # virtual time only

    async def test_thirty_day_durable_sleep_takes_no_real_time(self, scheduler: Scheduler) -> None:
        if not self.supports_virtual_time:
            pytest.skip("needs virtual time: a real engine would sleep 30 real days")
        started = asyncio.get_running_loop().time()
        task_id = await scheduler.run_task("conf_durable", {"seconds": 30 * 86400})
        await self.pass_time(scheduler, 29 * 86400)
        assert (await scheduler.get_task_status(task_id)).state is TaskState.RUNNING
        await self.pass_time(scheduler, 86400)
        info = await scheduler.get_task_status(task_id)
        assert info.state is TaskState.SUCCEEDED
        assert asyncio.get_running_loop().time() - started < 5

    async def test_advance_fires_in_due_order(self, scheduler: Scheduler) -> None:
        if not self.supports_virtual_time:
            pytest.skip("needs virtual time to order runs exactly")
        ids = [
            await scheduler.schedule_task("conf_echo", {"value": d}, delay_seconds=d) for d in (300, 100, 200)
        ]
        await self.pass_time(scheduler, 150)
        states = [(await scheduler.get_task_status(i)).state for i in ids]
        assert states == [TaskState.SCHEDULED, TaskState.SUCCEEDED, TaskState.SCHEDULED]
        await self.pass_time(scheduler, 200)
        infos = [await scheduler.get_task_status(i) for i in ids]
        assert all(i.state is TaskState.SUCCEEDED for i in infos)
        starts = [i.started_at for i in infos]
        assert starts[1] < starts[2] < starts[0]  # type: ignore[operator]

    # policies: backoff, retry rules, on_failure, concurrency, priority

    async def test_backoff_waits_before_each_retry(self, scheduler: Scheduler) -> None:
        base, cap = EXPONENTIAL_BACKOFF
        expected: dict[str, list[float]] = {
            "conf_fixed_backoff": [FIXED_BACKOFF, FIXED_BACKOFF],
            "conf_exponential_backoff": [min(base**1, cap), min(base**2, cap)],  # 2 s, then 3 s
        }
        tag = uuid.uuid4().hex
        ids = {name: await scheduler.run_task(name, {"tag": f"{tag}-{name}"}) for name in expected}
        for name, task_id in ids.items():
            info = await scheduler.wait_for_task(task_id, timeout=self.wait_timeout + 2 * self.retry_slack)
            assert (info.state, info.attempts) == (TaskState.SUCCEEDED, 3), (name, info.error)
        for name, waits in expected.items():
            stamps = await self._attempt_starts(scheduler, f"{tag}-{name}", attempts=3)
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
            for gap, wait in zip(gaps, waits, strict=True):
                # never early; late by at most the backend's retry slack
                assert wait - 0.001 <= gap <= wait + self.retry_slack, (name, gaps)

    async def _attempt_starts(self, scheduler: Scheduler, tag: str, attempts: int) -> list[datetime]:
        """Start times of each attempt, from the conf_attempt_log schedules they made."""
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            pending = await scheduler.list_scheduled_tasks(task_name="conf_attempt_log")
            mine = [p for p in pending if p.payload.get("tag") == tag]
            found = {p.payload["attempt"]: p.payload["started"] for p in mine}
            if len(found) >= attempts or asyncio.get_running_loop().time() > deadline:
                for p in mine:
                    await scheduler.cancel_task(p.id)
                assert sorted(found) == list(range(1, attempts + 1)), found
                return [datetime.fromisoformat(found[n]) for n in sorted(found)]
            await asyncio.sleep(0.2)

    @pytest.mark.parametrize(
        ("error", "attempts"),
        [("connection", 2), ("refused", 1), ("value", 1), ("nonretryable", 1)],
        ids=["retry_on-match", "no_retry_on-wins", "not-in-retry_on", "NonRetryableError"],
    )
    async def test_retry_rules_decide_whether_an_error_is_retried(
        self, scheduler: Scheduler, error: str, attempts: int
    ) -> None:
        task_id = await scheduler.run_task("conf_retry_rules", {"raise": error})
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.FAILED
        assert info.attempts == attempts
        assert info.error and f"planned {error} on attempt {attempts}" in info.error
        raised = {
            "connection": "ConnectionError",
            "refused": "ConnectionRefusedError",
            "value": "ValueError",
            "nonretryable": "NonRetryableError",
        }[error]
        assert info.error.startswith(f"{raised}: "), info.error

    async def test_on_failure_runs_once_after_the_last_attempt(self, scheduler: Scheduler) -> None:
        tag = uuid.uuid4().hex
        failed = await scheduler.run_task("conf_on_failure", {"fail_times": 9, "tag": tag})
        recovered = await scheduler.run_task("conf_on_failure", {"fail_times": 1, "tag": tag})
        assert (await self.finish(scheduler, failed)).state is TaskState.FAILED
        assert (await self.finish(scheduler, recovered)).state is TaskState.SUCCEEDED
        records = await self._failure_records(scheduler, tag, want=1)
        assert len(records) == 1, records
        record = (await self.finish(scheduler, records[0].id)).result
        assert record == {
            "task_name": "conf_on_failure",
            "task_id": failed,
            "payload": {"fail_times": 9, "tag": tag},
            "error": "ValueError: planned failure on attempt 2",
            "attempts": 2,
        }
        await self.pass_time(scheduler, 1)  # a second call would show up by now
        assert len(await self._failure_records(scheduler, tag, want=2, timeout=1)) == 1

    async def test_on_failure_runs_when_the_last_attempt_times_out(self, scheduler: Scheduler) -> None:
        tag = uuid.uuid4().hex
        task_id = await scheduler.run_task("conf_timeout_on_failure", {"tag": tag})
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.FAILED
        assert info.error and "exceeded its timeout of 1s" in info.error
        records = await self._failure_records(scheduler, tag, want=1)
        assert len(records) == 1, records
        record = (await self.finish(scheduler, records[0].id)).result
        assert record["task_id"] == task_id and record["attempts"] == 1
        assert record["error"] == "TimeoutError: task 'conf_timeout_on_failure' exceeded its timeout of 1s"

    async def _failure_records(
        self, scheduler: Scheduler, tag: str, want: int, timeout: float = 10
    ) -> list[TaskInfo]:
        """Runs of conf_failure_sink for this test's tag (listings may lag a little)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            runs = await scheduler.list_tasks(task_name="conf_failure_sink", limit=1000)
            found = [r for r in runs if (r.payload or {}).get("payload", {}).get("tag") == tag]
            if len(found) >= want or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.2)

    async def test_concurrency_limit_per_key_queues_runs_and_drops_none(self, scheduler: Scheduler) -> None:
        agent = uuid.uuid4().hex[:8]  # a fresh key: runs of earlier tests hold no slot of it
        a_ids = [
            await scheduler.run_task("conf_limited", {"agent_id": f"a{agent}", "seconds": 2})
            for _ in range(2)
        ]
        b_id = await scheduler.run_task("conf_limited", {"agent_id": f"b{agent}", "seconds": 2})
        await self.wait_for_state(scheduler, b_id, {TaskState.RUNNING})
        states = {(await scheduler.get_task_status(i)).state for i in a_ids}
        assert states == {TaskState.RUNNING, TaskState.QUEUED}, states  # one of agent a's waits
        infos = [await self.finish(scheduler, i) for i in [*a_ids, b_id]]
        assert all(i.state is TaskState.SUCCEEDED for i in infos), [i.error for i in infos]
        first, second = sorted(infos[:2], key=lambda i: i.started_at or datetime.max.replace(tzinfo=UTC))
        assert first.finished_at and second.started_at and infos[2].started_at
        assert second.started_at >= first.finished_at - timedelta(seconds=0.5)  # one at a time
        assert infos[2].started_at <= first.finished_at  # agent b was not kept waiting behind a

    async def test_one_slot_runs_one_at_a_time_highest_priority_first(
        self, single_slot_scheduler: Scheduler
    ) -> None:
        # Hatchet orders by priority among runs of one task, so one task it is
        scheduler = single_slot_scheduler
        blocker = await scheduler.run_task("conf_prioritized", {"seconds": 2, "label": "blocker"})
        await self.wait_for_state(scheduler, blocker, {TaskState.RUNNING})
        queued = [
            await scheduler.run_task("conf_prioritized", {"seconds": 0.5, "label": "low"}),
            await scheduler.run_task("conf_prioritized", {"seconds": 0.5, "label": "low"}, priority=1),
            await scheduler.run_task("conf_prioritized", {"seconds": 0.5, "label": "high"}, priority=3),
        ]
        assert (await scheduler.get_task_status(queued[-1])).state is TaskState.QUEUED
        runs = [await self.finish(scheduler, i) for i in [blocker, *queued]]
        assert all(r.state is TaskState.SUCCEEDED for r in runs), [r.error for r in runs]
        spans: list[tuple[datetime, datetime, str]] = []
        for r in runs:
            assert r.started_at and r.finished_at
            spans.append((r.started_at, r.finished_at, r.result))
        spans.sort()
        assert [label for _, _, label in spans] == ["blocker", "high", "low", "low"]
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert start >= end - timedelta(seconds=0.5), spans  # never two at once

    async def test_bad_run_priority_is_rejected(self, scheduler: Scheduler) -> None:
        for priority in (0, 4, True):
            with pytest.raises(InvalidScheduleError, match="1, 2 or 3"):
                await scheduler.run_task("conf_echo", {}, priority=priority)
            with pytest.raises(InvalidScheduleError, match="1, 2 or 3"):
                await scheduler.schedule_task("conf_echo", {}, delay_seconds=60, priority=priority)
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []

    # ctx.sleep

    @pytest.mark.parametrize("seconds", [0, -1])
    async def test_sleep_of_zero_or_less_is_rejected(self, scheduler: Scheduler, seconds: float) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sleep_zero", {"seconds": seconds}))
        assert info.state is TaskState.FAILED
        assert info.error and info.error.startswith("InvalidScheduleError: ") and "> 0" in info.error


class SchedulerFaultConformance:
    """What callers see when the engine cannot be reached or goes away.

    The memory backend injects these faults (``scheduler.faults``); a real
    backend produces them for real (an address nothing listens on, an engine
    stopped under a connected scheduler). Both must raise
    ``SchedulerConnectionError`` for them, never hang or raise something else.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    #: Operations checked after the engine is gone (all take the same arguments on every backend).
    CALLS_WITHOUT_ENGINE: ClassVar[dict[str, Callable[[Scheduler, str], Awaitable[Any]]]] = {
        "run_task": lambda s, i: s.run_task("conf_echo", {"value": 1}),
        "schedule_task": lambda s, i: s.schedule_task("conf_echo", {}, delay_seconds=60),
        "add_cron": lambda s, i: s.add_cron("conf_cron_target", "@daily"),
        "list_crons": lambda s, i: s.list_crons(),
        "get_task_status": lambda s, i: s.get_task_status(i),
        "cancel_task": lambda s, i: s.cancel_task(i),
        "list_tasks": lambda s, i: s.list_tasks(),
        "list_scheduled_tasks": lambda s, i: s.list_scheduled_tasks(),
    }

    @pytest.fixture
    async def unreachable(self) -> AsyncIterator[Scheduler]:
        """A scheduler with the conformance tasks, not connected, whose engine
        cannot be reached. Backends must override this."""
        raise NotImplementedError("provide an `unreachable` fixture for your backend")
        yield  # pragma: no cover

    @pytest.fixture
    async def engine_loss(self) -> AsyncIterator[tuple[Scheduler, Callable[[], Awaitable[None]]]]:
        """A connected scheduler with the conformance tasks, and an async
        function that takes its engine away. Backends must override this."""
        raise NotImplementedError("provide an `engine_loss` fixture for your backend")
        yield  # pragma: no cover

    async def test_connect_to_an_unreachable_engine_raises_connection_error(
        self, unreachable: Scheduler
    ) -> None:
        """connect() to an engine that cannot be reached raises SchedulerConnectionError naming it."""
        with pytest.raises(SchedulerConnectionError) as caught:
            await unreachable.connect()
        assert "engine" in str(caught.value)
        with pytest.raises(SchedulerConnectionError, match="connect"):
            await unreachable.run_task("conf_echo")

    async def test_calls_after_the_engine_is_gone_raise_connection_error(
        self, engine_loss: tuple[Scheduler, Callable[[], Awaitable[None]]]
    ) -> None:
        """Once the engine is gone every operation raises SchedulerConnectionError."""
        scheduler, lose_engine = engine_loss
        task_id = await scheduler.schedule_task("conf_echo", {}, delay_seconds=3600)
        await lose_engine()
        for name, call in self.CALLS_WITHOUT_ENGINE.items():
            try:
                await call(scheduler, task_id)
            except SchedulerConnectionError:
                continue
            except Exception as exc:
                raise AssertionError(
                    f"{name} raised {type(exc).__name__}, not SchedulerConnectionError"
                ) from exc
            raise AssertionError(f"{name} succeeded without an engine")

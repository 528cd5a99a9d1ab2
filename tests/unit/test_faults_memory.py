"""Faults the memory backend injects (scheduler.faults), and what agent code sees."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.backends.memory.faults import REDELIVERY_SECONDS
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.errors import SchedulerConnectionError
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing import register_conformance_tasks
from owlclaw.scheduler.testing.conformance import SchedulerFaultConformance

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
async def s() -> AsyncIterator[MemoryScheduler]:
    scheduler = MemoryScheduler(clock=VirtualClock(start=START))
    calls: list[int] = []
    scheduler.calls = calls  # type: ignore[attr-defined]
    gate = asyncio.Event()
    scheduler.gate = gate  # type: ignore[attr-defined]

    @scheduler.task(name="charge")
    async def charge(payload: dict[str, Any], ctx: TaskContext) -> int:
        calls.append(ctx.attempt)
        await asyncio.sleep(0)  # a wait, like a call to a payment API
        return ctx.attempt

    @scheduler.task(name="blocked")
    async def blocked(payload: dict[str, Any], ctx: TaskContext) -> int:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            await gate.wait()
        return ctx.attempt

    @scheduler.task(name="no_wait")
    async def no_wait(payload: dict[str, Any], ctx: TaskContext) -> int:
        calls.append(ctx.attempt)
        return ctx.attempt

    @scheduler.task(name="sync_job")
    def sync_job(payload: dict[str, Any], ctx: TaskContext) -> int:
        calls.append(ctx.attempt)
        return ctx.attempt

    @scheduler.task(name="napper", durable=True)
    async def napper(payload: dict[str, Any], ctx: TaskContext) -> str:
        calls.append(ctx.attempt)
        await ctx.sleep(3600)
        return "woke"

    @scheduler.task(name="tick")
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async with scheduler:
        await scheduler.start_worker()
        yield scheduler


def calls_of(s: MemoryScheduler) -> list[int]:
    result: list[int] = s.calls  # type: ignore[attr-defined]
    return result


@pytest.mark.parametrize("task", ["charge", "no_wait", "sync_job"])
async def test_crash_during_loses_the_attempt_and_redelivers_it(s: MemoryScheduler, task: str) -> None:
    """A worker crash mid-task loses the attempt; the run is delivered again from the start
    after the heartbeat timeout, even with retries=0, and attempts counts the lost one."""
    s.faults.crash_during(task)
    task_id = await s.run_task(task)
    await s.advance(0)
    info = await s.get_task_status(task_id)
    assert info.state is TaskState.QUEUED
    assert info.attempts == 1
    await s.advance(REDELIVERY_SECONDS - 1)
    assert (await s.get_task_status(task_id)).state is TaskState.QUEUED
    await s.advance(1)
    info = await s.get_task_status(task_id)
    assert info.state is TaskState.SUCCEEDED, info.error
    assert info.attempts == 2
    assert info.result == 2
    assert calls_of(s) == [1, 2]
    assert s.faults.lost_attempts == [task_id]


async def test_crash_during_applies_only_to_the_named_task_and_count(s: MemoryScheduler) -> None:
    """crash_during(name, times=n) loses exactly the next n attempts of that task."""
    s.faults.crash_during("charge", times=2)
    other = await s.run_task("no_wait")
    first = await s.run_task("charge")
    info = await s.wait_for_task(first, timeout=3 * REDELIVERY_SECONDS)
    assert (await s.get_task_status(other)).attempts == 1
    assert info.state is TaskState.SUCCEEDED
    assert info.attempts == 3
    again = await s.wait_for_task(await s.run_task("charge"))
    assert again.attempts == 1


async def test_crash_worker_loses_every_running_attempt(s: MemoryScheduler) -> None:
    """crash_worker() kills the worker now: running attempts, durable sleeps included, rerun."""
    napper = await s.run_task("napper")
    await s.advance(60)
    blocked = await s.run_task("blocked")
    await asyncio.sleep(0)
    assert (await s.get_task_status(blocked)).state is TaskState.RUNNING
    assert (await s.get_task_status(napper)).state is TaskState.RUNNING
    assert await s.faults.crash_worker() == 2
    assert (await s.get_task_status(blocked)).state is TaskState.QUEUED
    await s.advance(REDELIVERY_SECONDS)
    info = await s.get_task_status(blocked)
    assert (info.state, info.attempts, info.result) == (TaskState.SUCCEEDED, 2, 2)
    nap = await s.wait_for_task(napper, timeout=7200)
    assert (nap.state, nap.attempts, nap.result) == (TaskState.SUCCEEDED, 2, "woke")


async def test_a_durable_sleep_keeps_its_wake_up_time_across_a_crash(s: MemoryScheduler) -> None:
    """A durable task whose worker dies mid-sleep runs again from the top and wakes at the
    sleep's first planned time (or at redelivery, if that is later), once."""
    task_id = await s.run_task("napper")  # sleeps 3600 s
    await s.advance(100)
    await s.faults.crash_worker()
    await s.advance(3500)
    info = await s.get_task_status(task_id)
    assert (info.state, info.attempts) == (TaskState.SUCCEEDED, 2)
    assert info.finished_at == START + timedelta(seconds=3600)
    assert calls_of(s) == [1, 2]

    late = await s.run_task("napper")
    await s.advance(3590)
    await s.faults.crash_worker()  # the wake-up passes while no worker has the run
    await s.advance(REDELIVERY_SECONDS)
    info = await s.get_task_status(late)
    assert (info.state, info.attempts) == (TaskState.SUCCEEDED, 2)
    assert info.finished_at == START + timedelta(seconds=3600 + 3590 + REDELIVERY_SECONDS)


async def test_cancelling_a_run_waiting_for_redelivery_stops_it(s: MemoryScheduler) -> None:
    """A run lost to a crash can still be cancelled before it is delivered again."""
    s.faults.crash_during("charge")
    task_id = await s.run_task("charge")
    await s.advance(0)
    assert await s.cancel_task(task_id) is True
    await s.advance(REDELIVERY_SECONDS * 2)
    info = await s.get_task_status(task_id)
    assert info.state is TaskState.CANCELLED
    assert calls_of(s) == [1]


async def test_duplicate_delivery_runs_the_task_twice_with_the_same_id(s: MemoryScheduler) -> None:
    """duplicate_delivery() executes a successful run a second time (same task_id, attempt 2)."""
    seen: list[tuple[str, int]] = []

    @s.task(name="remember")
    async def remember(payload: dict[str, Any], ctx: TaskContext) -> int:
        seen.append((ctx.task_id, ctx.attempt))
        return len(seen)

    s.faults.duplicate_delivery("remember")
    task_id = await s.run_task("remember")
    info = await s.wait_for_task(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert seen == [(task_id, 1), (task_id, 2)]
    assert info.attempts == 2
    assert info.result == 2


async def test_drop_connection_fails_the_next_call_only(s: MemoryScheduler) -> None:
    """drop_connection() makes the next call raise SchedulerConnectionError with no effect."""
    s.faults.drop_connection()
    with pytest.raises(SchedulerConnectionError, match="retry"):
        await s.run_task("no_wait")
    assert await s.list_tasks() == []
    task_id = await s.run_task("no_wait")
    assert (await s.wait_for_task(task_id)).state is TaskState.SUCCEEDED


async def test_drop_connection_can_target_operations(s: MemoryScheduler) -> None:
    """drop_connection(operations=[...]) fails only the named operations, `times` times."""
    s.faults.drop_connection(times=2, operations=["schedule_task"])
    task_id = await s.run_task("no_wait")
    for _ in range(2):
        with pytest.raises(SchedulerConnectionError, match="schedule_task"):
            await s.schedule_task("no_wait", delay_seconds=5)
    await s.get_task_status(task_id)
    await s.schedule_task("no_wait", delay_seconds=5)


async def test_outage_fails_calls_then_runs_what_fell_due(s: MemoryScheduler) -> None:
    """During an outage every call and connect() fail; schedules due in it run when it ends."""
    task_id = await s.schedule_task("no_wait", delay_seconds=60)
    s.faults.outage(seconds=600)
    for call in (
        s.run_task("no_wait"),
        s.get_task_status(task_id),
        s.list_crons(),
        s.cancel_task(task_id),
        s.connect(),
    ):
        with pytest.raises(SchedulerConnectionError, match="outage"):
            await call
    await s.advance(599)
    assert calls_of(s) == []
    await s.advance(1)
    info = await s.get_task_status(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert info.started_at == START + timedelta(seconds=600)


async def test_outage_starting_later_delays_durable_wakeups(s: MemoryScheduler) -> None:
    """A durable sleep that ends during an outage wakes when the outage ends."""
    task_id = await s.run_task("napper")
    await s.advance(0)
    s.faults.outage(seconds=1800, start_in=3000)
    await s.advance(4800)
    info = await s.get_task_status(task_id)
    assert info.state is TaskState.SUCCEEDED
    assert info.finished_at == START + timedelta(seconds=4800)


async def test_cron_ticks_missed_in_an_outage_fire_once_at_its_end(s: MemoryScheduler) -> None:
    """A cron whose ticks fall in an outage is not lost: it fires once at the end, then on time."""
    await s.add_cron("tick", "* * * * *")
    s.faults.outage(seconds=600)
    await s.advance(600)
    runs = await s.list_tasks(task_name="tick")
    assert len(runs) == 1
    await s.advance(60)
    assert len(await s.list_tasks(task_name="tick")) == 2


def test_fault_arguments_are_checked() -> None:
    """Bad fault arguments raise ValueError naming the rule."""
    s = MemoryScheduler(clock=VirtualClock(start=START))
    with pytest.raises(ValueError, match="times must be an int >= 1"):
        s.faults.crash_during("x", times=0)
    with pytest.raises(ValueError, match="seconds > 0"):
        s.faults.outage(seconds=0)


class TestMemoryFaultConformance(SchedulerFaultConformance):
    """The fault conformance suite, with the faults injected."""

    @pytest.fixture
    async def unreachable(self) -> AsyncIterator[Scheduler]:
        scheduler = register_conformance_tasks(MemoryScheduler(clock=VirtualClock(start=START)))
        assert isinstance(scheduler, MemoryScheduler)
        scheduler.faults.outage(seconds=3600)
        yield scheduler

    @pytest.fixture
    async def engine_loss(self) -> AsyncIterator[tuple[Scheduler, Callable[[], Awaitable[None]]]]:
        scheduler = register_conformance_tasks(MemoryScheduler(clock=VirtualClock(start=START)))
        assert isinstance(scheduler, MemoryScheduler)

        async def lose_engine() -> None:
            scheduler.faults.outage(seconds=10 * 365 * 86400)

        async with scheduler:
            await scheduler.start_worker()
            yield scheduler, lose_engine
            scheduler.faults.clear()

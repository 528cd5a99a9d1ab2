"""Memory-only behaviour beyond the conformance suite: virtual time details,
priority, backoff, logging, and the real clock."""

import asyncio
import itertools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryConfig, MemoryScheduler, VirtualClock
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.errors import (
    InvalidScheduleError,
    NotSupportedError,
    SchedulerConnectionError,
    WaitTimeoutError,
)

START = datetime(2030, 1, 1, tzinfo=UTC)


def virtual(**config: Any) -> MemoryScheduler:
    return MemoryScheduler(MemoryConfig(**config), clock=VirtualClock(start=START))


async def test_operations_need_a_connection() -> None:
    s = virtual()

    @s.task()
    async def noop(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    with pytest.raises(SchedulerConnectionError, match="async with scheduler"):
        await s.run_task("noop")


async def test_advance_needs_a_virtual_clock() -> None:
    s = MemoryScheduler()
    with pytest.raises(NotSupportedError, match="VirtualClock"):
        await s.advance(1)


def test_virtual_clock_rejects_naive_start() -> None:
    with pytest.raises(InvalidScheduleError, match="timezone-aware"):
        VirtualClock(start=datetime(2030, 1, 1))


async def test_higher_priority_runs_first_when_slots_are_full() -> None:
    s = virtual(slots=1)
    order: list[str] = []

    for priority in (1, 2, 3):

        @s.task(name=f"p{priority}", priority=priority)
        async def record(payload: dict[str, Any], ctx: TaskContext) -> None:
            order.append(ctx.task_name)

    async with s:
        for name in ("p1", "p2", "p3"):
            await s.run_task(name)
        await s.start_worker()
        await s.run_until_idle()
    assert order == ["p3", "p2", "p1"]


async def test_retries_wait_for_their_backoff_in_virtual_time() -> None:
    s = virtual()
    attempts_at: list[datetime] = []

    @s.task(retries=3, backoff_factor=2, backoff_max_seconds=5)
    async def flaky(payload: dict[str, Any], ctx: TaskContext) -> None:
        attempts_at.append(s.clock.now())
        raise RuntimeError("nope")

    async with s:
        await s.start_worker()
        task_id = await s.run_task("flaky")
        await s.advance(1)
        info = await s.get_task_status(task_id)
        assert info.state is TaskState.QUEUED and info.attempts == 1
        info = await s.wait_for_task(task_id, timeout=60)
    assert info.state is TaskState.FAILED and info.attempts == 4
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts_at)]
    assert gaps == [2, 4, 5]  # 2**1, 2**2, then capped at 5


async def test_durable_sleep_longer_than_timeout_times_out_in_virtual_time() -> None:
    s = virtual()

    @s.task(durable=True, timeout=60)
    async def sleepy(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.sleep(3600)

    async with s:
        await s.start_worker()
        task_id = await s.run_task("sleepy")
        info = await s.wait_for_task(task_id, timeout=120)
    assert info.state is TaskState.FAILED
    assert info.error is not None and "timeout of 60s" in info.error
    assert info.finished_at == START + timedelta(seconds=60)


async def test_agent_that_reschedules_forever_is_bounded_by_max_seconds() -> None:
    s = virtual()
    runs = 0

    @s.task()
    async def agent(payload: dict[str, Any], ctx: TaskContext) -> None:
        nonlocal runs
        runs += 1
        await ctx.scheduler.schedule_task("agent", {}, delay_seconds=3600)

    async with s:
        await s.start_worker()
        await s.run_task("agent")
        await s.run_until_idle(max_seconds=24 * 3600)
    assert runs == 25  # now, then every hour for a day
    assert s.clock.now() == START + timedelta(hours=24)


async def test_cron_fires_on_virtual_minutes() -> None:
    s = virtual()
    fired: list[datetime] = []

    @s.task(cron="*/15 * * * *")
    async def check(payload: dict[str, Any], ctx: TaskContext) -> None:
        fired.append(s.clock.now())

    async with s:
        await s.start_worker()
        await s.advance(3600)
    assert fired == [START + timedelta(minutes=m) for m in (15, 30, 45, 60)]


async def test_queued_work_waits_for_a_worker() -> None:
    s = virtual()

    @s.task()
    async def job(payload: dict[str, Any], ctx: TaskContext) -> int:
        return 1

    async with s:
        task_id = await s.run_task("job")
        await s.run_until_idle()
        assert (await s.get_task_status(task_id)).state is TaskState.QUEUED
        with pytest.raises(WaitTimeoutError, match="start_worker"):
            await s.wait_for_task(task_id, timeout=1)
        await s.start_worker()
        assert (await s.wait_for_task(task_id)).result == 1


async def test_failed_attempts_are_logged_without_payload(caplog: pytest.LogCaptureFixture) -> None:
    s = virtual()

    @s.task(retries=1)
    async def fails(payload: dict[str, Any], ctx: TaskContext) -> None:
        raise ValueError("bad luck")

    caplog.set_level(logging.INFO, logger="owlclaw.scheduler")
    async with s:
        await s.start_worker()
        await s.wait_for_task(await s.run_task("fails", {"secret": "s3cr3t-payload"}))
    messages = [r.getMessage() for r in caplog.records]
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, getattr(r, "attempt", None), getattr(r, "will_retry", None)) for r in failures] == [
        ("WARNING", 1, True),
        ("ERROR", 2, False),
    ]  # one line per failed attempt
    assert all("bad luck" in r.getMessage() and "task_name=fails" in r.getMessage() for r in failures)
    assert not any("s3cr3t-payload" in m for m in messages)


async def test_real_clock_runs_delays_and_drains_on_stop() -> None:
    s = MemoryScheduler()
    started = asyncio.Event()

    @s.task()
    async def slow(payload: dict[str, Any], ctx: TaskContext) -> str:
        started.set()
        await asyncio.sleep(0.2)
        return "drained"

    async with s:
        await s.start_worker()
        delayed = await s.schedule_task("slow", delay_seconds=0.1)
        info = await s.wait_for_task(delayed, timeout=5)
        assert info.state is TaskState.SUCCEEDED
        running = await s.run_task("slow")
        await asyncio.wait_for(started.wait(), 5)
        await s.stop_worker()
        assert (await s.get_task_status(running)).result == "drained"


async def test_sync_task_sees_cooperative_cancellation() -> None:
    s = MemoryScheduler()
    seen = asyncio.Event()
    loop = asyncio.get_running_loop()

    @s.task()
    def polling(payload: dict[str, Any], ctx: TaskContext) -> str:
        import time

        loop.call_soon_threadsafe(seen.set)
        while not ctx.cancelled:
            time.sleep(0.01)
        return "stopped"

    async with s:
        await s.start_worker()
        task_id = await s.run_task("polling")
        await asyncio.wait_for(seen.wait(), 5)
        assert await s.cancel_task(task_id) is True
        info = await s.get_task_status(task_id)
        assert info.state is TaskState.CANCELLED
        await s.stop_worker()


def test_state_per_instance() -> None:
    a, b = virtual(), virtual()

    @a.task()
    async def only_a(payload: dict[str, Any], ctx: TaskContext) -> None: ...

    assert "only_a" in a.tasks and "only_a" not in b.tasks


@pytest.mark.parametrize("mimic", ["none", "hatchet"])
async def test_a_run_cancelled_before_its_attempt_starts_frees_its_slot(mimic: str) -> None:
    # run_task starts the attempt's task; cancel_task in the same turn cancels it before
    # its first step, when none of its code (no finally) runs
    s = MemoryScheduler(MemoryConfig(slots=1, mimic=mimic))
    ran: list[str] = []

    @s.task(name="note")
    async def note(payload: dict[str, Any], ctx: TaskContext) -> str:
        ran.append(payload["n"])
        return str(payload["n"])

    async with s:
        await s.start_worker()
        first = await s.run_task("note", {"n": "first"})
        assert await s.cancel_task(first) is True
        second = await s.run_task("note", {"n": "second"})
        done = await s.wait_for_task(second, timeout=20)
        assert done.state is TaskState.SUCCEEDED, done
        assert (await s.get_task_status(first)).state is TaskState.CANCELLED
        # under the mimic the cancelled code may still run within the engine's grace, discarded
        assert ran == (["second"] if mimic == "none" else [*ran[:-1], "second"]), ran

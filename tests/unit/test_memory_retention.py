"""Retention: the memory backend forgets finished runs past a count or an age,
so a long-running process (or a long simulation) does not grow forever."""

import asyncio
import gc
import weakref
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from owlclaw.backends.memory import MemoryConfig, MemoryScheduler, VirtualClock
from owlclaw.backends.memory.retention import REAL_CLOCK_MAX_AGE_SECONDS, Retention
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.errors import TaskNotFoundError

START = datetime(2030, 1, 1, tzinfo=UTC)


def virtual(**config: Any) -> MemoryScheduler:
    s = MemoryScheduler(MemoryConfig(**config), clock=VirtualClock(start=START))

    @s.task(name="echo")
    async def echo(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return payload.get("n")

    return s


async def test_past_the_count_the_oldest_finished_runs_are_forgotten() -> None:
    s = virtual(retention_runs=3)
    async with s:
        await s.start_worker()
        ids = [await s.run_task("echo", {"n": n}) for n in range(5)]
        pending = [await s.schedule_task("echo", {"n": n}, delay_seconds=3600) for n in range(5)]
        await s.advance(0)
        for old in ids[:2]:
            with pytest.raises(TaskNotFoundError, match=old):
                await s.get_task_status(old)
        kept = await s.list_tasks(limit=100)
        assert [t.result for t in kept] == [4, 3, 2], kept
        # pending schedules are never dropped, however many there are
        assert {t.id for t in await s.list_scheduled_tasks()} == set(pending)
        await s.advance(3600)
        assert len(await s.list_tasks(limit=100)) == 3


async def test_past_the_age_a_finished_run_is_forgotten() -> None:
    s = virtual(retention_seconds=60)
    async with s:
        await s.start_worker()
        done = await s.run_task("echo", {"n": 1})
        await s.advance(59)
        assert (await s.get_task_status(done)).state is TaskState.SUCCEEDED
        await s.advance(2)
        with pytest.raises(TaskNotFoundError):
            await s.get_task_status(done)
        assert await s.list_tasks() == []


async def test_a_run_waited_on_is_reported_even_if_dropped_meanwhile() -> None:
    s = virtual(retention_runs=1)
    async with s:
        await s.start_worker()
        first = await s.schedule_task("echo", {"n": 1}, delay_seconds=10)
        await s.schedule_task("echo", {"n": 2}, delay_seconds=10)
        info = await s.wait_for_task(first, timeout=60)
        assert (info.state, info.result) == (TaskState.SUCCEEDED, 1)


async def test_a_per_second_cron_keeps_a_bounded_number_of_runs() -> None:
    s = virtual(retention_runs=100)
    async with s:
        await s.start_worker()
        await s.add_cron("echo", "* * * * * *", {"n": 0})
        await s.advance(1200)
        runs = await s.list_tasks(limit=1000)
        assert len(runs) == 100, len(runs)
        # the run table itself is bounded, which is what keeps memory flat
        assert len(s._book.runs) <= 101, len(s._book.runs)


async def test_none_keeps_every_run() -> None:
    s = virtual(retention_runs=None, retention_seconds=None)
    async with s:
        await s.start_worker()
        ids = [await s.run_task("echo", {"n": n}) for n in range(50)]
        await s.advance(365 * 86400)
        assert (await s.get_task_status(ids[0])).result == 0


def test_auto_age_is_a_week_on_the_real_clock_and_none_on_a_virtual_one() -> None:
    config = MemoryConfig()
    assert config.retention_runs == 10_000
    assert Retention.from_config(config, virtual_clock=False).max_age is not None
    real = Retention.from_config(config, virtual_clock=False).max_age
    assert real is not None and real.total_seconds() == REAL_CLOCK_MAX_AGE_SECONDS == 7 * 86400
    assert Retention.from_config(config, virtual_clock=True).max_age is None
    assert MemoryScheduler(config)._retention.max_age == real
    assert MemoryScheduler(config, clock=VirtualClock(start=START))._retention.max_age is None


@pytest.mark.parametrize(
    "field, value", [("retention_runs", 0), ("retention_seconds", 0), ("retention_seconds", "week")]
)
def test_bad_retention_settings_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        MemoryConfig(**{field: value})


async def test_a_kept_finished_run_holds_no_asyncio_task_of_its_attempts() -> None:
    # each retained run kept its finished task (and coroutine) alive, which made the
    # garbage collector's full passes several times longer as runs accumulated
    s = MemoryScheduler(clock=VirtualClock(start=START))
    attempts: list[weakref.ref[asyncio.Task[Any]]] = []

    @s.task(name="flaky", retries=1)
    async def flaky(payload: dict[str, Any], ctx: TaskContext) -> str:
        task = asyncio.current_task()
        assert task is not None
        attempts.append(weakref.ref(task))
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    async with s:
        await s.start_worker()
        run_id = await s.run_task("flaky", {})
        await s.run_until_idle()
        info = await s.get_task_status(run_id)
        await asyncio.sleep(0)  # a task's done callbacks run one loop turn after it ends
        gc.collect()
        assert info.state is TaskState.SUCCEEDED and info.attempts == 2, info
        alive = [ref() for ref in attempts if ref() is not None]
        assert not alive, f"the run still keeps {len(alive)} finished attempt task(s) alive: {alive}"

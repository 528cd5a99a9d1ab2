"""Memory-only schedule behaviour the conformance suite leaves out: the
interplay of backfill and catch-up, a pause with an occurrence buffered, a
crashed worker mid-occurrence, and run_until_idle with schedules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler.testing import register_conformance_tasks

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TASK = "conf_occurrence"


@pytest.fixture
async def s() -> AsyncIterator[MemoryScheduler]:
    scheduler = MemoryScheduler(clock=VirtualClock(T0))
    register_conformance_tasks(scheduler)
    async with scheduler:
        await scheduler.start_worker()
        yield scheduler


async def move_to(s: MemoryScheduler, when: datetime) -> None:
    await s.advance((when - s.clock.now()).total_seconds())


async def nominals(s: MemoryScheduler) -> list[str]:
    return sorted(f"{r.scheduled_at:%H:%M}" for r in await s.list_tasks(TASK, limit=1000))


async def test_a_backfill_then_the_catch_up_fire_each_occurrence_once(s: MemoryScheduler) -> None:
    sid = await s.add_schedule(TASK, cron="0 * * * *", coalesce=False, overlap="allow_all")
    await move_to(s, T0 + timedelta(minutes=30))
    await s.stop_worker()
    await move_to(s, T0 + timedelta(hours=5, minutes=30))
    # asked while the catch-up is still pending: 01:00 and 02:00 now, 03:00-05:00 by the catch-up
    assert len(await s.backfill_schedule(sid, T0, T0 + timedelta(hours=3))) == 3
    await s.start_worker()
    await s.advance(1)
    assert await nominals(s) == ["00:00", "01:00", "02:00", "03:00", "04:00", "05:00"]
    assert (await s.get_schedule(sid)).fired == 6


async def test_an_occurrence_buffered_when_paused_does_not_fire(s: MemoryScheduler) -> None:
    sid = await s.add_schedule(TASK, {"seconds": 90}, cron="* * * * *", overlap="buffer_one")
    await s.advance(60 + 75)  # 00:01 runs until 00:02:30; 00:02 is buffered
    await s.pause_schedule(sid, "ops")
    await s.advance(600)
    assert await nominals(s) == ["00:01"]
    info = await s.get_schedule(sid)
    assert (info.skipped, info.paused) == (1, True)  # the buffered 00:02


async def test_a_worker_crash_mid_occurrence_redelivers_it_once(s: MemoryScheduler) -> None:
    sid = await s.add_schedule(TASK, {"seconds": 300}, cron="0 * * * *")
    await move_to(s, T0 + timedelta(hours=1, minutes=1))
    assert await s.faults.crash_worker() == 1
    await move_to(s, T0 + timedelta(hours=1, minutes=30))
    (run,) = await s.list_tasks(TASK)
    assert run.attempts == 2 and run.result == {
        "scheduled_for": "2030-01-01T01:00:00+00:00",
        "occurrence_id": f"{sid}@2030-01-01T01:00:00Z",
    }


async def test_run_until_idle_leaves_schedules_aside_as_crons(s: MemoryScheduler) -> None:
    await s.add_schedule(TASK, cron="* * * * *", timezone="Europe/Paris")
    started = asyncio.get_running_loop().time()
    await s.run_until_idle()
    assert s.clock.now() == T0  # nothing else to do: no virtual year of ticks
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_task_declared_with_a_zoned_cron_fires_in_its_zone() -> None:
    scheduler = MemoryScheduler(clock=VirtualClock(T0))
    seen: list[tuple[str | None, str | None]] = []

    @scheduler.task(cron="0 9 * * *", timezone="America/New_York")
    async def digest(payload: dict[str, object], ctx: object) -> None:
        from owlclaw.scheduler import TaskContext

        assert isinstance(ctx, TaskContext)
        seen.append((ctx.scheduled_for and ctx.scheduled_for.isoformat(), ctx.occurrence_id))

    async with scheduler:
        await scheduler.start_worker()
        (info,) = await scheduler.list_schedules("digest")
        assert (info.expression, info.timezone) == ("0 9 * * *", "America/New_York")
        assert info.overlap == "allow_all"
        await move_to(scheduler, T0 + timedelta(days=1))
    assert seen == [("2030-01-01T14:00:00+00:00", f"{info.id}@2030-01-01T14:00:00Z")]  # 09:00 EST


async def test_a_pause_while_the_worker_is_down_counts_what_fell_before_it(s: MemoryScheduler) -> None:
    """Occurrences that fell while no worker ran, before a pause, are counted
    skipped at the resume (as the Hatchet gate counts them), never dropped
    uncounted: fired + skipped + coalesced covers every occurrence."""
    sid = await s.add_schedule(TASK, cron="0 * * * *", overlap="allow_all")
    await move_to(s, T0 + timedelta(hours=1, minutes=30))  # 01:00 fires
    await s.stop_worker()
    await move_to(s, T0 + timedelta(hours=3, minutes=30))  # 02:00 and 03:00 fall, no worker
    await s.pause_schedule(sid, "ops")
    await move_to(s, T0 + timedelta(hours=5, minutes=30))  # 04:00 and 05:00 fall while paused
    await s.resume_schedule(sid)
    await s.start_worker()
    await move_to(s, T0 + timedelta(hours=6, minutes=30))  # 06:00 fires
    info = await s.get_schedule(sid)
    assert await nominals(s) == ["01:00", "06:00"]
    assert (info.fired, info.skipped, info.coalesced) == (2, 4, 0), info

"""The memory backend where it behaves as Hatchet does, and ``MemoryConfig(mimic="hatchet")``:
Hatchet's coarser timing, reproduced deterministically, so that a test that
relies on the fake's extra precision fails on the fake first (docs/testing.md,
"What the fake guarantees, and `mimic`")."""

from datetime import UTC, datetime
from typing import Any

from owlclaw.backends.memory import MemoryConfig, MemoryScheduler, VirtualClock
from owlclaw.scheduler import TaskContext, TaskState

START = datetime(2030, 1, 1, tzinfo=UTC)


def virtual(**config: Any) -> MemoryScheduler:
    return MemoryScheduler(MemoryConfig(**config), clock=VirtualClock(start=START))


# durable slots: a pool of their own, as on a Hatchet worker


def _sleepers(s: MemoryScheduler) -> None:
    @s.task(name="sleeper", durable=True)
    async def sleeper(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.sleep(600)

    @s.task(name="plain")
    async def plain(payload: dict[str, Any], ctx: TaskContext) -> str:
        return "done"


async def test_durable_runs_use_their_own_pool_of_slots() -> None:
    s = virtual(slots=1, durable_slots=1)
    _sleepers(s)
    async with s:
        await s.start_worker()
        first = await s.run_task("sleeper")
        second = await s.run_task("sleeper")
        plain = await s.run_task("plain")
        await s.advance(1)
        assert (await s.get_task_status(first)).state is TaskState.RUNNING
        assert (await s.get_task_status(second)).state is TaskState.QUEUED  # the one durable slot is taken
        assert (await s.get_task_status(plain)).state is TaskState.SUCCEEDED  # the ordinary slot is free
        await s.advance(600)
        assert (await s.get_task_status(first)).state is TaskState.SUCCEEDED
        assert (await s.get_task_status(second)).state is TaskState.RUNNING


async def test_durable_slots_default_to_as_many_as_slots() -> None:
    s = virtual(slots=2)
    _sleepers(s)
    async with s:
        await s.start_worker()
        ids = [await s.run_task("sleeper") for _ in range(3)]
        plain = [await s.run_task("plain") for _ in range(2)]
        await s.advance(1)
        states = [(await s.get_task_status(i)).state for i in ids]
        assert states == [TaskState.RUNNING, TaskState.RUNNING, TaskState.QUEUED]
        assert [(await s.get_task_status(i)).state for i in plain] == [TaskState.SUCCEEDED] * 2

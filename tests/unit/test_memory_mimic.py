"""The memory backend where it behaves as Hatchet does, and ``MemoryConfig(mimic="hatchet")``:
Hatchet's coarser timing, reproduced deterministically, so that a test that
relies on the fake's extra precision fails on the fake first (docs/testing.md,
"What the fake guarantees, and `mimic`")."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from owlclaw.backends.memory import MemoryConfig, MemoryScheduler, VirtualClock
from owlclaw.backends.memory.mimic import (
    CANCEL_GRACE_SECONDS,
    HOLD_SECONDS,
    LOOKUP_WINDOW,
    RETRY_LATENESS_SECONDS,
)
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.testing import SchedulerConformance, VirtualTimeConformance, register_conformance_tasks

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


# mimic="hatchet": each test shows the exact figure memory gives by default, and
# the later one it gives under mimic, so an assertion of the exact figure fails there


def _tasks(s: MemoryScheduler, spawned: list[str]) -> None:
    @s.task(name="echo")
    async def echo(payload: dict[str, Any], ctx: TaskContext) -> Any:
        return payload.get("value")

    @s.task(name="capped", retries=3, backoff="exponential", backoff_base=2, backoff_max_seconds=6.5)
    async def capped(payload: dict[str, Any], ctx: TaskContext) -> None:
        raise RuntimeError(f"attempt {ctx.attempt}")

    @s.task(name="flaky_once", retries=1, backoff="fixed", backoff_base=1)
    async def flaky_once(payload: dict[str, Any], ctx: TaskContext) -> int:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    @s.task(name="parent", retries=1)
    async def parent(payload: dict[str, Any], ctx: TaskContext) -> str:
        spawned.append(await ctx.scheduler.run_task("echo", {"value": ctx.attempt}))
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails after starting a child")
        return "done"


async def _started(mimic: str) -> tuple[MemoryScheduler, list[str]]:
    spawned: list[str] = []
    s = virtual(mimic=mimic)
    _tasks(s, spawned)
    await s.connect()
    await s.start_worker()
    return s, spawned


def test_mimic_is_off_by_default_and_refuses_unknown_modes() -> None:
    assert MemoryConfig().mimic == "none"
    assert MemoryConfig.model_validate({"mimic": "hatchet"}).mimic == "hatchet"
    with pytest.raises(ValidationError, match="mimic"):
        MemoryConfig.model_validate({"mimic": "celery"})


@pytest.mark.parametrize("mimic", ["none", "hatchet"])
async def test_a_short_delay_starts_on_time_and_under_mimic_holds_a_slot_until_due(mimic: str) -> None:
    """On Hatchet a schedule due in under HOLD_SECONDS is queued at once and its
    worker holds it, in a slot, until due: with one slot, a run queued meanwhile
    waits for it (docs/hatchet.md, "Short delays")."""
    s = virtual(slots=1, mimic=mimic)
    register_conformance_tasks(s)
    async with s:
        await s.start_worker()
        soon = await s.schedule_task("conf_echo", {"value": 1}, delay_seconds=3)
        later = await s.schedule_task("conf_echo", {"value": 2}, delay_seconds=HOLD_SECONDS)
        now = await s.run_task("conf_echo", {"value": 0})
        await s.advance(0)
        assert (await s.get_task_status(now)).state is (
            TaskState.SUCCEEDED if mimic == "none" else TaskState.QUEUED
        )
        assert (await s.get_task_status(soon)).state is TaskState.SCHEDULED
        await s.advance(3)
        for task_id in (soon, now):
            info = await s.get_task_status(task_id)
            assert info.state is TaskState.SUCCEEDED, info
        assert (await s.get_task_status(soon)).started_at == START + timedelta(
            seconds=3
        )  # on time either way
        assert (await s.get_task_status(now)).started_at == START + timedelta(
            seconds=0 if mimic == "none" else 3
        )
        # HOLD_SECONDS or more ahead: an engine schedule, no slot held
        await s.advance(HOLD_SECONDS)
        assert (await s.get_task_status(later)).started_at == START + timedelta(seconds=HOLD_SECONDS)


async def test_a_cancelled_short_delay_gives_its_held_slot_back() -> None:
    s = virtual(slots=1, mimic="hatchet")
    register_conformance_tasks(s)
    async with s:
        await s.start_worker()
        soon = await s.schedule_task("conf_echo", {"value": 1}, delay_seconds=3)
        now = await s.run_task("conf_echo", {"value": 0})
        await s.advance(0)
        assert (await s.get_task_status(now)).state is TaskState.QUEUED
        assert await s.cancel_task(soon) is True
        await s.advance(0)
        assert (await s.get_task_status(now)).state is TaskState.SUCCEEDED


@pytest.mark.parametrize(
    ("mimic", "waits"),
    [
        ("none", [2, 4, 6.5]),
        # the cap in whole seconds (6.5 -> 7), and each retry as late as the engine's idle poll
        ("hatchet", [2 + RETRY_LATENESS_SECONDS, 4 + RETRY_LATENESS_SECONDS, 7 + RETRY_LATENESS_SECONDS]),
    ],
)
async def test_backoff_is_whole_seconds_and_retries_start_late(mimic: str, waits: list[float]) -> None:
    s, _ = await _started(mimic)
    async with s:
        task_id = await s.run_task("capped")
        starts = [START]
        for wait in waits:
            await s.advance(wait - 0.001)
            assert (await s.get_task_status(task_id)).attempts == len(starts), f"retry before {wait}s"
            await s.advance(0.001)
            assert (await s.get_task_status(task_id)).attempts == len(starts) + 1, f"no retry at {wait}s"
            starts.append(s.clock.now())
        info = await s.get_task_status(task_id)
        assert info.state is TaskState.FAILED
        assert info.started_at == (starts[0] if mimic == "none" else starts[-1])


async def test_retries_without_backoff_are_not_late_under_mimic() -> None:
    s, _ = await _started("hatchet")
    async with s:
        info = await s.wait_for_task(await s.run_task("parent"), timeout=1)
        assert info.state is TaskState.SUCCEEDED
        assert info.finished_at == START


@pytest.mark.parametrize("mimic", ["none", "hatchet"])
async def test_started_at_is_the_latest_attempts_start_under_mimic(mimic: str) -> None:
    s, _ = await _started(mimic)
    async with s:
        info = await s.wait_for_task(await s.run_task("flaky_once"), timeout=3600)
        assert info.state is TaskState.SUCCEEDED and info.attempts == 2
        retry_start = START + timedelta(seconds=1 + (RETRY_LATENESS_SECONDS if mimic == "hatchet" else 0))
        assert info.finished_at == retry_start
        assert info.started_at == (START if mimic == "none" else retry_start)


@pytest.mark.parametrize("mimic", ["none", "hatchet"])
async def test_run_task_from_a_retried_attempt_returns_the_first_attempts_child(mimic: str) -> None:
    s, spawned = await _started(mimic)
    async with s:
        info = await s.wait_for_task(await s.run_task("parent"), timeout=60)
        assert info.state is TaskState.SUCCEEDED
        await s.run_until_idle()
        children = await s.list_tasks(task_name="echo")
        assert len(spawned) == 2
        if mimic == "none":
            assert spawned[0] != spawned[1] and len(children) == 2
        else:  # the engine answers the second call with the first attempt's child: one run
            assert spawned[0] == spawned[1] and [c.id for c in children] == [spawned[0]]
            assert children[0].result == 1
        # a run_task outside any task is never deduplicated
        assert await s.run_task("echo") != await s.run_task("echo")


@pytest.mark.parametrize(("mimic", "listed"), [("none", 2), ("hatchet", 1)])
async def test_list_tasks_reaches_six_days_back_under_mimic(mimic: str, listed: int) -> None:
    s, _ = await _started(mimic)
    async with s:
        old = await s.run_task("echo")
        await s.advance(LOOKUP_WINDOW.total_seconds() + 1)
        new = await s.run_task("echo")
        await s.run_until_idle()
        assert [t.id for t in await s.list_tasks()] == [new, old][:listed]
        assert (await s.get_task_status(old)).state is TaskState.SUCCEEDED  # a run id is read directly


@pytest.mark.parametrize(
    ("mimic", "order"),
    [
        ("none", ["urgent 3", "routine 3", "routine 1"]),  # all waiting runs by priority
        ("hatchet", ["routine 3", "urgent 3", "routine 1"]),  # priority within a task; tasks take turns
    ],
)
async def test_priority_orders_runs_of_one_task_only_under_mimic(mimic: str, order: list[str]) -> None:
    s = virtual(slots=1, mimic=mimic)
    started: list[str] = []

    @s.task(name="routine")
    async def routine(payload: dict[str, Any], ctx: TaskContext) -> None:
        started.append(f"routine {payload['p']}")

    @s.task(name="urgent", priority=3)
    async def urgent(payload: dict[str, Any], ctx: TaskContext) -> None:
        started.append(f"urgent {payload['p']}")

    async with s:  # queued before the worker starts, so all three wait for the one slot
        await s.run_task("routine", {"p": 1})
        await s.run_task("urgent", {"p": 3})
        await s.run_task("routine", {"p": 3}, priority=3)
        await s.start_worker()
        await s.run_until_idle()
        assert started == order


async def _let_run() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize("mimic", ["none", "hatchet"])
async def test_cancelled_code_runs_on_for_the_grace_under_mimic(mimic: str) -> None:
    s = virtual(mimic=mimic)
    go = asyncio.Event()
    effects: list[str] = []

    @s.task(name="writer")
    async def writer(payload: dict[str, Any], ctx: TaskContext) -> str:
        await go.wait()
        effects.append(f"written, cancelled={ctx.cancelled}")
        return "written"

    async with s:
        await s.start_worker()
        first = await s.run_task("writer")
        await _let_run()  # not advance(): it would wait for the blocked attempt
        assert await s.cancel_task(first) is True
        go.set()
        await _let_run()
        info = await s.get_task_status(first)
        assert info.state is TaskState.CANCELLED and info.result is None  # the late result is discarded
        # at once on memory; on Hatchet the code goes on for 1 s, seeing ctx.cancelled
        assert effects == ([] if mimic == "none" else ["written, cancelled=True"])

        go.clear()
        second = await s.run_task("writer")
        await _let_run()
        await s.cancel_task(second)
        # the grace ends (by the virtual clock, or by the real one, for code that waits in real time)
        await s.advance(CANCEL_GRACE_SECONDS)
        go.set()
        await _let_run()
        assert len(effects) == (0 if mimic == "none" else 1)


@pytest.mark.parametrize("mimic", ["none", "hatchet"])
async def test_a_run_no_worker_starts_fails_after_the_schedule_timeout_under_mimic(mimic: str) -> None:
    s, _ = await _started(mimic)
    await s.stop_worker()  # a worker outage
    async with s:
        task_id = await s.run_task("echo")
        await s.advance(86400 - 1)
        assert (await s.get_task_status(task_id)).state is TaskState.QUEUED
        await s.advance(1)
        info = await s.get_task_status(task_id)
        if mimic == "none":
            assert info.state is TaskState.QUEUED  # memory waits forever
            return
        assert info.state is TaskState.FAILED and info.attempts == 0
        assert info.error and info.error.startswith(
            "TimeoutError: no worker started the run within the schedule timeout"
        )
        assert info.finished_at == START + timedelta(days=1)


async def test_the_schedule_timeout_counts_from_the_due_time_and_spares_started_runs() -> None:
    s = virtual(mimic="hatchet", schedule_timeout_seconds=60)
    _sleepers(s)
    async with s:
        await s.start_worker()
        now = await s.run_task("plain")
        due_later = await s.schedule_task("plain", delay_seconds=3600)  # > 60 s: counted from the due time
        long_running = await s.run_task("sleeper")  # started at once, then runs 600 s > 60 s
        await s.run_until_idle()
        for task_id in (now, due_later, long_running):
            assert (await s.get_task_status(task_id)).state is TaskState.SUCCEEDED
        # no deadline left behind: run_until_idle stopped at the last run, not 60 s after it
        assert s.clock.now() == START + timedelta(seconds=3600)


async def test_a_cancelled_queued_run_leaves_no_deadline_behind() -> None:
    s = virtual(mimic="hatchet", schedule_timeout_seconds=60)
    _sleepers(s)
    async with s:  # no worker: the run stays queued
        task_id = await s.run_task("plain")
        assert await s.cancel_task(task_id) is True
        await s.run_until_idle()
        assert s.clock.now() == START
        assert (await s.get_task_status(task_id)).state is TaskState.CANCELLED


class TestConformanceUnderMimic(VirtualTimeConformance, SchedulerConformance):
    """The conformance suite passes under mimic="hatchet" with Hatchet's tolerances
    (tests/integration/test_hatchet_conformance.py): the mimic stays within what
    the suite allows a real engine."""

    start_tolerance = HOLD_SECONDS  # a held short delay can keep another run from its slot
    retry_slack = RETRY_LATENESS_SECONDS
    started_at_is_first_attempt = False

    @pytest.fixture
    async def scheduler(self) -> AsyncIterator[MemoryScheduler]:
        s = MemoryScheduler(MemoryConfig(mimic="hatchet"), clock=VirtualClock())
        register_conformance_tasks(s)
        async with s:
            await s.start_worker()
            yield s

    @pytest.fixture
    async def single_slot_scheduler(self) -> AsyncIterator[MemoryScheduler]:
        s = MemoryScheduler(MemoryConfig(slots=1, mimic="hatchet"))
        register_conformance_tasks(s)
        async with s:
            await s.start_worker()
            yield s

"""The memory backend's bounds (docs/testing.md, "Bounds"): shutdown ends
while tasks sleep or hang, a task that re-queues itself at one instant is
reported instead of looping forever, and values at the edge of the limits
either work or are refused at the call, never left QUEUED or RUNNING."""

import asyncio
import logging
import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from owlclaw.backends.memory import MemoryConfig, MemoryScheduler, VirtualClock, runs
from owlclaw.backends.memory.guards import MAX_SAME_INSTANT
from owlclaw.scheduler import TaskContext, TaskState
from owlclaw.scheduler.errors import InvalidScheduleError, RunawayTaskError, WaitTimeoutError
from owlclaw.scheduler.kit import serve_until_signal
from owlclaw.scheduler.limits import MAX_BACKOFF_SECONDS, MAX_JSON_DEPTH, MAX_TIMEOUT_SECONDS

START = datetime(2030, 1, 1, tzinfo=UTC)


def virtual(**config: Any) -> MemoryScheduler:
    return MemoryScheduler(MemoryConfig(**config), clock=VirtualClock(start=START))


def _sleeper(s: MemoryScheduler) -> None:
    @s.task(name="nap", durable=True)
    async def nap(payload: dict[str, Any], ctx: TaskContext) -> str:
        await ctx.sleep(3600)
        return "rested"


# shutdown


async def test_leaving_async_with_ends_while_a_durable_task_sleeps() -> None:
    s = virtual()
    _sleeper(s)
    async with asyncio.timeout(10):
        async with s:
            await s.start_worker()
            run_id = await s.run_task("nap")
            await s.advance(1)
            assert (await s.get_task_status(run_id)).state is TaskState.RUNNING
    # the sleeper's attempt was cancelled at once; its run is queued again for the next worker
    async with s:
        assert (await s.get_task_status(run_id)).state is TaskState.QUEUED
        await s.start_worker()
        await s.advance(3600)
        info = await s.get_task_status(run_id)
        assert (info.state, info.result, info.attempts) == (TaskState.SUCCEEDED, "rested", 2)


async def test_stop_worker_cancels_a_hanging_attempt_after_the_grace() -> None:
    s = MemoryScheduler(MemoryConfig(shutdown_grace_seconds=0.2))
    gate = {"hang": True}

    @s.task()
    async def stuck(payload: dict[str, Any], ctx: TaskContext) -> str:
        if gate["hang"]:
            await asyncio.sleep(3600)
        return "done"

    async with s:
        await s.start_worker()
        run_id = await s.run_task("stuck")
        await asyncio.sleep(0.05)
        started = time.monotonic()
        async with asyncio.timeout(10):
            await s.stop_worker()
        assert 0.15 < time.monotonic() - started < 3
        assert (await s.get_task_status(run_id)).state is TaskState.QUEUED
        gate["hang"] = False
        await s.start_worker()
        info = await s.wait_for_task(run_id, timeout=5)
        assert (info.state, info.result) == (TaskState.SUCCEEDED, "done")


async def test_stop_worker_lets_a_short_attempt_finish_within_the_grace() -> None:
    s = MemoryScheduler(MemoryConfig(shutdown_grace_seconds=5))

    @s.task()
    async def brief(payload: dict[str, Any], ctx: TaskContext) -> str:
        await asyncio.sleep(0.1)
        return "done"

    async with s:
        await s.start_worker()
        run_id = await s.run_task("brief")
        await asyncio.sleep(0.02)
        await s.stop_worker()
        assert (await s.get_task_status(run_id)).state is TaskState.SUCCEEDED


async def test_sigterm_stops_a_real_clock_worker_while_a_durable_task_sleeps() -> None:
    s = MemoryScheduler()
    _sleeper(s)
    started = asyncio.Event()

    @s.task()
    async def kick(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.scheduler.run_task("nap")
        started.set()

    async def send_sigterm() -> None:
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    async def serve() -> None:
        await serve_until_signal(s)

    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(10):
            server = asyncio.ensure_future(serve())
            while not s._connected:
                await asyncio.sleep(0.01)
            await s.run_task("kick")
            await asyncio.gather(server, send_sigterm())
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    nap = [r for r in s._book.runs.values() if r.options.name == "nap"]
    assert [r.state for r in nap] == [TaskState.QUEUED]


async def test_crash_worker_ends_when_a_task_swallows_its_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runs, "CANCEL_WAIT_SECONDS", 0.2)
    s = virtual(shutdown_grace_seconds=0.2)
    release = asyncio.Event()

    @s.task()
    async def stubborn(payload: dict[str, Any], ctx: TaskContext) -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # ignores cancellation: a bug in user code the library must survive

    async with asyncio.timeout(10):
        async with s:
            await s.start_worker()
            await s.run_task("stubborn")
            await asyncio.sleep(0.01)  # it reaches its sleep
            assert await s.faults.crash_worker() == 1
            release.set()


async def test_advance_gives_up_on_an_attempt_that_never_finishes() -> None:
    s = virtual(settle_timeout_seconds=0.3, shutdown_grace_seconds=0.1)

    @s.task()
    async def hang(payload: dict[str, Any], ctx: TaskContext) -> None:
        await asyncio.Event().wait()  # waits for something that never happens

    async with asyncio.timeout(10):
        async with s:
            await s.start_worker()
            run_id = await s.run_task("hang")
            with pytest.raises(WaitTimeoutError, match=r"'hang'.*timeout="):
                await s.advance(1)
            assert run_id in str(await s.get_task_status(run_id))


# a run that keeps one instant busy


async def test_advance_zero_reports_a_task_that_runs_itself() -> None:
    s = virtual()

    @s.task()
    async def again(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.scheduler.run_task("again")

    async with s:
        await s.start_worker()
        await s.run_task("again")
        async with asyncio.timeout(10):
            with pytest.raises(RunawayTaskError, match=r"'again'.*delay_seconds"):
                await s.advance(0)
        # the chain stopped: the link that would have gone past the bound failed instead
        failed = await s.list_tasks("again", states=[TaskState.FAILED])
        assert len(failed) == 1 and "RunawayTaskError" in (failed[0].error or "")
        await s.advance(60)  # reported once; time moves on


async def test_run_until_idle_reports_a_self_schedule_with_a_delay_that_rounds_to_zero() -> None:
    s = virtual()

    @s.task()
    async def tick(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.scheduler.schedule_task("tick", delay_seconds=1e-9)

    async with s:
        await s.start_worker()
        await s.run_task("tick")
        async with asyncio.timeout(10):
            with pytest.raises(RunawayTaskError, match="'tick'"):
                await s.run_until_idle(max_seconds=60)


async def test_a_durable_task_sleeping_less_than_a_microsecond_in_a_loop_is_reported() -> None:
    s = virtual()

    @s.task(durable=True)
    async def spin(payload: dict[str, Any], ctx: TaskContext) -> None:
        while True:
            await ctx.sleep(1e-9)

    async with s:
        await s.start_worker()
        run_id = await s.run_task("spin")
        async with asyncio.timeout(10):
            with pytest.raises(RunawayTaskError, match=r"'spin'.*ctx\.sleep"):
                await s.advance(0)
        assert (await s.get_task_status(run_id)).state is TaskState.FAILED


async def test_many_runs_at_one_instant_are_not_a_runaway() -> None:
    s = virtual()
    done: list[int] = []

    @s.task()
    async def fan_out(payload: dict[str, Any], ctx: TaskContext) -> None:
        for i in range(MAX_SAME_INSTANT + 10):
            await ctx.scheduler.run_task("leaf", {"i": i})

    @s.task()
    async def leaf(payload: dict[str, Any], ctx: TaskContext) -> None:
        done.append(payload["i"])

    @s.task()
    async def countdown(payload: dict[str, Any], ctx: TaskContext) -> None:
        if payload["n"]:
            await ctx.scheduler.run_task("countdown", {"n": payload["n"] - 1})

    async with s:
        await s.start_worker()
        await s.run_task("fan_out")
        await s.run_task("countdown", {"n": MAX_SAME_INSTANT})  # a chain exactly at the bound
        await s.advance(0)
    assert len(done) == MAX_SAME_INSTANT + 10


async def test_run_until_idle_on_the_real_clock_gives_up_after_max_seconds() -> None:
    s = MemoryScheduler(MemoryConfig(shutdown_grace_seconds=0.1))

    @s.task()
    async def again(payload: dict[str, Any], ctx: TaskContext) -> None:
        await asyncio.sleep(0.001)
        await ctx.scheduler.run_task("again")

    async with asyncio.timeout(10):
        async with s:
            await s.start_worker()
            await s.run_task("again")
            started = time.monotonic()
            with pytest.raises(WaitTimeoutError, match="max_seconds"):
                await s.run_until_idle(max_seconds=0.3)
            assert time.monotonic() - started < 3


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), 1e12])
async def test_moving_virtual_time_by_a_bad_amount_is_refused(seconds: float) -> None:
    s = virtual()
    async with s:
        with pytest.raises(InvalidScheduleError, match="seconds from 0 to"):
            await s.advance(seconds)
        with pytest.raises(InvalidScheduleError, match="seconds from 0 to"):
            await s.run_until_idle(max_seconds=seconds)


# values at the limits work; past them they are refused (see the bad-call table)


async def test_exponential_backoff_with_a_huge_base_still_retries_and_fails() -> None:
    s = virtual()

    @s.task(retries=3, backoff="exponential", backoff_base=1e200)
    async def flaky(payload: dict[str, Any], ctx: TaskContext) -> None:
        raise RuntimeError("down")

    async with s:
        await s.start_worker()
        run_id = await s.run_task("flaky")
        await s.run_until_idle()
        info = await s.get_task_status(run_id)
    assert (info.state, info.attempts) == (TaskState.FAILED, 4)
    assert s.tasks["flaky"].retry_delay(1100) == MAX_BACKOFF_SECONDS


async def test_the_longest_timeout_times_out_on_the_virtual_clock() -> None:
    s = virtual()

    @s.task(timeout=MAX_TIMEOUT_SECONDS, durable=True)
    async def long(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.sleep(MAX_TIMEOUT_SECONDS * 2)

    async with s:
        await s.start_worker()
        run_id = await s.run_task("long")
        await s.advance(MAX_TIMEOUT_SECONDS + 1)
        info = await s.get_task_status(run_id)
    assert info.state is TaskState.FAILED and "exceeded its timeout" in (info.error or "")


async def test_a_too_long_durable_sleep_fails_the_run_with_the_bound() -> None:
    s = virtual()

    @s.task(durable=True)
    async def forever(payload: dict[str, Any], ctx: TaskContext) -> None:
        await ctx.sleep(1e12)

    async with s:
        await s.start_worker()
        run_id = await s.run_task("forever")
        await s.advance(0)
        info = await s.get_task_status(run_id)
    assert info.state is TaskState.FAILED
    assert "InvalidScheduleError" in (info.error or "") and "ten years" in (info.error or "")


async def test_a_too_deep_result_fails_the_run_with_a_payload_error() -> None:
    s = virtual()

    @s.task()
    async def deep(payload: dict[str, Any], ctx: TaskContext) -> Any:
        value: Any = 1
        for _ in range(5000):
            value = [value]
        return value

    @s.task()
    async def just_deep_enough(payload: dict[str, Any], ctx: TaskContext) -> Any:
        value: Any = 1
        for _ in range(MAX_JSON_DEPTH):
            value = [value]
        return value

    async with s:
        await s.start_worker()
        bad, good = await s.run_task("deep"), await s.run_task("just_deep_enough")
        await s.advance(0)
        bad_info, good_info = await s.get_task_status(bad), await s.get_task_status(good)
    assert bad_info.state is TaskState.FAILED and "levels deep" in (bad_info.error or "")
    assert good_info.state is TaskState.SUCCEEDED


# messages


async def test_wait_timeout_on_a_virtual_clock_says_to_advance() -> None:
    s = virtual()
    _sleeper(s)
    async with s:
        await s.start_worker()
        run_id = await s.run_task("nap")
        with pytest.raises(WaitTimeoutError, match=r"advance\(seconds\)"):
            await s.wait_for_task(run_id, timeout=10)


async def test_advance_with_runs_due_and_no_worker_says_to_start_it(caplog: pytest.LogCaptureFixture) -> None:
    s = virtual()
    _sleeper(s)
    async with s:
        await s.schedule_task("nap", delay_seconds=5)
        with caplog.at_level(logging.WARNING, logger="owlclaw.scheduler.memory"):
            await s.advance(10)
    assert "no worker is running" in caplog.text and "start_worker()" in caplog.text


async def test_advance_with_nothing_due_and_no_worker_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    s = virtual()
    _sleeper(s)
    async with s:
        await s.schedule_task("nap", delay_seconds=50)
        with caplog.at_level(logging.WARNING, logger="owlclaw.scheduler.memory"):
            await s.advance(10)
    assert "start_worker" not in caplog.text

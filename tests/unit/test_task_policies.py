"""Task policies: backoff, retry rules, on_failure, concurrency, per-run priority.

The conformance suite checks each rule on every backend; these tests cover
the declarations' validation, the in-process details only the memory backend
can show (exact waits, callback edge cases), and how the Hatchet backend
translates the options for the engine.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlclaw.backends.hatchet.worker import backoff, concurrency
from owlclaw.backends.memory import MemoryScheduler, VirtualClock
from owlclaw.scheduler import NonRetryableError, TaskFailure
from owlclaw.scheduler.errors import InvalidScheduleError, TaskDefinitionError
from owlclaw.scheduler.models import TaskContext, TaskState


async def _noop(payload: Any, ctx: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backoff": "linear"}, "'fixed' or 'exponential'"),
        ({"backoff": "fixed"}, "whole seconds >= 1"),
        ({"backoff": "fixed", "backoff_base": 1.5}, "whole seconds >= 1"),
        ({"backoff": "fixed", "backoff_base": 0.5}, "whole seconds >= 1"),
        ({"backoff": "fixed", "backoff_base": 2, "backoff_max_seconds": 5}, "drop backoff_max_seconds"),
        ({"backoff": "exponential", "backoff_base": 0.5}, "backoff_base must be a number >= 1"),
        ({"backoff_base": 2}, "need backoff='fixed' or backoff='exponential'"),
        ({"backoff_max_seconds": 5}, "need backoff='fixed' or backoff='exponential'"),
        ({"backoff_factor": 2, "backoff": "fixed"}, "not both"),
        ({"backoff_factor": 0.5}, "backoff_factor must be a number >= 1"),
        ({"retry_on": ValueError()}, "exception classes"),
        ({"no_retry_on": (ValueError, "KeyError")}, "exception classes"),
        ({"on_failure": "alert"}, "on_failure must be a function"),
        ({"concurrency": 0}, "concurrency must be an int >= 1"),
        ({"concurrency": 1.5}, "concurrency must be an int >= 1"),
        ({"concurrency_key": "agent_id"}, "add concurrency=N"),
        ({"concurrency": 1, "concurrency_key": "agent.id"}, "top-level payload field"),
    ],
)
def test_bad_policy_declarations_name_the_fix(kwargs: dict[str, Any], message: str) -> None:
    s = MemoryScheduler()
    with pytest.raises(TaskDefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        s.task(name="t", **kwargs)(_noop)
    assert "t" not in s.tasks


def test_backoff_factor_is_short_for_exponential_backoff() -> None:
    s = MemoryScheduler()
    s.task(name="old", retries=3, backoff_factor=3, backoff_max_seconds=20)(_noop)
    s.task(name="new", retries=3, backoff="exponential", backoff_base=3, backoff_max_seconds=20)(_noop)
    s.task(name="default_base", retries=3, backoff="exponential")(_noop)
    old, new = s.tasks["old"], s.tasks["new"]
    assert (old.backoff, old.backoff_base, old.backoff_factor) == ("exponential", 3, 3)
    assert [old.retry_delay(n) for n in (1, 2, 3)] == [new.retry_delay(n) for n in (1, 2, 3)] == [3, 9, 20]
    assert [s.tasks["default_base"].retry_delay(n) for n in (1, 2, 3)] == [2, 4, 8]


def test_hatchet_gets_the_same_waits() -> None:
    """Hatchet waits min(factor ** retry, max) whole seconds; the options map onto that."""
    s = MemoryScheduler()
    s.task(name="fixed", retries=3, backoff="fixed", backoff_base=5)(_noop)
    s.task(name="expo", retries=3, backoff="exponential", backoff_base=2, backoff_max_seconds=6.5)(_noop)
    s.task(name="none", retries=3)(_noop)
    for name in ("fixed", "expo"):
        options = s.tasks[name]
        engine = backoff(options)
        factor, cap = engine["backoff_factor"], engine["backoff_max_seconds"]
        engine_waits = [min(factor**n, cap) if cap else factor**n for n in (1, 2, 3)]
        ours = [options.retry_delay(n) for n in (1, 2, 3)]
        if name == "fixed":
            assert engine_waits == ours == [5, 5, 5]
        else:  # the cap is rounded up to whole seconds on Hatchet
            assert ours == [2, 4, 6.5] and engine_waits == [2, 4, 7]
    assert backoff(s.tasks["none"]) == {"backoff_factor": None, "backoff_max_seconds": None}


def test_concurrency_maps_onto_a_cel_expression_per_key() -> None:
    s = MemoryScheduler()
    s.task(name="keyed", concurrency=2, concurrency_key="agent_id")(_noop)
    s.task(name="global", concurrency=3)(_noop)
    s.task(name="free")(_noop)
    keyed, whole = concurrency(s.tasks["keyed"]), concurrency(s.tasks["global"])
    assert keyed is not None and whole is not None
    assert keyed.expression == "has(input.agent_id) ? string(input.agent_id) : ''"
    assert (keyed.max_runs, keyed.limit_strategy.name) == (2, "GROUP_ROUND_ROBIN")
    assert (whole.expression, whole.max_runs) == ("'all'", 3)
    assert concurrency(s.tasks["free"]) is None


async def test_fixed_backoff_waits_exactly_on_the_virtual_clock() -> None:
    s = MemoryScheduler(clock=VirtualClock())

    @s.task(name="flaky", retries=2, backoff="fixed", backoff_base=30)
    async def flaky(payload: Any, ctx: TaskContext) -> int:
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return ctx.attempt

    async with s:
        await s.start_worker()
        task_id = await s.run_task("flaky")
        await s.advance(0)
        await s.advance(29.999)
        info = await s.get_task_status(task_id)
        assert (info.state, info.attempts) == (TaskState.QUEUED, 1)
        await s.advance(0.001)
        assert (await s.get_task_status(task_id)).attempts == 2
        await s.advance(30)
        info = await s.get_task_status(task_id)
        assert (info.state, info.result) == (TaskState.SUCCEEDED, 3)


async def test_sync_on_failure_runs_once_and_its_own_error_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[TaskFailure] = []

    def alert(failure: TaskFailure) -> None:
        calls.append(failure)
        raise RuntimeError("the pager is down")

    s = MemoryScheduler(clock=VirtualClock())

    @s.task(name="doomed", retries=2, on_failure=alert)
    def doomed(payload: Any, ctx: TaskContext) -> None:
        raise KeyError(f"attempt {ctx.attempt}")

    async with s:
        await s.start_worker()
        task_id = await s.run_task("doomed", {"agent_id": "a1"})
        info = await s.wait_for_task(task_id)
    assert info.state is TaskState.FAILED
    assert info.error == "KeyError: 'attempt 3'"
    assert calls == [TaskFailure("doomed", task_id, {"agent_id": "a1"}, "KeyError: 'attempt 3'", 3)]
    assert "on_failure of task doomed" in caplog.text and "the pager is down" in caplog.text


async def test_on_failure_after_a_non_retryable_error_and_after_a_timeout() -> None:
    calls: list[TaskFailure] = []
    s = MemoryScheduler(clock=VirtualClock())

    @s.task(name="refuses", retries=5, on_failure=calls.append)
    async def refuses(payload: Any, ctx: TaskContext) -> None:
        raise NonRetryableError("the agent was deleted")

    @s.task(name="hangs", retries=1, timeout=1, on_failure=calls.append)
    async def hangs(payload: Any, ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    async with s:
        await s.start_worker()
        refused = await s.wait_for_task(await s.run_task("refuses"))
        hung = await s.wait_for_task(await s.run_task("hangs"))
    assert (refused.state, refused.attempts) == (TaskState.FAILED, 1)
    assert (hung.state, hung.attempts) == (TaskState.FAILED, 2)
    assert [(c.task_name, c.attempts, c.error.split(":")[0]) for c in calls] == [
        ("refuses", 1, "NonRetryableError"),
        ("hangs", 2, "TimeoutError"),
    ]


async def test_concurrency_without_a_key_caps_the_whole_task() -> None:
    s = MemoryScheduler()  # real clock: the runs overlap in real time
    running = 0
    most = 0
    release = asyncio.Event()

    @s.task(name="capped", concurrency=2)
    async def capped(payload: Any, ctx: TaskContext) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1

    async with s:
        await s.start_worker()
        ids = [await s.run_task("capped", {"n": n}) for n in range(5)]
        await asyncio.sleep(0.1)
        states = [(await s.get_task_status(i)).state for i in ids]
        assert states.count(TaskState.RUNNING) == 2
        assert states.count(TaskState.QUEUED) == 3
        release.set()
        infos = [await s.wait_for_task(i, timeout=5) for i in ids]
    assert all(i.state is TaskState.SUCCEEDED for i in infos)
    assert most == 2


async def test_a_run_past_its_concurrency_limit_does_not_block_other_tasks() -> None:
    s = MemoryScheduler()
    gate = asyncio.Event()

    @s.task(name="single", concurrency=1)
    async def single(payload: Any, ctx: TaskContext) -> None:
        await gate.wait()

    @s.task(name="other")
    async def other(payload: Any, ctx: TaskContext) -> str:
        return "ran"

    async with s:
        await s.start_worker()
        first = await s.run_task("single")
        second = await s.run_task("single")
        assert (await s.wait_for_task(await s.run_task("other"), timeout=5)).result == "ran"
        assert (await s.get_task_status(second)).state is TaskState.QUEUED
        gate.set()
        for task_id in (first, second):
            assert (await s.wait_for_task(task_id, timeout=5)).state is TaskState.SUCCEEDED


async def test_sleep_of_zero_or_less_raises_before_needing_a_durable_task() -> None:
    s = MemoryScheduler()
    ctx = TaskContext(task_id="t", task_name="n", attempt=1, scheduler=s)
    for seconds in (0, -1, float("nan"), "5"):
        with pytest.raises(InvalidScheduleError, match="seconds > 0"):
            await ctx.sleep(seconds)  # type: ignore[arg-type]

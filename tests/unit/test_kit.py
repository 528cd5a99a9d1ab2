"""The backend author's kit (owlclaw.scheduler.kit): what ``run_attempt``
decides for one attempt, and what ``BaseScheduler`` does before a hook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from owlclaw.scheduler import NonRetryableError, TaskFailure
from owlclaw.scheduler.errors import PayloadError, SchedulerConnectionError, TaskNotRegisteredError
from owlclaw.scheduler.kit import (
    AttemptOutcome,
    BaseScheduler,
    make_context,
    make_options,
    run_attempt,
)
from owlclaw.scheduler.models import TaskOptions


def _options(func: Any, **declared: Any) -> TaskOptions:
    return make_options(func, None, **declared)


async def _attempt(
    options: TaskOptions, attempt: int = 1, payload: Any = None, **kwargs: Any
) -> AttemptOutcome:
    ctx = make_context(options, task_id="run-1", attempt=attempt, scheduler=BaseScheduler())
    return await run_attempt(options, {"n": 1} if payload is None else payload, ctx, **kwargs)


def _recorder() -> tuple[list[TaskFailure], Any]:
    calls: list[TaskFailure] = []

    async def on_failure(failure: TaskFailure) -> None:
        calls.append(failure)

    return calls, on_failure


async def boom(payload: Any, ctx: Any) -> None:
    raise ValueError("boom")


async def test_success_returns_the_result_as_json_carries_it() -> None:
    calls, on_failure = _recorder()

    async def ok(payload: Any, ctx: Any) -> Any:
        return {"pair": (1, 2), "attempt": ctx.attempt}

    outcome = await _attempt(_options(ok, retries=2, on_failure=on_failure))

    assert outcome.succeeded
    assert outcome.result == {"pair": [1, 2], "attempt": 1}
    assert (outcome.error, outcome.exception, outcome.final, outcome.retry_delay) == (None, None, True, None)
    assert calls == []


async def test_a_sync_task_runs_too() -> None:
    def add(payload: Any, ctx: Any) -> int:
        return int(payload["n"]) + 1

    assert (await _attempt(_options(add))).result == 2


@pytest.mark.parametrize(
    ("declared", "attempt", "delay"),
    [
        ({}, 1, 0.0),
        ({"backoff": "fixed", "backoff_base": 5}, 2, 5.0),
        ({"backoff": "exponential", "backoff_base": 3}, 2, 9.0),
        ({"backoff_factor": 2, "backoff_max_seconds": 3}, 2, 3.0),
    ],
)
async def test_an_error_with_retries_left_is_retried_after_the_backoff(
    declared: dict[str, Any], attempt: int, delay: float
) -> None:
    calls, on_failure = _recorder()
    outcome = await _attempt(_options(boom, retries=3, on_failure=on_failure, **declared), attempt)

    assert not outcome.succeeded
    assert outcome.error == "ValueError: boom"
    assert isinstance(outcome.exception, ValueError)
    assert (outcome.retryable, outcome.final, outcome.timed_out) == (True, False, False)
    assert outcome.retry_delay == delay
    assert calls == []  # on_failure waits for the last attempt


async def test_the_last_attempt_is_final_and_calls_on_failure_once() -> None:
    calls, on_failure = _recorder()
    outcome = await _attempt(_options(boom, retries=2, on_failure=on_failure), 3, payload={"k": "v"})

    assert (outcome.retryable, outcome.final, outcome.retry_delay) == (True, True, None)
    assert calls == [
        TaskFailure(
            task_name="boom", task_id="run-1", payload={"k": "v"}, error="ValueError: boom", attempts=3
        )
    ]


async def test_on_failure_sees_the_error_recorded_before_it_runs() -> None:
    seen: list[str | None] = []
    recorded: list[str | None] = []

    def on_failure(failure: TaskFailure) -> None:  # sync callbacks run in a thread
        seen.append(recorded[-1] if recorded else None)

    outcome = await _attempt(
        _options(boom, on_failure=on_failure), record=lambda failed: recorded.append(failed.error)
    )
    assert outcome.final
    assert seen == ["ValueError: boom"]


async def test_a_failing_on_failure_does_not_change_the_outcome() -> None:
    async def on_failure(failure: TaskFailure) -> None:
        raise RuntimeError("callback broke")

    outcome = await _attempt(_options(boom, on_failure=on_failure))
    assert (outcome.error, outcome.final) == ("ValueError: boom", True)


async def test_a_timeout_says_so_and_counts_as_an_attempt() -> None:
    calls, on_failure = _recorder()

    async def slow(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(10)

    options = _options(slow, retries=1, timeout=0.05, on_failure=on_failure)
    first = await _attempt(options, 1)
    assert first.timed_out
    assert first.error == "TimeoutError: task 'slow' exceeded its timeout of 0.05s"
    assert isinstance(first.exception, TimeoutError)
    assert (first.retryable, first.final, first.retry_delay) == (True, False, 0.0)
    assert calls == []

    last = await _attempt(options, 2)
    assert (last.timed_out, last.final) == (True, True)
    assert [(f.error, f.attempts) for f in calls] == [(last.error, 2)]


async def test_a_timeout_error_raised_by_the_task_is_an_ordinary_error() -> None:
    async def raises_timeout(payload: Any, ctx: Any) -> None:
        raise TimeoutError("upstream took too long")

    outcome = await _attempt(_options(raises_timeout, retries=1, timeout=30))
    assert not outcome.timed_out
    assert outcome.error == "TimeoutError: upstream took too long"
    assert not outcome.final


async def test_a_backend_that_keeps_time_itself_reports_its_cancellation_as_a_timeout() -> None:
    async def slow(payload: Any, ctx: Any) -> None:
        await asyncio.sleep(10)

    options = _options(slow, timeout=60)
    expired = False
    attempt = asyncio.ensure_future(_attempt(options, timed_out=lambda: expired))
    await asyncio.sleep(0.01)
    expired = True
    attempt.cancel()
    outcome = await attempt
    assert outcome.timed_out
    assert outcome.error == "TimeoutError: task 'slow' exceeded its timeout of 60s"

    other = asyncio.ensure_future(_attempt(options, timed_out=lambda: False))
    await asyncio.sleep(0.01)
    other.cancel()
    with pytest.raises(asyncio.CancelledError):
        await other  # a cancellation that is not a timeout is not an outcome


@pytest.mark.parametrize(
    ("error", "declared"),
    [
        (NonRetryableError("card declined"), {}),
        (KeyError("missing"), {"no_retry_on": KeyError}),
        (ValueError("bad input"), {"retry_on": (ConnectionError,)}),
    ],
)
async def test_an_error_that_may_not_be_retried_is_final_with_retries_left(
    error: Exception, declared: dict[str, Any]
) -> None:
    calls, on_failure = _recorder()

    async def fails(payload: Any, ctx: Any) -> None:
        raise error

    outcome = await _attempt(_options(fails, retries=5, on_failure=on_failure, **declared), 1)
    assert (outcome.retryable, outcome.final, outcome.retry_delay) == (False, True, None)
    assert outcome.exception is error
    assert len(calls) == 1 and calls[0].attempts == 1


class _DictScheduler(BaseScheduler):
    """A toy backend: the base class's public methods over dict-backed hooks."""

    backend_name = "toy"

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[tuple[str, dict[str, Any], datetime | None, int]] = []

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    def _now(self) -> datetime:
        return datetime(2030, 1, 1, tzinfo=UTC)

    async def _submit(
        self,
        options: TaskOptions,
        payload: dict[str, Any],
        *,
        due: datetime | None,
        priority: int,
        metadata: dict[str, str],
    ) -> str:
        self.submitted.append((options.name, payload, due, priority))
        return f"id-{len(self.submitted)}"


async def test_base_scheduler_checks_the_call_before_the_hook() -> None:
    toy = _DictScheduler()

    @toy.task(priority=2)
    async def greet(payload: Any, ctx: Any) -> None:
        return None

    with pytest.raises(SchedulerConnectionError, match="not connected"):
        await toy.run_task("greet")
    async with toy:
        with pytest.raises(TaskNotRegisteredError, match="registered: greet"):
            await toy.run_task("gret")
        with pytest.raises(PayloadError, match="JSON object"):
            await toy.run_task("greet", [1])
        assert await toy.run_task("greet") == "id-1"
        assert await toy.schedule_task("greet", {"a": 1}, delay_seconds=60, priority=3) == "id-2"
    assert toy.submitted == [
        ("greet", {}, None, 2),
        ("greet", {"a": 1}, datetime(2030, 1, 1, 0, 1, tzinfo=UTC), 3),
    ]

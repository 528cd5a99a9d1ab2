"""The Hatchet worker's ``execute`` and ``wait_for_task``'s poll, without an engine.

``execute`` maps the kit's ``AttemptOutcome`` onto what the SDK expects: a
wrapped result, ``NonRetryableException`` for an error that may not use the
retries left, the task's own ``TimeoutError``, or the task's error itself.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from hatchet_sdk.exceptions import NonRetryableException

from owlclaw.backends.hatchet.lookups import Lookups
from owlclaw.backends.hatchet.wire import ID_KEY, RESULT_KEY
from owlclaw.backends.hatchet.worker import execute
from owlclaw.scheduler.errors import WaitTimeoutError
from owlclaw.scheduler.kit import make_options
from owlclaw.scheduler.models import TaskFailure, TaskInfo, TaskState
from owlclaw.scheduler.polling import PollTimeoutError


def _ctx(attempt: int = 1) -> Any:
    """What ``execute`` reads of the SDK's ``Context``."""
    return SimpleNamespace(
        additional_metadata={ID_KEY: "task-1"},
        workflow_run_id="run-1",
        attempt_number=attempt,
        is_cancelled=False,
    )


async def test_a_result_is_wrapped_for_the_sdk() -> None:
    def double(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"n": payload["n"] * 2, "id": ctx.task_id}

    options = make_options(double, "double")
    assert await execute(options, {"n": 2}, _ctx(), None) == {RESULT_KEY: {"n": 4, "id": "task-1"}}


async def test_an_error_that_may_not_retry_stops_the_retries_left_after_on_failure() -> None:
    failures: list[TaskFailure] = []

    def bad(payload: dict[str, Any], ctx: Any) -> None:
        raise ValueError("bad input")

    options = make_options(bad, "bad", retries=2, no_retry_on=ValueError, on_failure=failures.append)
    with pytest.raises(NonRetryableException, match=r"^ValueError: bad input$") as caught:
        await execute(options, {}, _ctx(), None)
    assert isinstance(caught.value.__cause__, ValueError)
    assert [(f.task_id, f.error, f.attempts) for f in failures] == [("task-1", "ValueError: bad input", 1)]


async def test_a_retryable_error_is_raised_as_is_for_the_engine_to_retry() -> None:
    failures: list[TaskFailure] = []

    def flaky(payload: dict[str, Any], ctx: Any) -> None:
        raise RuntimeError("flaky")

    options = make_options(flaky, "flaky", retries=1, on_failure=failures.append)
    with pytest.raises(RuntimeError, match=r"^flaky$"):
        await execute(options, {}, _ctx(attempt=1), None)
    assert failures == []
    with pytest.raises(RuntimeError, match=r"^flaky$"):
        await execute(options, {}, _ctx(attempt=2), None)
    assert [f.error for f in failures] == ["RuntimeError: flaky"]


async def test_a_timeout_raises_the_kit_s_text() -> None:
    failures: list[TaskFailure] = []

    async def slow(payload: dict[str, Any], ctx: Any) -> None:
        await asyncio.sleep(5)

    options = make_options(slow, "slow", timeout=0.05, on_failure=failures.append)
    with pytest.raises(TimeoutError) as caught:
        await execute(options, {}, _ctx(), None)
    assert str(caught.value) == "task 'slow' exceeded its timeout of 0.05s"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert [f.error for f in failures] == ["TimeoutError: task 'slow' exceeded its timeout of 0.05s"]


async def test_wait_for_task_times_out_with_its_own_message() -> None:
    reads: list[str] = []

    class Running(Lookups):
        async def status(self, task_id: str) -> TaskInfo:
            reads.append(task_id)
            return TaskInfo(id=task_id, task_name="t", state=TaskState.RUNNING)

    lookups = Running(SimpleNamespace(require=lambda: None))  # type: ignore[arg-type]
    with pytest.raises(WaitTimeoutError, match=r"^task t-1 is still running after 0\.3s$") as caught:
        await lookups.wait("t-1", 0.3)
    assert not isinstance(caught.value, PollTimeoutError)
    assert len(reads) >= 2
    with pytest.raises(WaitTimeoutError, match=r"^task t-1 is still running after 0s$"):
        await lookups.wait("t-1", 0)

"""Running a task now: results, payloads, context, failures, and cancelling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["JSON_VALUES", "RunningConformance"]

JSON_VALUES: list[Any] = [
    {"nested": {"list": [1, 2.5, "x", None, True]}},
    [1, "two", {"three": 3}],
    "text with ünïcode",
    42,
    3.25,
    True,
    None,
]


class RunningConformance(ConformanceBase):
    """A run started now: what it returns, what it is told, how it fails and is cancelled."""

    @pytest.mark.parametrize("value", JSON_VALUES, ids=lambda v: type(v).__name__)
    async def test_run_task_returns_any_json_result(self, scheduler: Scheduler, value: Any) -> None:
        task_id = await scheduler.run_task("conf_echo", {"value": value})
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == value
        assert info.id == task_id
        assert info.task_name == "conf_echo"
        assert info.payload == {"value": value}
        assert info.attempts == 1
        assert info.error is None

    async def test_finished_run_has_aware_timestamps_in_order(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_echo", {"value": 1}))
        assert info.scheduled_at and info.started_at and info.finished_at
        for stamp in (info.scheduled_at, info.started_at, info.finished_at):
            assert stamp.utcoffset() == timedelta(0)
        assert info.started_at <= info.finished_at

    async def test_sync_task_function_runs_with_context(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sync_echo", {"value": 7}))
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"value": 7, "attempt": 1, "task": "conf_sync_echo"}

    async def test_context_describes_the_run(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_context")
        info = await self.finish(scheduler, task_id)
        assert info.result == {
            "task_id": task_id,
            "task_name": "conf_context",
            "attempt": 1,
            "cancelled": False,
        }

    async def test_result_comes_back_as_json_would_carry_it(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_tuple"))
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"pair": [1, 2], "3": "int key"}

    async def test_result_that_is_not_json_fails_the_run(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_not_json"))
        assert info.state is TaskState.FAILED
        assert info.error and "JSON" in info.error

    async def test_payload_is_stored_as_json(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.schedule_task("conf_echo", {"value": (1, 2), 5: "five"}, delay_seconds=3600)
        info = await scheduler.get_task_status(task_id)
        assert info.payload == {"value": [1, 2], "5": "five"}
        assert await scheduler.cancel_task(task_id) is True

    async def test_payload_changed_by_the_caller_after_run_task_does_not_change_the_run(
        self, scheduler: Scheduler
    ) -> None:
        # the payload is carried as JSON: the run keeps what it was given, not a reference to it
        payload: dict[str, Any] = {"value": {"items": [1], "name": "before"}}
        task_id = await scheduler.run_task("conf_echo", payload)
        _scribble(payload)
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED, info.error
        assert (info.result, info.payload) == ({"items": [1], "name": "before"}, _ORIGINAL), (
            f"run {task_id} saw the caller's later changes: result {info.result!r}, payload {info.payload!r}"
        )

    async def test_payload_changed_by_the_caller_after_schedule_task_does_not_change_the_run(
        self, scheduler: Scheduler
    ) -> None:
        payload: dict[str, Any] = {"value": {"items": [1], "name": "before"}}
        task_id = await scheduler.schedule_task("conf_echo", payload, delay_seconds=2)
        _scribble(payload)
        pending = await scheduler.get_task_status(task_id)
        assert pending.payload == _ORIGINAL, (
            f"schedule {task_id} shows the caller's later changes: {pending.payload}"
        )
        await self.advance(scheduler, 2.5)
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED, info.error
        assert (info.result, info.payload) == ({"items": [1], "name": "before"}, _ORIGINAL), (
            f"run {task_id} saw the caller's later changes: result {info.result!r}, payload {info.payload!r}"
        )

    async def test_payload_changed_by_the_caller_after_add_cron_does_not_change_the_cron(
        self, scheduler: Scheduler
    ) -> None:
        payload: dict[str, Any] = {"value": {"items": [1], "name": "before"}}
        cron_id = await scheduler.add_cron("conf_cron_target", "0 0 1 1 *", payload)
        try:
            _scribble(payload)
            listed = [c for c in await scheduler.list_crons(task_name="conf_cron_target") if c.id == cron_id]
            assert [c.payload for c in listed] == [_ORIGINAL], f"cron {cron_id} is listed as {listed}"
        finally:
            await scheduler.remove_cron(cron_id)

    async def test_failure_is_reported_with_its_error(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_fail"))
        assert info.state is TaskState.FAILED
        assert info.attempts == 1
        assert info.error and "boom: conformance failure" in info.error
        assert info.result is None

    async def test_cancelling_a_running_task_interrupts_it(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_slow", {"seconds": 30})
        await self.wait_for_state(scheduler, task_id, {TaskState.RUNNING})
        assert await scheduler.cancel_task(task_id) is True
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.CANCELLED
        assert info.result is None
        assert await scheduler.cancel_task(task_id) is False

    async def test_cancelling_a_finished_task_returns_false(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_echo", {"value": 1})
        await self.finish(scheduler, task_id)
        assert await scheduler.cancel_task(task_id) is False
        assert (await scheduler.get_task_status(task_id)).state is TaskState.SUCCEEDED


#: The payload the payload-copy tests pass, as the run must keep it.
_ORIGINAL: dict[str, Any] = {"value": {"items": [1], "name": "before"}}


def _scribble(payload: dict[str, Any]) -> None:
    """Change ``payload`` in place at every depth, as a caller reusing its dict would."""
    payload["value"]["items"].append(2)
    payload["value"]["name"] = "after"
    payload["added"] = True

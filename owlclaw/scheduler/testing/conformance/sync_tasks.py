"""Sync task functions: threads up to the worker's slots, timeouts that set
``ctx.cancelled``, the blocking ``ctx.sync_scheduler``, ``sys.exit()`` as a
failure, and durable sleep kept to async tasks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from owlclaw.scheduler.errors import TaskDefinitionError
from owlclaw.scheduler.models import TaskContext, TaskInfo, TaskState
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["SyncTaskConformance"]


class SyncTaskConformance(ConformanceBase):
    """What a sync task gets, the same on every backend (docs/architecture.md, "Sync tasks")."""

    #: Sync tasks the slots test blocks at once: more than the 6 threads of
    #: asyncio's default pool on 2 cores, fewer than the worker's slots.
    sync_blocked_tasks: int = 7

    async def attempt_logs(self, scheduler: Scheduler, tag: str, count: int) -> list[dict[str, Any]]:
        """The ``conf_attempt_log`` records a task left with ``tag``, once there are ``count``."""

        def tagged(infos: list[TaskInfo]) -> list[TaskInfo]:
            return [i for i in infos if isinstance(i.payload, dict) and i.payload.get("tag") == tag]

        async def read() -> list[TaskInfo]:
            return await scheduler.list_scheduled_tasks("conf_attempt_log")

        def enough(infos: list[TaskInfo]) -> bool:
            return len(tagged(infos)) >= count

        infos: list[TaskInfo] = await poll_until(
            read,
            enough,
            timeout=self.wait_timeout,
            interval=0.1,
            what=f"{count} conf_attempt_log schedules tagged {tag}",
        )
        mine = tagged(infos)
        for info in mine:
            await scheduler.cancel_task(info.id)
        return [dict(i.payload) for i in mine]

    async def test_sync_tasks_run_up_to_the_slots_and_a_blocked_one_starves_none(
        self, scheduler: Scheduler
    ) -> None:
        tag = uuid.uuid4().hex
        blocked = [
            await scheduler.run_task("conf_sync_hang", {"tag": tag, "seconds": 120})
            for _ in range(self.sync_blocked_tasks)
        ]
        try:
            started = await self.attempt_logs(scheduler, tag, len(blocked))
            assert sorted(r["task_id"] for r in started) == sorted(blocked)
            # polled, not wait_for_task: on a virtual clock that waits for the blocked runs too
            echo_id = await scheduler.run_task("conf_sync_echo", {"value": 1})
            echo = await self.wait_for_state(scheduler, echo_id, [TaskState.SUCCEEDED, TaskState.FAILED], 60)
            assert echo.state is TaskState.SUCCEEDED, echo.error
            states = [(await scheduler.get_task_status(i)).state for i in blocked]
            assert states == [TaskState.RUNNING] * len(blocked), states
        finally:
            for task_id in blocked:
                await scheduler.cancel_task(task_id)
        for task_id in blocked:
            info = await self.finish(scheduler, task_id)
            assert info.state is TaskState.CANCELLED, info

    async def test_a_timed_out_sync_attempt_sees_cancelled_and_its_retry_runs(
        self, scheduler: Scheduler
    ) -> None:
        tag = uuid.uuid4().hex
        info = await self.finish(scheduler, await scheduler.run_task("conf_sync_timeout", {"tag": tag}))
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"attempt": 2}
        assert info.attempts == 2
        (first,) = await self.attempt_logs(scheduler, tag, 1)
        assert first["saw_cancelled"] is True, first

    async def test_a_sync_task_schedules_a_follow_up_through_sync_scheduler(
        self, scheduler: Scheduler
    ) -> None:
        parent = await self.finish(
            scheduler, await scheduler.run_task("conf_sync_follow_up", {"delay": 1, "value": "child"})
        )
        assert parent.state is TaskState.SUCCEEDED, parent.error
        child: TaskInfo = await scheduler.get_task_status(parent.result)
        assert child.task_name == "conf_sync_echo"
        await self.advance(scheduler, 1.5)
        child = await self.finish(scheduler, parent.result)
        assert child.state is TaskState.SUCCEEDED, child.error
        assert child.result["value"] == "child"

    async def test_asyncio_run_of_ctx_scheduler_in_a_sync_task_fails_fast(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sync_asyncio_run"))
        assert info.state is TaskState.FAILED
        assert info.error and info.error.startswith("NotSupportedError: ")
        assert "ctx.sync_scheduler" in info.error

    @pytest.mark.parametrize("task_name", ["conf_sync_exit", "conf_exit"])
    async def test_sys_exit_fails_that_run_only(self, scheduler: Scheduler, task_name: str) -> None:
        info = await self.finish(scheduler, await scheduler.run_task(task_name, {"code": 3}))
        assert info.state is TaskState.FAILED
        assert info.error == "SystemExit: 3"
        after = await self.finish(scheduler, await scheduler.run_task("conf_sync_echo", {"value": 2}))
        assert after.state is TaskState.SUCCEEDED, after.error

    async def test_durable_is_refused_on_a_sync_function(self, scheduler: Scheduler) -> None:
        def sync_durable(payload: Any, ctx: TaskContext) -> None:
            return None

        with pytest.raises(TaskDefinitionError, match="async"):
            scheduler.task(name="conf_sync_durable", durable=True)(sync_durable)
        assert "conf_sync_durable" not in scheduler.tasks

    async def test_ctx_sleep_in_a_sync_task_raises(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sync_sleep"))
        assert info.state is TaskState.FAILED
        assert info.error and info.error.startswith("NotSupportedError: ") and "async def" in info.error

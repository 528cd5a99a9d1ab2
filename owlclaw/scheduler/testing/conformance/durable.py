"""Durable sleep (``ctx.sleep``): only in durable tasks, only for a positive time."""

from __future__ import annotations

import pytest

from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["DurableSleepConformance"]


class DurableSleepConformance(ConformanceBase):
    """A durable task sleeps through ``ctx.sleep``; other tasks and bad times fail the run."""

    async def test_durable_sleep_wakes_after_the_delay(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.run_task("conf_durable", {"seconds": 2})
        await self.advance(scheduler, 2.5)
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED, info.error
        assert info.result == {"woke": True, "task_id": task_id}
        assert info.started_at and info.finished_at
        assert (info.finished_at - info.started_at).total_seconds() >= 1.9

    async def test_sleep_in_a_non_durable_task_is_not_supported(self, scheduler: Scheduler) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sleep_not_durable"))
        assert info.state is TaskState.FAILED
        assert info.error and "NotSupportedError" in info.error and "durable=True" in info.error

    @pytest.mark.parametrize("seconds", [0, -1])
    async def test_sleep_of_zero_or_less_is_rejected(self, scheduler: Scheduler, seconds: float) -> None:
        info = await self.finish(scheduler, await scheduler.run_task("conf_sleep_zero", {"seconds": seconds}))
        assert info.state is TaskState.FAILED
        assert info.error and info.error.startswith("InvalidScheduleError: ") and "> 0" in info.error

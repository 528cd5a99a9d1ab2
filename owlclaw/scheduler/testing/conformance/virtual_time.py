"""Tests that only a virtual clock can run, and the time hooks such a clock needs."""

from __future__ import annotations

import asyncio
from datetime import datetime

from owlclaw.scheduler.models import TaskState
from owlclaw.scheduler.protocol import Scheduler, VirtualClockScheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["VirtualTimeConformance"]


class VirtualTimeConformance(ConformanceBase):
    """The tests only a virtual clock can run, and the time hooks it needs.

    Inherit it beside ``SchedulerConformance`` when the ``scheduler`` fixture
    yields a scheduler on a virtual clock: one with ``advance(seconds)``
    (runs whatever falls due, in order) and ``clock.now()``. Real-clock
    backends do not inherit it, so these tests are not collected for them::

        class TestMyBackend(VirtualTimeConformance, SchedulerConformance): ...
    """

    async def advance(self, scheduler: Scheduler, seconds: float) -> None:
        """Move the virtual clock: what falls due runs, and no real time passes."""
        await _virtual(scheduler).advance(seconds)

    async def now(self, scheduler: Scheduler) -> datetime:
        return _virtual(scheduler).clock.now()

    async def test_thirty_day_durable_sleep_takes_no_real_time(self, scheduler: Scheduler) -> None:
        # a real engine would sleep 30 real days
        started = asyncio.get_running_loop().time()
        task_id = await scheduler.run_task("conf_durable", {"seconds": 30 * 86400})
        await self.advance(scheduler, 29 * 86400)
        assert (await scheduler.get_task_status(task_id)).state is TaskState.RUNNING
        await self.advance(scheduler, 86400)
        info = await scheduler.get_task_status(task_id)
        assert info.state is TaskState.SUCCEEDED
        assert asyncio.get_running_loop().time() - started < 5

    async def test_advance_fires_in_due_order(self, scheduler: Scheduler) -> None:
        # only a clock that jumps can order runs exactly by their due times
        ids = [
            await scheduler.schedule_task("conf_echo", {"value": d}, delay_seconds=d) for d in (300, 100, 200)
        ]
        await self.advance(scheduler, 150)
        states = [(await scheduler.get_task_status(i)).state for i in ids]
        assert states == [TaskState.SCHEDULED, TaskState.SUCCEEDED, TaskState.SCHEDULED]
        await self.advance(scheduler, 200)
        infos = [await scheduler.get_task_status(i) for i in ids]
        assert all(i.state is TaskState.SUCCEEDED for i in infos)
        starts = [i.started_at for i in infos]
        assert starts[1] < starts[2] < starts[0]  # type: ignore[operator]


def _virtual(scheduler: Scheduler) -> VirtualClockScheduler:
    if not isinstance(scheduler, VirtualClockScheduler):
        raise TypeError(
            f"{type(scheduler).__name__} has no advance() and clock: a backend whose "
            "tests inherit VirtualTimeConformance must run on a virtual clock"
        )
    return scheduler

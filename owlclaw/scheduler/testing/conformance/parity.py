"""Where the memory backend once differed from Hatchet in ways a test could
lean on: the order of ``list_tasks``, the slots durable tasks use, and the
size of a result.

Each test here failed on the memory backend before it was made to behave as
Hatchet does (docs/testing.md, "What the fake guarantees, and `mimic`").
"""

from __future__ import annotations

from owlclaw.scheduler.kit.payloads import MAX_RESULT_BYTES
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["ParityConformance"]


class ParityConformance(ConformanceBase):
    """``list_tasks`` order, durable slots and the result size limit, as on Hatchet."""

    async def test_list_tasks_is_newest_due_time_first(self, scheduler: Scheduler) -> None:
        # created first, due last: newest first goes by due time, not by creation
        scheduled = await scheduler.schedule_task("conf_echo", {"value": "due later"}, delay_seconds=3)
        immediate = await scheduler.run_task("conf_echo", {"value": "created later"})
        await self.finish(scheduler, immediate)
        await self.advance(scheduler, 3.5)
        await self.finish(scheduler, scheduled)
        both = {scheduled, immediate}

        async def listed() -> list[str]:
            rows: list[TaskInfo] = await scheduler.list_tasks(task_name="conf_echo", limit=1000)
            return [r.id for r in rows if r.id in both]

        order: list[str] = await poll_until(
            lambda: listed(),
            lambda ids: len(ids) == 2,
            timeout=self.listing_timeout,
            interval=0.5,
            what=f"list_tasks to show the runs {sorted(both)}",
        )
        assert order == [scheduled, immediate], (
            f"list_tasks should put the run due later ({scheduled}) before the one created "
            f"later but due sooner ({immediate}); it returned {order}"
        )

    async def test_a_durable_run_takes_no_ordinary_slot(self, single_slot_scheduler: Scheduler) -> None:
        # Hatchet gives durable tasks slots of their own (owlclaw asks for as many
        # as ordinary ones): a sleeping durable run cannot hold up other tasks
        scheduler = single_slot_scheduler
        sleeper = await scheduler.run_task("conf_durable", {"seconds": 600})
        try:
            await self.wait_for_state(scheduler, sleeper, {TaskState.RUNNING}, timeout=self.wait_timeout)
            urgent = await scheduler.run_task("conf_echo", {"value": "urgent"})
            try:
                info = await scheduler.wait_for_task(urgent, timeout=self.wait_timeout)
            except Exception as exc:
                state = (await scheduler.get_task_status(urgent)).state.value
                raise AssertionError(
                    f"a run of a non-durable task is {state} while a durable run sleeps on a "
                    f"one-slot worker: durable runs must not use the ordinary slot ({exc})"
                ) from exc
            assert info.state is TaskState.SUCCEEDED, info.error
            assert (await scheduler.get_task_status(sleeper)).state is TaskState.RUNNING
        finally:
            await scheduler.cancel_task(sleeper)

    async def test_a_result_over_the_size_limit_fails_the_run(self, scheduler: Scheduler) -> None:
        # as JSON a string of n "x" is n + 2 bytes
        fits = await self.finish(
            scheduler, await scheduler.run_task("conf_big_result", {"bytes": MAX_RESULT_BYTES - 2})
        )
        assert fits.state is TaskState.SUCCEEDED, fits.error
        assert isinstance(fits.result, str) and len(fits.result) == MAX_RESULT_BYTES - 2
        over = await self.finish(
            scheduler, await scheduler.run_task("conf_big_result", {"bytes": MAX_RESULT_BYTES - 1})
        )
        assert over.state is TaskState.FAILED
        assert over.result is None
        prefix = "PayloadError: the result of task 'conf_big_result' is"
        assert over.error and over.error.startswith(prefix), over.error
        assert f"over the {MAX_RESULT_BYTES}-byte limit" in over.error, over.error

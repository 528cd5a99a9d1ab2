"""Running a task later: delays, due times, listings of pending and past runs, and crons."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from owlclaw.scheduler.errors import TaskNotFoundError, WaitTimeoutError
from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import PollTimeoutError, poll_until
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase
from owlclaw.scheduler.testing.tasks import DECLARED_CRON

__all__ = ["SchedulingConformance"]


class SchedulingConformance(ConformanceBase):
    """Delayed and timed runs, cancelled schedules, listings and crons."""

    async def test_delayed_task_is_listed_then_runs_once(self, scheduler: Scheduler) -> None:
        before = await self.now(scheduler)
        task_id = await scheduler.schedule_task("conf_echo", {"value": "later"}, delay_seconds=2)
        info = await scheduler.get_task_status(task_id)
        assert info.state is TaskState.SCHEDULED
        assert info.attempts == 0
        scheduled_at = info.scheduled_at
        assert scheduled_at is not None
        assert abs((scheduled_at - before).total_seconds() - 2) < self.start_tolerance
        listed = await scheduler.list_scheduled_tasks(task_name="conf_echo")
        assert [t.id for t in listed] == [task_id]
        assert listed[0].payload == {"value": "later"}

        await self.advance(scheduler, 2.5)
        info = await self.finish(scheduler, task_id)
        assert info.state is TaskState.SUCCEEDED
        assert info.result == "later"
        assert info.attempts == 1
        assert info.started_at is not None
        assert info.started_at >= scheduled_at - timedelta(seconds=1)
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []

    async def test_task_scheduled_at_an_aware_time_runs_then(self, scheduler: Scheduler) -> None:
        plus_two = timezone(timedelta(hours=2))
        at = (await self.now(scheduler) + timedelta(seconds=2)).astimezone(plus_two)
        task_id = await scheduler.schedule_task("conf_echo", {"value": "at"}, at=at)
        info = await scheduler.get_task_status(task_id)
        assert info.scheduled_at is not None
        assert abs((info.scheduled_at - at).total_seconds()) < 1
        assert info.scheduled_at.utcoffset() == timedelta(0)
        await self.advance(scheduler, 2.5)
        assert (await self.finish(scheduler, task_id)).result == "at"

    async def test_scheduled_list_is_soonest_first_and_filters_by_name(self, scheduler: Scheduler) -> None:
        late = await scheduler.schedule_task("conf_echo", {}, delay_seconds=7200)
        soon = await scheduler.schedule_task("conf_echo", {}, delay_seconds=3600)
        other = await scheduler.schedule_task("conf_cron_target", {}, delay_seconds=1800)
        try:
            assert [t.id for t in await scheduler.list_scheduled_tasks(task_name="conf_echo")] == [
                soon,
                late,
            ]
            everything = [t.id for t in await scheduler.list_scheduled_tasks()]
            assert everything.index(other) < everything.index(soon) < everything.index(late)
        finally:
            for task_id in (late, soon, other):
                await scheduler.cancel_task(task_id)

    async def test_list_tasks_shows_runs_not_pending_schedules(self, scheduler: Scheduler) -> None:
        pending = await scheduler.schedule_task("conf_echo", {"value": 1}, delay_seconds=3600)
        ran = await scheduler.run_task("conf_echo", {"value": 2})
        await self.finish(scheduler, ran)
        listed = await scheduler.list_tasks(task_name="conf_echo", limit=1000)
        assert ran in [t.id for t in listed]
        assert pending not in [t.id for t in listed]
        assert [t.id for t in await scheduler.list_tasks(states=[TaskState.SCHEDULED])] == []
        await scheduler.cancel_task(pending)
        assert pending not in [t.id for t in await scheduler.list_tasks(limit=1000)]

    async def test_list_tasks_returns_at_most_limit_rows(self, scheduler: Scheduler) -> None:
        ids = [await scheduler.run_task("conf_echo", {"value": n}) for n in range(3)]
        for task_id in ids:
            await self.finish(scheduler, task_id)

        async def all_echo_runs() -> list[TaskInfo]:
            return await scheduler.list_tasks(task_name="conf_echo", limit=1000)

        # a listing may lag on a real engine: wait until all three are listed
        everything: list[TaskInfo] = await poll_until(
            lambda: all_echo_runs(),
            lambda rows: set(ids) <= {r.id for r in rows},
            timeout=self.listing_timeout,
            interval=0.5,
            what=f"list_tasks to show the runs {ids}",
        )
        listed = {r.id for r in everything}
        for limit in (1, 2):
            for rows in (
                await scheduler.list_tasks(task_name="conf_echo", limit=limit),
                await scheduler.list_tasks(limit=limit),
                await scheduler.list_tasks(task_name="conf_echo", states=[TaskState.SUCCEEDED], limit=limit),
            ):
                assert len(rows) == limit, f"list_tasks(limit={limit}) returned {len(rows)} rows: {rows}"
            named = await scheduler.list_tasks(task_name="conf_echo", limit=limit)
            assert {r.id for r in named} <= listed, (named, everything)

    async def test_listing_an_unknown_task_name_is_empty(self, scheduler: Scheduler) -> None:
        # listings filter; they do not require the task to be registered here
        assert await scheduler.list_tasks(task_name="conf_never_registered") == []
        assert await scheduler.list_scheduled_tasks(task_name="conf_never_registered") == []

    async def test_task_schedules_itself(self, scheduler: Scheduler) -> None:
        parent = await self.finish(
            scheduler,
            await scheduler.run_task("conf_self_schedule", {"delay": 1, "value": "child"}),
        )
        assert parent.state is TaskState.SUCCEEDED, parent.error
        child_id = parent.result
        child = await scheduler.get_task_status(child_id)
        assert child.task_name == "conf_echo"
        assert child.state in (
            TaskState.SCHEDULED,
            TaskState.QUEUED,
            TaskState.RUNNING,
            TaskState.SUCCEEDED,
        )
        await self.advance(scheduler, 1.5)
        child = await self.finish(scheduler, child_id)
        assert child.state is TaskState.SUCCEEDED
        assert child.result == "child"

    async def test_wait_for_task_times_out(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.schedule_task("conf_echo", {}, delay_seconds=3600)
        with pytest.raises(WaitTimeoutError):
            await scheduler.wait_for_task(task_id, timeout=1)
        assert await scheduler.cancel_task(task_id) is True

    async def test_cancelled_schedule_never_runs(self, scheduler: Scheduler) -> None:
        task_id = await scheduler.schedule_task("conf_echo", {"value": 1}, delay_seconds=2)
        assert await scheduler.cancel_task(task_id) is True
        assert (await scheduler.get_task_status(task_id)).state is TaskState.CANCELLED
        assert await scheduler.list_scheduled_tasks(task_name="conf_echo") == []
        await self.advance(scheduler, 3.5)
        info = await scheduler.get_task_status(task_id)
        assert info.state is TaskState.CANCELLED
        assert info.attempts == 0
        assert info.result is None
        assert await scheduler.cancel_task(task_id) is False

    async def test_declared_cron_is_registered_on_connect(self, scheduler: Scheduler) -> None:
        crons = await scheduler.list_crons(task_name="conf_declared_cron")
        assert [c.expression for c in crons] == [DECLARED_CRON]

    async def test_cron_fires_until_removed(self, scheduler: Scheduler) -> None:
        cron_id = await scheduler.add_cron("conf_cron_target", "*/1 * * * * *", {"from": "cron"})
        try:
            listed = await scheduler.list_crons(task_name="conf_cron_target")
            assert [c.id for c in listed] == [cron_id]
            assert listed[0].expression == "*/1 * * * * *"
            assert listed[0].payload == {"from": "cron"}
            started = await self.now(scheduler)
            await self.advance(scheduler, 3.5)

            async def step() -> list[TaskInfo]:
                # on a virtual clock time moves only through advance(): step it between reads
                runs = await self._cron_runs(scheduler)
                if len(runs) < 3:
                    await self.advance(scheduler, 0.5)
                return runs

            try:
                runs: list[TaskInfo] = await poll_until(
                    lambda: step(),
                    lambda runs: len(runs) >= 3,
                    timeout=30,
                    interval=0.1,
                    what="a per-second cron to have run 3 times",
                )
            except PollTimeoutError as exc:
                raise AssertionError(f"a per-second cron ran {len(exc.last or [])} times, not 3") from None
            # never more than one run per second (a tick on each side of the span at most)
            elapsed = (await self.now(scheduler) - started).total_seconds()
            assert len(runs) <= elapsed + 2, f"a per-second cron ran {len(runs)} times in {elapsed:.1f}s"
            # and not fewer: three whole seconds passed in the first 3.5 (the runs'
            # due times say when they fell due, however late a listing shows them)
            due = sorted(r.scheduled_at for r in runs if r.scheduled_at is not None)[:3]
            assert len(due) == 3, runs
            assert due[2] <= started + timedelta(seconds=3.5 + self.start_tolerance), (
                f"a per-second cron's first 3 runs fell due at {[d.isoformat() for d in due]}, "
                f"its first 3.5 s ran from {started.isoformat()}"
            )
            done = await self.finish(scheduler, runs[-1].id)
            assert done.state is TaskState.SUCCEEDED
            assert done.result == {"from": "cron"}
        finally:
            await scheduler.remove_cron(cron_id)
        assert await scheduler.list_crons(task_name="conf_cron_target") == []
        await self.advance(scheduler, 1.5)  # let a tick already in flight land
        count = len(await self._cron_runs(scheduler))
        await self.advance(scheduler, 2.5)
        assert len(await self._cron_runs(scheduler)) == count
        with pytest.raises(TaskNotFoundError):
            await scheduler.remove_cron(cron_id)

    async def _cron_runs(self, scheduler: Scheduler) -> list[TaskInfo]:
        return await scheduler.list_tasks(task_name="conf_cron_target", limit=1000)

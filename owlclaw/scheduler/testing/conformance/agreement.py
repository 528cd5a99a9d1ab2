"""``list_tasks`` and ``get_task_status`` tell the same story about a run.

A listing row and a status read of the same run must agree on its state,
result, error and attempts in every state a run can be listed in (running,
succeeded, failed after its retries, by an error or a timeout, cancelled), including the race where a
run is cancelled just as its code returns. Pending schedules are not runs, so
``list_tasks`` does not list them (see ``test_list_tasks_shows_runs_not_pending_schedules``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from owlclaw.scheduler.models import TaskInfo, TaskState
from owlclaw.scheduler.polling import poll_until
from owlclaw.scheduler.protocol import Scheduler
from owlclaw.scheduler.testing.conformance._base import ConformanceBase

__all__ = ["ListingAgreementConformance"]

#: The fields a status read and a listing row must agree on.
View = tuple[TaskState, Any, str | None, int]


def _view(info: TaskInfo) -> View:
    return (info.state, info.result, info.error, info.attempts)


class ListingAgreementConformance(ConformanceBase):
    """A run's row in ``list_tasks`` shows what ``get_task_status`` shows."""

    async def _agreed(self, scheduler: Scheduler, task_id: str, task_name: str) -> TaskInfo:
        """Compare the run's status with its listing row; return the status.

        The row is waited for, as a listing may lag a status read on a real
        engine (a running run's row can show RUNNING before its start time,
        so 0 attempts), until it shows everything the status shows or a final
        state. Then both must agree on state, result, error and attempts at
        once: a final run never changes again, so any difference left is a
        disagreement, not a lag.
        """
        status = await scheduler.get_task_status(task_id)

        async def row() -> TaskInfo | None:
            rows = await scheduler.list_tasks(limit=1000)  # unfiltered, as a dashboard reads it
            return next((r for r in rows if r.id == task_id), None)

        found: TaskInfo | None = await poll_until(
            lambda: row(),
            lambda r: r is not None and (_view(r) == _view(status) or r.state.is_final),
            timeout=self.listing_timeout,
            interval=0.5,
            what=f"list_tasks' row for run {task_id} to show (state, result, error, attempts) "
            f"{_view(status)} (or a final state), as get_task_status does",
        )
        assert found is not None and found.task_name == task_name, found
        assert _view(found) == _view(status), (
            f"run {task_id}: get_task_status and list_tasks disagree on (state, result, error, attempts): "
            f"status {_view(status)}, listing {_view(found)}"
        )
        return status

    async def _running(self, scheduler: Scheduler) -> tuple[str, str, set[TaskState]]:
        # long enough that it is still running when the listing catches up; cancelled after
        task_id = await scheduler.run_task("conf_slow", {"seconds": self.listing_timeout + 60})
        await self.wait_for_state(scheduler, task_id, {TaskState.RUNNING}, timeout=self.wait_timeout)
        return task_id, "conf_slow", {TaskState.RUNNING}

    async def _succeeded(self, scheduler: Scheduler) -> tuple[str, str, set[TaskState]]:
        task_id = await scheduler.run_task("conf_echo", {"value": {"agree": True}})
        await self.finish(scheduler, task_id)
        return task_id, "conf_echo", {TaskState.SUCCEEDED}

    async def _failed_after_retries(self, scheduler: Scheduler) -> tuple[str, str, set[TaskState]]:
        task_id = await scheduler.run_task("conf_flaky", {"fail_times": 9})
        info = await self.finish(scheduler, task_id)
        assert info.attempts == 3, info
        return task_id, "conf_flaky", {TaskState.FAILED}

    async def _timed_out_after_retries(self, scheduler: Scheduler) -> tuple[str, str, set[TaskState]]:
        # a timeout's error may be kept apart from an ordinary failure's by an engine
        task_id = await scheduler.run_task("conf_timeout", {"seconds": 10})
        info = await self.finish(scheduler, task_id)
        assert info.attempts == 2, info
        return task_id, "conf_timeout", {TaskState.FAILED}

    async def _cancelled(self, scheduler: Scheduler) -> tuple[str, str, set[TaskState]]:
        task_id = await scheduler.run_task("conf_slow", {"seconds": 30})
        await self.wait_for_state(scheduler, task_id, {TaskState.RUNNING}, timeout=self.wait_timeout)
        assert await scheduler.cancel_task(task_id) is True
        await self.finish(scheduler, task_id)
        return task_id, "conf_slow", {TaskState.CANCELLED}

    async def _cancelled_as_it_finishes(self, scheduler: Scheduler) -> tuple[str, str, set[TaskState]]:
        # conf_cancel_race returns normally right after the cancel request reaches
        # it; either outcome is allowed, as long as both reads report the same one
        task_id = await scheduler.run_task("conf_cancel_race", {"seconds": 10})
        await self.wait_for_state(scheduler, task_id, {TaskState.RUNNING}, timeout=self.wait_timeout)
        await scheduler.cancel_task(task_id)
        await self.finish(scheduler, task_id)
        return task_id, "conf_cancel_race", {TaskState.CANCELLED, TaskState.SUCCEEDED}

    CASES: ClassVar[dict[str, Callable[[Any, Scheduler], Awaitable[tuple[str, str, set[TaskState]]]]]] = {
        "running": _running,
        "succeeded": _succeeded,
        "failed-after-retries": _failed_after_retries,
        "timed-out-after-retries": _timed_out_after_retries,
        "cancelled": _cancelled,
        "cancelled-as-it-finishes": _cancelled_as_it_finishes,
    }

    @pytest.mark.parametrize("case", list(CASES))
    async def test_list_tasks_and_get_task_status_agree(self, scheduler: Scheduler, case: str) -> None:
        task_id, task_name, states = await self.CASES[case](self, scheduler)
        try:
            status = await self._agreed(scheduler, task_id, task_name)
            assert status.state in states, status
        finally:
            if case == "running":
                await scheduler.cancel_task(task_id)
